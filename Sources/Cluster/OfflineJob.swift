import Foundation
import Algorithms
import Datasets
import Diffusion
import Networks
import Offline
import Tensors

/// What `dppo offline` needs from Diffusion-QL's and EDP's trainers.
protocol OfflineTrainer: AnyObject {
    func trainStep(batch: OfflineBatch) -> OfflineStatistics
    func pretrainCriticStep(batch: OfflineBatch) -> OfflineStatistics
    func selectActions(observations: Matrix, actions: Matrix)
    func actor(_ copy: ActorCopy) -> Parameters
    var parameterSets: [String: Parameters] { get }
    /// Scales the policy-improvement term (Diffusion-QL's η, EDP's guide weight); 0 during critic warm-up.
    var improvementScale: Double { get set }
    /// No actor update at all (`offline.warmup_actor: frozen` during critic warm-up).
    var actorFrozen: Bool { get set }
    /// What a resumed run restores besides the parameter sets: Adam states, the trainer's step and random stream.
    var optimizers: [String: Adam] { get }
    var step: Int { get set }
    var random: Philox { get set }
}

extension DiffusionQLTrainer: OfflineTrainer {
    var improvementScale: Double {
        get { settings.eta }
        set { settings.eta = newValue }
    }
    var actorFrozen: Bool {
        get { settings.freezeActor }
        set { settings.freezeActor = newValue }
    }
}

extension EDPTrainer: OfflineTrainer {
    var improvementScale: Double {
        get { settings.guideCoefficient }
        set { settings.guideCoefficient = newValue }
    }
    var actorFrozen: Bool {
        get { settings.freezeActor }
        set { settings.freezeActor = newValue }
    }
}

/// The offline policy as evaluation sees it with critic-guided selection: N candidate chunks per state from the
/// actor, one picked by the twin critics (Diffusion-QL §2.7 / EDP's energy-based selection §3.8).
final class CriticSelectedPolicy: RolloutPolicy {
    let policy: DiffusionPolicy
    let select: (_ observations: Matrix, _ actions: Matrix, _ random: inout Philox) -> Void

    init(policy: DiffusionPolicy, select: @escaping (_ observations: Matrix, _ actions: Matrix, _ random: inout Philox) -> Void) {
        self.policy = policy
        self.select = select
    }

    var recordWidth: Int { policy.settings.chunkWidth }
    var actionOffset: Int { 0 }
    var broadcastParameters: Parameters { policy.base.parameters }

    func sample(observations: Matrix, mode: SamplingMode, random: inout Philox, records: Matrix) {
        select(observations, records, &random)
    }
}

/// Steps per second over the steps counted since the last `take()`, for progress lines.
struct StepRate {
    var start = Date()
    var steps = 0

    /// The rate since the window opened; opens the next window.
    mutating func take() -> Double {
        let now = Date()
        defer { start = now; steps = 0 }
        return Double(steps) / max(now.timeIntervalSince(start), 1e-9)
    }
}

/// The critics file `dppo offline` writes beside each checkpoint (`<name>-critics.safetensors`): every parameter set
/// of the trainer but the actor copies (`critic.*`, `critic_target.*`, EDP-IQL's `value.*`); metadata `format` and
/// `method` (the trainer's label, e.g. `Diffusion-QL`, `EDP-IQL`).
enum OfflineCriticsFile {
    static let format = "dppo-swift-offline-critics"

    static func write(_ trainer: OfflineTrainer, method: String, to url: URL) throws {
        var tensors: [NamedTensor] = []
        for (key, parameters) in trainer.parameterSets.sorted(by: { $0.key < $1.key }) where !key.hasPrefix("actor") {
            tensors += parameters.namedTensors(prefix: "\(key).")
        }
        try Safetensors.write(tensors, metadata: ["format": format, "method": method], to: url)
    }

    /// The file's tensors and the method that trained them; any other file is refused.
    static func read(_ url: URL) throws -> (tensors: [String: NamedTensor], method: String) {
        let (tensors, metadata) = try Safetensors.read(from: url)
        guard metadata["format"] == format else {
            throw OfflineError.invalidFile("\(url.path) is not a critics file of dppo offline (format \(metadata["format"] ?? "missing"))")
        }
        return (tensors, metadata["method"] ?? "unknown")
    }

    /// Loads the file into every non-actor parameter set of `trainer` (a file of either method fits when the parts
    /// match: EDP-IQL's also holds V); the optimizers start afresh. Returns the method that trained them.
    static func load(into trainer: OfflineTrainer, from url: URL) throws -> String {
        let (tensors, method) = try read(url)
        for (key, parameters) in trainer.parameterSets where !key.hasPrefix("actor") {
            do { try parameters.load(tensors, prefix: "\(key).") } catch {
                throw OfflineError.invalidFile("\(url.path) does not fit this run's \(key) (\(error)); the model and env sections must match the run that saved it")
            }
        }
        return method
    }
}

/// One evaluation of an offline run: the exported actor sampled as DPPO samples it, and with critic selection.
struct OfflineEvaluation: Codable {
    var step: Int
    var policy: Double
    var selected: Double
}

/// What `dppo offline --resume` continues from, rewritten at every evaluation as `checkpoints/resume-state.safetensors`:
/// every parameter set of the trainer (`actor.*`, `actor_ema.*` or `actor_target.*`, `critic.*`, `critic_target.*`,
/// `value.*`) and each Adam's moments (`optimizer.<name>.m`, `.v`) as tensors, and this struct as JSON in the metadata
/// entry `state`. With it a resumed run continues bit for bit as the uninterrupted one would have.
struct OfflineResumeState: Codable {
    static let fileName = "resume-state.safetensors"
    static let format = "dppo-swift-offline-state"
    var method: String
    /// Gradient steps done (after Monte Carlo pre-training, which a resumed run never repeats).
    var step: Int
    var trainerStep: Int
    var trainerRandom: Philox
    var samplingRandom: Philox
    var optimizerSteps: [String: Int]
    var normalization: Normalization
    var evaluations: [OfflineEvaluation]

    func save(trainer: OfflineTrainer, to url: URL) throws {
        var tensors: [NamedTensor] = []
        for (key, parameters) in trainer.parameterSets.sorted(by: { $0.key < $1.key }) { tensors += parameters.namedTensors(prefix: "\(key).") }
        for (name, optimizer) in trainer.optimizers.sorted(by: { $0.key < $1.key }) { tensors += optimizer.momentTensors(name: name) }
        let json = String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
        // Written beside and renamed over the old one: a run killed mid-write keeps the previous state.
        let partial = url.appendingPathExtension("partial")
        try Safetensors.write(tensors, metadata: ["format": Self.format, "state": json], to: partial)
        guard rename(partial.path, url.path) == 0 else { throw OfflineError.io("could not move \(partial.path) over \(url.path) (errno \(errno))") }
    }

    /// Reads the state of `run`; `restore(into:)` then loads it into a trainer built from the same config.
    static func load(run: RunDirectory) throws -> (state: OfflineResumeState, tensors: [String: NamedTensor]) {
        let url = run.checkpoints.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ConfigError("\(run.url.path) holds no \(fileName) to resume from (an offline run writes one at every evaluation, offline.eval_freq)")
        }
        let (tensors, metadata) = try Safetensors.read(from: url)
        guard metadata["format"] == format, let json = metadata["state"],
              let state = try? JSONDecoder().decode(OfflineResumeState.self, from: Data(json.utf8)) else {
            throw OfflineError.invalidFile("\(url.path) is not a resume state of dppo offline")
        }
        return (state, tensors)
    }

    func restore(into trainer: OfflineTrainer, tensors: [String: NamedTensor]) throws {
        for (key, parameters) in trainer.parameterSets {
            do { try parameters.load(tensors, prefix: "\(key).") } catch {
                throw OfflineError.invalidFile("the resume state does not fit this run's \(key) (\(error)); resume with the config the run started with")
            }
        }
        for (name, optimizer) in trainer.optimizers where !optimizer.restoreMoments(name: name, step: optimizerSteps[name], from: tensors) {
            throw OfflineError.invalidFile("the resume state lacks a complete \(name) optimizer state")
        }
        trainer.step = trainerStep
        trainer.random = trainerRandom
    }
}

/// `dppo offline`: Diffusion-QL or EDP on a dataset in DPPO's parameterisation, with progress, metrics.jsonl,
/// periodic evaluation (the exported actor sampled as DPPO samples it, and the online actor with critic selection),
/// and checkpoints that `dppo eval` reads and that DPPO fine-tuning starts from (`pretrain.checkpoint`).
/// `resume`: continue the run in `run` from its `checkpoints/resume-state.safetensors` (`dppo offline --resume`);
/// `offline.n_steps` may be raised to train on. Returns the summary written to summary.json.
@discardableResult
public func runOffline(config: RunConfig, run: RunDirectory, resume: Bool = false, changes: [ConfigResume.Change] = [],
                       log: (String) -> Void = Cluster.log) throws -> [String: Any] {
    let lock = try run.lock(job: resume ? "offline (resumed)" : "offline")
    defer { withExtendedLifetime(lock) {} }
    BLAS.setThreads(config.workerThreads(for: .offline))
    let started = Date()
    let settings = config.offline
    guard config.model.policy == .diffusion else { throw ConfigError("dppo offline trains diffusion policies: set model.policy: diffusion") }
    // A resumed run keeps its config.yaml until its state has loaded into this config's trainer.
    if !resume { try config.resolvedYAML.write(to: run.config, atomically: true, encoding: .utf8) }

    var dataConfig = config
    if !settings.dataset.isEmpty { dataConfig.pretrain.dataset = settings.dataset }
    guard !dataConfig.pretrain.dataset.isEmpty else { throw ConfigError("offline.dataset (or pretrain.dataset) must name the transitions to learn from") }
    let data = try loadPretrainingData(config: dataConfig)
    if !resume {
        try RunManifest.make(job: "offline", config: config,
                             inputs: ["dataset": dataConfig.pretrain.dataset, "normalization": dataConfig.pretrain.normalizationPath,
                                      "starting_checkpoint": settings.initCheckpoint, "init_critics": settings.initCritics],
                             threads: config.workerThreads(for: .offline)).write(to: run.url)
    }
    guard data.rewards != nil else { throw ConfigError("\(dataConfig.pretrain.dataset) has no rewards; offline RL needs them (collect it with dppo collect)") }

    let policy = DiffusionPolicy(settings: config.denoising, network: config.networkShape)
    let model = PolicyModel.diffusion(policy)
    var normalization = try data.normalization ?? Normalization(dataset: data)
    var random = Philox(seed: config.seed, stream: 0x0FF1)
    let resumed = resume ? try OfflineResumeState.load(run: run) : nil
    if let resumed {
        normalization = resumed.state.normalization
    } else if settings.initCheckpoint.isEmpty {
        model.initialize(random: &random)
    } else {
        let info = try Checkpoint.load(model, from: URL(fileURLWithPath: settings.initCheckpoint))
        if let stored = info.normalization { normalization = stored }
        log("offline: actor starts from \(settings.initCheckpoint)")
    }
    let transitions = try OfflineDataset(dataset: data, normalization: normalization, conditionSteps: config.environment.conditionSteps,
                                         horizonSteps: config.environment.horizonSteps, discount: settings.gamma,
                                         rewardTransform: settings.iqlRewardNormalization ? .iqlReturnNormalized(data) : RewardTransform(scale: settings.rewardScale))
    let sampler: ChunkSampler = settings.sampler == "dpm"
        ? DPMSolverChunkSampler(settings: DPMSolverSettings(modelCalls: settings.dpmSteps, order: min(3, settings.dpmSteps), denoisedClip: nil))
        : DDPMChunkSampler()
    let clip: Double? = settings.gradientClip > 0 ? settings.gradientClip : nil
    let trainer: OfflineTrainer
    let label: String
    if settings.method == "diffusion_ql" {
        var s = DiffusionQLSettings()
        s.eta = settings.eta
        s.actorLearningRate = settings.actorLearningRate
        s.criticLearningRate = settings.criticLearningRate
        s.gradientNormClip = clip
        s.maxQBackup = settings.maxQBackup
        s.learningRateDecaySteps = settings.learningRateDecay ? settings.steps : nil
        s.evaluationCandidates = settings.candidates
        trainer = DiffusionQLTrainer(policy: policy, settings: s, sampler: sampler, seed: config.seed)
        label = "Diffusion-QL"
    } else {
        var s = EDPSettings(variant: settings.variant)
        s.learningRate = settings.actorLearningRate
        s.criticLearningRate = settings.criticLearningRate
        s.gradientNormClip = clip
        s.td3Alpha = settings.alpha
        s.iqlExpectile = settings.iqlExpectile
        s.iqlInverseTemperature = settings.iqlInverseTemperature
        s.maxQBackup = settings.maxQBackup
        s.learningRateDecaySteps = settings.learningRateDecay ? settings.steps : nil
        s.selectionCandidates = settings.candidates
        trainer = EDPTrainer(policy: policy, settings: s, sampler: sampler, seed: config.seed)
        label = "EDP-\(settings.variant.rawValue.uppercased())"
    }
    if let resumed {
        guard resumed.state.method == label else { throw ConfigError("the run in \(run.url.path) trains \(resumed.state.method), the config \(label)") }
        guard resumed.state.step < settings.steps else {
            throw ConfigError("the run in \(run.url.path) already finished \(resumed.state.step) of offline.n_steps \(settings.steps); raise offline.n_steps to continue it")
        }
        try resumed.state.restore(into: trainer, tensors: resumed.tensors)
        try ConfigResume.record(changes, in: run, log: log)
        try config.resolvedYAML.write(to: run.config, atomically: true, encoding: .utf8)
        let discarded = try MetricsWriter.discardRecords(in: run.metrics) { record in (record["step"] as? Int).map { $0 <= resumed.state.step } ?? true }
        log("offline: resuming \(run.url.path) at step \(resumed.state.step) of \(settings.steps)\(discarded > 0 ? " (\(discarded) metrics records after it dropped)" : "")")
    } else if !settings.initCritics.isEmpty {
        let source = try OfflineCriticsFile.load(into: trainer, from: URL(fileURLWithPath: settings.initCritics))
        log("offline: critics start from \(settings.initCritics) (trained by \(source))\(settings.criticPretrainSteps > 0 ? "; no Monte Carlo pre-training" : "")")
    }
    log(String(format: "offline: %@ on %d transitions (%@), %d steps of batch %d, %@ sampling; run directory %@", label, transitions.count,
               dataConfig.pretrain.dataset, settings.steps, settings.batchSize, settings.sampler == "dpm" ? "DPM-Solver (\(settings.dpmSteps) calls)" : "DDPM",
               run.url.path))

    // The exported copy, sampled exactly as `dppo eval` and DPPO's actors sample it, and the critic-selected online actor.
    let exported = DiffusionPolicy(settings: config.denoising, network: config.networkShape)
    let selected = CriticSelectedPolicy(policy: policy) { observations, actions, _ in trainer.selectActions(observations: observations, actions: actions) }
    let metrics = try MetricsWriter(url: run.metrics, tensorBoard: run.tensorBoard, resumedAt: resumed.map { $0.state.step + 1 })
    var evaluations = resumed?.state.evaluations ?? []
    func evaluate(step: Int) throws {
        copyActor(trainer.actor(settings.exportActor), into: exported)
        let plain = try evaluatePolicy(exported, config: config, normalization: normalization, episodes: settings.evalEpisodes, seed: config.seed &+ 7777)
        let guided = try evaluatePolicy(selected, config: config, normalization: normalization, episodes: settings.evalEpisodes, seed: config.seed &+ 7777)
        evaluations.append(OfflineEvaluation(step: step, policy: plain.meanReturn, selected: guided.meanReturn))
        metrics.write(["step": step, "eval/return": plain.meanReturn, "eval/return_std": plain.stdReturn,
                       "eval/return_selected": guided.meanReturn, "eval/return_selected_std": guided.stdReturn])
        log(String(format: "offline: step %d eval return %.1f ± %.1f (%@ actor, as DPPO samples it), %.1f ± %.1f with critic selection of %d candidates",
                   step, plain.meanReturn, plain.stdReturn, settings.exportActor.rawValue, guided.meanReturn, guided.stdReturn, settings.candidates))
    }
    func save(_ name: String) throws {
        copyActor(trainer.actor(settings.exportActor), into: exported)
        let url = run.checkpoints.appendingPathComponent("\(name).safetensors")
        let info = CheckpointInfo(kind: "offline", iteration: evaluations.last?.step ?? 0, policyVersion: 0, environmentSteps: 0,
                                  model: .diffusion(exported), normalization: normalization, evalReturn: evaluations.last?.policy)
        try Checkpoint.save(model: .diffusion(exported), update: nil, info: info, to: url)
        try OfflineCriticsFile.write(trainer, method: label, to: run.checkpoints.appendingPathComponent("\(name)-critics.safetensors"))
    }

    let batch = transitions.makeBatch(size: settings.batchSize)
    var sampling = resumed?.state.samplingRandom ?? Philox(seed: config.seed, stream: 0x0FF2)
    func saveResumeState(step: Int) throws {
        let state = OfflineResumeState(method: label, step: step, trainerStep: trainer.step, trainerRandom: trainer.random, samplingRandom: sampling,
                                       optimizerSteps: trainer.optimizers.mapValues { $0.state().step }, normalization: normalization,
                                       evaluations: evaluations)
        try state.save(trainer: trainer, to: run.checkpoints.appendingPathComponent(OfflineResumeState.fileName))
    }
    var window = StepRate()
    if settings.criticPretrainSteps > 0 && settings.initCritics.isEmpty && resumed == nil {
        guard transitions.returns != nil else { throw ConfigError("offline.critic_pretrain_steps needs episodes to compute returns from") }
        for step in 1...settings.criticPretrainSteps {
            transitions.sample(into: batch, random: &sampling)
            let statistics = trainer.pretrainCriticStep(batch: batch)
            window.steps += 1
            guard statistics.criticLoss.isFinite, statistics.valueLoss.isFinite else {
                throw OfflineError.diverged("offline: the critic pre-training loss became non-finite at step \(step); lower offline.critic_lr or grad_clip")
            }
            if step % settings.logEvery == 0 || step == settings.criticPretrainSteps {
                let rate = window.take()
                metrics.write(["critic_pretrain_step": step, "pretrain/critic_loss": statistics.criticLoss, "pretrain/value_loss": statistics.valueLoss,
                               "pretrain/dataset_q": statistics.datasetQ, "pretrain/return": statistics.targetMean, "perf/steps_per_second": rate])
                log(String(format: "offline: critic pre-training %6d/%d on Monte Carlo returns | critic %.4f value %.4f | Q(data) %.2f G %.2f | %.1f steps/s",
                           step, settings.criticPretrainSteps, statistics.criticLoss, statistics.valueLoss, statistics.datasetQ, statistics.targetMean, rate))
            }
        }
    }
    let first = (resumed?.state.step ?? 0) + 1
    if resumed == nil { try evaluate(step: 0) }
    // Critic warm-up: with a fresh critic, the policy-improvement term of the first steps follows noise and pulls a
    // pre-trained actor off its data; the actor keeps only its behaviour-cloning loss (`warmup_actor: bc`), or is not
    // updated at all (`frozen`), until the critic has trained.
    let improvement = trainer.improvementScale
    func enterPhase(of step: Int) {
        let warming = step <= settings.criticWarmupSteps
        trainer.improvementScale = warming ? 0 : improvement
        trainer.actorFrozen = warming && settings.warmupActor == "frozen"
    }
    enterPhase(of: first)
    window = StepRate()
    for step in first...settings.steps {
        if step == settings.criticWarmupSteps + 1 { enterPhase(of: step) }
        transitions.sample(into: batch, random: &sampling)
        let statistics = trainer.trainStep(batch: batch)
        window.steps += 1
        let losses = [statistics.criticLoss, statistics.actorLoss, statistics.valueLoss]
        guard losses.allSatisfy(\.isFinite) else {
            throw OfflineError.diverged("offline: a loss became non-finite at step \(step) (critic \(statistics.criticLoss), actor \(statistics.actorLoss)); lower offline.actor_lr / critic_lr or grad_clip")
        }
        if step % settings.logEvery == 0 || step == settings.steps {
            let rate = window.take()
            var record: [String: Any] = ["step": step, "perf/steps_per_second": rate]
            for (name, value) in statistics.metrics { record[name] = value }
            metrics.write(record)
            log(String(format: "offline: step %6d/%d | critic %.4f diffusion %.4f guide %+.4f | Q(data) %.2f Q(policy) %.2f | %.1f steps/s, ETA %.0fs",
                       step, settings.steps, statistics.criticLoss, statistics.diffusionLoss, statistics.guideLoss, statistics.datasetQ,
                       statistics.policyQ, rate, Double(settings.steps - step) / rate))
        }
        if step % settings.evalEvery == 0 || step == settings.steps {
            try evaluate(step: step)
            try save(step == settings.steps ? "final" : "step-\(step)")
            try saveResumeState(step: step)
        } else if let signal = StopRequest.requestedSignal {
            // SIGTERM/SIGINT (`dppo offline`): the state after this step, which `--resume` continues from.
            try save("step-\(step)")
            try saveResumeState(step: step)
            let checkpoint = run.checkpoints.appendingPathComponent("step-\(step).safetensors")
            let summary: [String: Any] = ["method": label, "steps": settings.steps, "steps_done": step, "state": "stopped",
                                          "stopped_by": StopRequest.name(of: signal), "checkpoint": checkpoint.path,
                                          "wall_seconds": Date().timeIntervalSince(started)]
            try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]).write(to: run.summary)
            log("offline: \(StopRequest.name(of: signal)): stopped after step \(step) of \(settings.steps); continue with --resume \(run.url.path)")
            return summary
        }
    }
    let wall = Date().timeIntervalSince(started)
    let last = evaluations.last!, initial = evaluations.first!
    let summary: [String: Any] = [
        "method": label, "steps": settings.steps, "transitions": transitions.count, "wall_seconds": wall,
        "initial_eval_return": initial.policy, "initial_eval_return_selected": initial.selected,
        "final_eval_return": last.policy, "final_eval_return_selected": last.selected,
        "best_eval_return": evaluations.map(\.policy).max()!, "best_eval_return_selected": evaluations.map(\.selected).max()!,
        "checkpoint": run.checkpoints.appendingPathComponent("final.safetensors").path, "state": "finished",
    ]
    try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]).write(to: run.summary)
    log(String(format: "offline: done in %.0f s; eval return %.1f → %.1f (with critic selection %.1f → %.1f); checkpoint %@", wall,
               initial.policy, last.policy, initial.selected, last.selected, run.checkpoints.appendingPathComponent("final.safetensors").path))
    return summary
}
