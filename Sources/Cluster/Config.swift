import Foundation
import Algorithms
import Diffusion
import Environments
import Networks
import Offline
import Yams

/// A configuration problem, with the key path and what to do about it.
public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "config error: \(message)" }
}

/// Everything a run needs, read from one YAML file plus `key.path=value` overrides.
/// Keys follow the DPPO reference where it has one (`ft_denoising_steps`, `clip_ploss_coef`, …).
public struct RunConfig: Sendable {
    public var name = "dppo"
    public var seed: UInt64 = 42
    /// `threads`: the workers the learner's update, pretraining and offline training split their passes across;
    /// nil (`auto`) resolves per job with `workerThreads(for:)`.
    public var threads: Int?
    public var environment = EnvironmentConfig()
    public var model = ModelConfig()
    public var train = TrainConfig()
    public var pretrain = PretrainConfig()
    public var cluster = ClusterConfig()
    public var offline = OfflineConfig()
    /// The YAML of the resolved config, written to the run directory.
    public var resolvedYAML = ""
    /// Every key the config reads, with the value it resolved to (file, then `--set`, then the default), in reading
    /// order: what `dppo config get` and `dppo config show` print.
    public var resolvedValues: [(key: String, value: ConfigValue)] = []

    public struct EnvironmentConfig: Sendable {
        public var task = TaskName.pendulum
        /// The Gymnasium version whose rules (and Walker2d model) the MuJoCo tasks follow.
        public var version = GymnasiumVersion.v5
        /// The bridged environment when `task` is `gymnasium`.
        public var gymnasium = GymnasiumSettings(id: "")
        /// Sizes, episode limit and bounds of the configured task, resolved when the config is read.
        public var description = TaskDescription(Pendulum())
        public var spec: TaskSpec { TaskSpec(name: task, version: version, gymnasium: gymnasium) }
        /// Environments per actor.
        public var environmentsPerActor = 16
        public var conditionSteps = 1
        public var actSteps = 2
        public var horizonSteps = 2
    }

    public struct ModelConfig: Sendable {
        /// `diffusion` (DPPO) or `gaussian` (the Gaussian-MLP PPO baseline).
        public var policy = PolicyKind.diffusion
        public var denoisingSteps = 20
        public var fineTunedSteps = 10
        public var timeDim = 16
        public var mlpDims = [256, 256, 256]
        public var activation = Activation.relu
        public var criticDims = [256, 256, 256]
        public var minSamplingStd = 0.1
        public var minLogProbStd = 0.1
        public var randnClip = 3.0
        public var denoisedClip = 1.0
        public var useDDIM = false
        public var ddimSteps = 5
        public var eta = 1.0
        /// Gaussian policy: initial std, whether it is learned, and its clamp range.
        public var fixedStd = 0.1
        public var learnFixedStd = true
        public var stdMin = 0.01
        public var stdMax = 0.2
    }

    public struct TrainConfig: Sendable {
        public var iterations = 40
        /// Decisions per environment per iteration (N_step).
        public var stepsPerIteration = 100
        public var dppo = PPOHyperparameters()
        /// Learner-side evaluation every this many iterations (and always before the first and after the last).
        public var evalEvery = 10
        public var evalEpisodes = 32
        public var checkpointEvery = 10
        /// `use_bc_loss` and `bc_loss_coeff` as written; `dppo.bcCoefficient` is the coefficient when the loss is on, else 0.
        public var useBehaviourCloning = false
        public var behaviourCloningCoefficient = 0.0
    }

    public struct PretrainConfig: Sendable {
        /// Existing checkpoint to fine-tune from; empty means "pre-train one first".
        public var checkpoint = ""
        /// Behaviour-cloning data: our dataset file (.safetensors) or the reference's .npz; empty: scripted demonstrations.
        public var dataset = ""
        /// The reference's normalization.npz for a reference .npz dataset (its values are stored normalised).
        public var normalizationPath = ""
        public var demonstrationEpisodes = 64
        /// Torque gain of the scripted demonstrator (below 1: deliberately weak).
        public var demonstratorGain = 0.35
        public var demonstratorNoise = 0.1
        /// Tabletop demonstrations: `mixed` (each episode grasps along x or y at random) or one mode alone.
        public var demonstrationModes = "mixed"
        public var settings = PretrainingSettings()
    }

    /// `dppo offline`: Diffusion-QL or EDP on a dataset, in DPPO's parameterisation (the `model` section).
    public struct OfflineConfig: Sendable {
        /// `diffusion_ql` or `edp`.
        public var method = "edp"
        /// EDP's policy-improvement variant: `td3`, `crr` or `iql`.
        public var variant = EDPVariant.td3
        /// The transitions (our dataset format or the reference's .npz); empty: `pretrain.dataset`.
        public var dataset = ""
        /// A checkpoint whose weights start the actor (e.g. the behaviour-cloned one); empty: fresh weights.
        public var initCheckpoint = ""
        /// A critics file `dppo offline` saved (`<checkpoint>-critics.safetensors`) whose weights start the critics (and
        /// EDP-IQL's V), e.g. to train an actor against a critic trained earlier; empty: fresh (or pre-trained) critics.
        public var initCritics = ""
        public var steps = 10_000
        public var batchSize = 256
        public var gamma = 0.99
        public var rewardScale = 1.0
        /// IQL's locomotion reward normalisation r·1000/(max − min episode return) instead of `reward_scale`.
        public var iqlRewardNormalization = false
        public var actorLearningRate = 3e-4
        public var criticLearningRate = 3e-4
        /// Diffusion-QL's η (weight of the normalised Q term); EDP-TD3's α.
        public var eta = 1.0
        public var alpha = 2.0
        public var gradientClip = 5.0
        public var maxQBackup = false
        public var learningRateDecay = false
        /// `ddpm` (the policy's K-step chain) or `dpm` (DPM-Solver, `dpm_steps` model calls) for target and candidate actions.
        public var sampler = "ddpm"
        public var dpmSteps = 15
        /// Candidate actions per state for evaluation with the critic (Diffusion-QL argmax/softmax, EDP's energy-based selection).
        public var candidates = 50
        /// `online` or `ema`: which actor copy the checkpoint exports (and evaluation uses).
        public var exportActor = ActorCopy.online
        /// Steps of Monte Carlo critic pre-training (Q, and EDP-IQL's V, regressed on the data's discounted returns)
        /// before the first evaluation and TD step; not counted in `steps`.
        public var criticPretrainSteps = 0
        /// Steps in which only the critics (and the actor's behaviour-cloning loss) train.
        public var criticWarmupSteps = 0
        /// The actor during critic warm-up: `bc` (its behaviour-cloning loss only) or `frozen` (no update).
        public var warmupActor = "bc"
        /// EDP-IQL: the expectile τ of V's loss and the inverse temperature β of the weights exp(β·A).
        public var iqlExpectile = 0.7
        public var iqlInverseTemperature = 3.0
        public var evalEvery = 1_000
        public var evalEpisodes = 16
        public var logEvery = 100
    }

    public struct ClusterConfig: Sendable {
        public var actors = 2
        public var host = "127.0.0.1"
        public var basePort = 5555
        /// `strict`: every batch is the current version's; `async`: actors keep rolling out and the learner takes
        /// segments up to `maxPolicyLag` versions old (README, "Synchronisation").
        public var synchronization = "strict"
        public var maxPolicyLag = 1
        public var isAsync: Bool { synchronization == "async" }
        /// Decisions per trajectory segment message.
        public var segmentSteps = 50
        /// Seconds the learner waits for a batch before it reports missing actors.
        public var batchTimeoutSeconds = 120.0
        /// Strict mode: seconds without a segment from an actor that reports (in its heartbeats) having sent more of the
        /// current version than arrived, after which the learner asks it to roll the version again (lost segments).
        public var stallTimeoutSeconds = 10.0
        /// A file holding the cluster key (hex) that authenticates every message; empty: none.
        /// Not part of `compatibilityHash`: see `ClusterKey`.
        public var keyFile = ""
        /// Lets a learner listen beyond loopback without a cluster key (`ClusterKey.forLearner`).
        public var allowUnauthenticated = false
        /// Seconds without word from the learner (weights notice or heartbeat reply) after which an actor treats it
        /// as gone and starts saying hello again.
        public var learnerTimeoutSeconds = 10.0
        /// Seconds an actor keeps retrying hello, with backoff, before it gives up on a vanished learner.
        public var reconnectTimeoutSeconds = 600.0
        /// How segments carry the denoising chains (`ChainTransport`): `full` or `seeded`. The learner decides and tells
        /// its actors, so it is not part of `compatibilityHash`.
        public var chainTransport = ChainTransport.full
        /// Seeded transport: every n-th segment of an actor (its 1st, (n+1)-th, …) also carries its recorded chains for
        /// the learner to compare with the rebuilt ones; 0: never.
        public var chainCheckEvery = 10
        /// Seeded transport: the largest |recorded − rebuilt| chain element accepted by the start-up self-test and the
        /// sampled checks; above it the run falls back to full chains.
        public var chainTolerance = 1.0e-4
    }

    public init() {}

    public var denoising: DenoisingSettings {
        DenoisingSettings(denoisingSteps: model.denoisingSteps, fineTunedSteps: model.fineTunedSteps, horizonSteps: environment.horizonSteps,
                          actSteps: environment.actSteps, actionDim: environment.description.actionDim, minSamplingStd: model.minSamplingStd,
                          minLogProbStd: model.minLogProbStd, randnClip: model.randnClip, denoisedClip: model.denoisedClip,
                          useDDIM: model.useDDIM, ddimSteps: model.ddimSteps, eta: model.eta)
    }

    public var gaussianShape: GaussianMLPShape {
        let prototype = environment.description
        return GaussianMLPShape(actionDim: prototype.actionDim, horizonSteps: environment.horizonSteps,
                                observationDim: environment.conditionSteps * prototype.observationDim, mlpDims: model.mlpDims,
                                activation: model.activation, fixedStd: model.fixedStd, learnFixedStd: model.learnFixedStd,
                                stdMin: model.stdMin, stdMax: model.stdMax)
    }

    /// Floats per decision record an actor sends: the chain for DPPO, the action chunk for the Gaussian policy.
    public var recordWidth: Int {
        model.policy == .diffusion ? denoising.chainWidth : gaussianShape.chunkWidth
    }

    public var networkShape: DiffusionMLPShape {
        let prototype = environment.description
        return DiffusionMLPShape(actionDim: prototype.actionDim, horizonSteps: environment.horizonSteps,
                                 observationDim: environment.conditionSteps * prototype.observationDim,
                                 timeDim: model.timeDim, mlpDims: model.mlpDims, activation: model.activation)
    }

    /// Environment streams in one batch (all actors).
    public var streams: Int { cluster.actors * environment.environmentsPerActor }

    /// A stable hash of the keys actors and learner must agree on (those declared `hashed`): FNV-1a (64-bit) over
    /// `key=value` lines in declaration order, each value as `dppo config get` prints it. docs/wire-format.md.
    public var compatibilityHash: UInt64 {
        var text = ""
        for option in RunConfig.options where option.hashed { text += "\(option.key)=\(option.read(self).text)\n" }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// Loads a YAML file, applies overrides (`train.n_train_itr=10`), validates.
    public static func load(path: String, overrides: [String] = []) throws -> RunConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError("cannot read \(path): check the path")
        }
        return try parse(yaml: text, overrides: overrides, source: path)
    }

    public static func parse(yaml text: String, overrides: [String] = [], source: String = "config") throws -> RunConfig {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw ConfigError("\(source) is not valid YAML: \(error)") }
        guard var root = (loaded ?? [String: Any]()) as? [String: Any] else { throw ConfigError("\(source) must be a mapping at the top level") }
        for override in overrides { try apply(override: override, to: &root) }
        var config = RunConfig()
        var resolved: [(key: String, value: ConfigValue)] = []
        for option in options {
            let value = try option.value(from: try lookUp(option.key, in: root))
            if case .retired = option.kind { continue }
            option.write(&config, value)
            resolved.append((option.key, value))
        }
        try rejectUnknownKeys(in: root, path: "")
        try config.finish()
        config.resolvedValues = resolved
        config.resolvedYAML = (try? Yams.dump(object: root, sortKeys: true)) ?? text
        return config
    }

    static func apply(override: String, to root: inout [String: Any]) throws {
        guard let equals = override.firstIndex(of: "=") else { throw ConfigError("override '\(override)' must look like key.path=value") }
        let keys = override[..<equals].split(separator: ".").map(String.init)
        guard !keys.isEmpty else { throw ConfigError("override '\(override)' has an empty key") }
        let valueText = String(override[override.index(after: equals)...])
        let value = (try? Yams.load(yaml: valueText)).flatMap { $0 } ?? valueText
        func set(_ dictionary: inout [String: Any], _ path: ArraySlice<String>) {
            let key = path.first!
            if path.count == 1 { dictionary[key] = value; return }
            var child = dictionary[key] as? [String: Any] ?? [:]
            set(&child, path.dropFirst())
            dictionary[key] = child
        }
        set(&root, keys[...])
    }

    /// The raw YAML value at a dotted key path; nil when absent. Every section on the way must be a mapping.
    static func lookUp(_ key: String, in root: [String: Any]) throws -> Any? {
        var level = root
        let parts = key.split(separator: ".").map(String.init)
        for (depth, part) in parts.dropLast().enumerated() {
            guard let child = level[part], !(child is NSNull) else { return nil }
            guard let mapping = child as? [String: Any] else {
                throw ConfigError("\(parts[...depth].joined(separator: ".")) must be a mapping, got \(ConfigOption.show(child))")
            }
            level = mapping
        }
        return level[parts.last ?? key]
    }

    /// Refuses any key no option declares, naming the nearest known one.
    static func rejectUnknownKeys(in mapping: [String: Any], path: String) throws {
        for name in mapping.keys.sorted() {
            let key = path.isEmpty ? name : "\(path).\(name)"
            if options.contains(where: { $0.key == key }) { continue }
            if options.contains(where: { $0.key.hasPrefix(key + ".") }) {
                guard let value = mapping[name], !(value is NSNull) else { continue }
                guard let child = value as? [String: Any] else { throw ConfigError("\(key) must be a mapping, got \(ConfigOption.show(value))") }
                try rejectUnknownKeys(in: child, path: key)
                continue
            }
            let declared = options.filter { if case .retired = $0.kind { return false } else { return true } }.map(\.key)
            let nearest = declared.min { editDistance($0, key) < editDistance($1, key) }
            throw ConfigError("unknown key '\(key)' (did you mean \(nearest ?? "")? `dppo config show` lists every key)")
        }
    }

    /// Levenshtein distance, for the nearest known key of a typo.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in a.indices {
            var diagonal = row[0]
            row[0] = i + 1
            for j in b.indices {
                let above = row[j + 1]
                row[j + 1] = min(diagonal + (a[i] == b[j] ? 0 : 1), above + 1, row[j] + 1)
                diagonal = above
            }
        }
        return row[b.count]
    }

    /// What the keys imply together: the task's sizes, the BC coefficient, and the checks that span keys.
    mutating func finish() throws {
        train.dppo.bcCoefficient = train.useBehaviourCloning ? train.behaviourCloningCoefficient : 0
        if environment.task == .gymnasium && environment.gymnasium.id.isEmpty {
            throw ConfigError("env.task gymnasium needs env.gym_id, the id passed to gymnasium.make (e.g. Hopper-v5)")
        }
        do { environment.description = try environment.spec.describe() } catch {
            throw ConfigError("env.task \(environment.spec.label) cannot be set up: \(error)")
        }
        try validate()
    }

    /// The jobs that split their passes across `threads` workers.
    public enum ThreadedJob: Sendable { case learner, pretrain, offline }

    /// The worker count `job` uses: `threads` when set, else (`auto`) every core for pretraining and offline training;
    /// for the learner every core in strict mode, whose actors wait for the new weights while it updates, and in async
    /// mode, whose local actors keep rolling out, the cores they leave (at least one). A learner started as several
    /// MPI ranks on one host (`localRanks`, Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE) shares the cores among them.
    /// docs/learner-scaling.md.
    public func workerThreads(for job: ThreadedJob, cores allCores: Int = ProcessInfo.processInfo.activeProcessorCount,
                              localRanks: Int = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? "") ?? 1) -> Int {
        if let threads { return threads }
        let cores = job == .learner ? max(1, allCores / max(localRanks, 1)) : allCores
        switch job {
        case .learner where cluster.isAsync: return max(1, cores - cluster.actors)
        case .learner, .pretrain, .offline: return max(1, cores)
        }
    }

    /// The floats of one iteration's batch beyond which a config is refused before any work starts.
    static let maximumBatchFloats = 1 << 31

    /// The checks that span several keys; each key's own range is in its declaration.
    func validate() throws {
        func require(_ condition: Bool, _ message: String) throws { if !condition { throw ConfigError(message) } }
        do { try denoising.validate() } catch { throw ConfigError("\(error)") }
        try require(model.policy == .diffusion || model.stdMin <= model.stdMax, "model.std_min must be ≤ model.std_max for the Gaussian policy")
        try require(model.mlpDims.count % 2 == 1 && Set(model.mlpDims).count == 1, "model.mlp_dims must be an odd number of equal widths, e.g. [512, 512, 512]")
        try require(model.criticDims.count % 2 == 1 && Set(model.criticDims).count == 1, "model.critic_dims must be an odd number of equal widths")
        try require(model.timeDim % 2 == 0, "model.time_dim must be even")
        try require(train.dppo.advantageLowerQuantile < train.dppo.advantageUpperQuantile,
                    "train.clip_advantage_lower_quantile must be below train.clip_advantage_upper_quantile")
        try require(cluster.chainTransport == .full || model.policy == .diffusion,
                    "cluster.chain_transport: seeded rebuilds denoising chains; a Gaussian policy's records are already one action chunk, use full")
        let observationWidth = environment.conditionSteps * environment.description.observationDim
        let batchFloats = Double(streams) * Double(train.stepsPerIteration) * Double(recordWidth + observationWidth + 4)
        try require(batchFloats <= Double(RunConfig.maximumBatchFloats),
                    "one iteration's batch would hold \(Int(batchFloats)) floats (cluster.actors × env.n_envs × train.n_steps × the record width), "
                    + "over the \(RunConfig.maximumBatchFloats) a run accepts: lower one of them")
    }
}
