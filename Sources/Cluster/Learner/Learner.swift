import Foundation
import Algorithms
import Datasets
import Diffusion
import Networks
import Tensors
import Transport

/// The learner process: binds PULL `trajectories`, PUB `weights`, REP `control`; assembles each iteration's batch from
/// the actors' segments (`BatchAssembler`), runs the DPPO update, publishes the new version (`WeightStore`),
/// evaluates (`PolicyEvaluator`), checkpoints and writes metrics (`IterationMetrics`).
///
/// Versions and iterations: the starting policy is version 1, and the update of iteration i (1-based) publishes
/// version i + 1; the checkpoint written after iteration i holds iteration i and version i + 1. A learner resumed
/// from that checkpoint behaves as the uninterrupted run from that point on: it re-announces version i + 1 (the
/// checkpoint's weights), collects iteration i + 1's batch with it, and its next publication is version i + 2.
public final class Learner {
    let config: RunConfig
    let run: RunDirectory
    let model: PolicyModel
    let normalization: Normalization?
    let update: PPOUpdate
    let codec: WireCodec
    let drops: DropLedger
    var assembler: BatchAssembler
    let weights: WeightStore
    let chains: ChainResolver
    let evaluator: PolicyEvaluator
    /// The checkpoint this learner continues from (`--resume`), nil for a fresh run.
    let resumed: CheckpointInfo?
    /// The checkpoint this process started from: the base policy of a fresh run, the resumed checkpoint otherwise.
    let startedFrom: URL
    /// The resume's changes to the saved config, appended to config-history.yaml with the new config.yaml.
    let acceptedChanges: [ConfigResume.Change]
    var environmentSteps = 0
    /// The other learner ranks sharing every update (`mpirun -np N dppo learner`), nil for a learner on its own.
    let ranks: LearnerRanks?
    /// What the running job last logged about rejections (`reportRejections`).
    var rejectionReport = RejectionReport()
    /// This process's hold on the run directory (`RunDirectory.lock`).
    let lock: RunLock

    /// Messages taken off `trajectories` since the learner started, and how many of them (or of the segments they
    /// carried) were dropped, under any reason. Readable from any thread.
    public var messagesReceived: Int { drops.messagesReceived }
    public var droppedTotal: Int { drops.droppedTotal }
    /// Segments dropped since the run began, by reason.
    public var dropped: [String: Int] { drops.byReason }

    /// A fresh run fine-tuning the policy of `basePolicy`.
    public convenience init(config: RunConfig, run: RunDirectory, basePolicy: URL, group: MPIGroup? = nil) throws {
        try self.init(config: config, run: run, checkpoint: basePolicy, resume: false, group: group)
    }

    /// Continues `run` from its latest checkpoint (`Checkpoint.latest`): weights, critic, optimizer states, reward
    /// scaler, random state, schedules, iteration, policy version and environment steps.
    /// `changes`: what the resume changes in the run's saved config, recorded when the run directory is opened.
    public convenience init(config: RunConfig, resuming run: RunDirectory, changes: [ConfigResume.Change] = [], group: MPIGroup? = nil) throws {
        try self.init(config: config, run: run, checkpoint: try Checkpoint.latest(in: run), resume: true, changes: changes, group: group)
    }

    init(config: RunConfig, run: RunDirectory, checkpoint: URL, resume: Bool, changes: [ConfigResume.Change] = [], group: MPIGroup? = nil) throws {
        if let group, group.size > 1, config.cluster.isAsync {
            throw ConfigError("several learner ranks need cluster.sync: strict (async batches mix policy versions, which one rank scores)")
        }
        lock = try run.lock(job: resume ? "learner (resumed)" : "learner")
        if !resume, let size = try? FileManager.default.attributesOfItem(atPath: run.metrics.path)[.size] as? Int, size > 0 {
            throw RunDirectoryError("\(run.url.path) holds a run already (metrics.jsonl): continue it with --resume \(run.url.path), "
                                    + "or start this one in a new directory")
        }
        self.config = config
        ranks = group.map { LearnerRanks(group: $0) }
        codec = WireCodec(key: try ClusterKey.forLearner(config: config)?.bytes)
        self.run = run
        // Parallelism comes from the update's shards, each with single-threaded BLAS (docs/learner-scaling.md).
        BLAS.setThreads(1)
        model = PolicyModel(config: config)
        let info = try Checkpoint.load(model, from: checkpoint)
        normalization = info.normalization
        evaluator = PolicyEvaluator(config: config, normalization: normalization, policy: model.rollout(shards: config.workerThreads(for: .learner)))
        let observationWidth = config.networkShape.observationDim
        let critic = CriticMLP(observationDim: observationWidth, mlpDims: config.model.criticDims)
        var random = Philox(seed: config.seed, stream: 0xC817)
        critic.initialize(random: &random)
        update = PPOUpdate(actor: model.makePPOActor(), critic: critic, hyperparameters: config.train.dppo, streams: config.streams,
                           seed: config.seed, shards: config.workerThreads(for: .learner), group: group)
        if resume {
            try Checkpoint.restoreTraining(update, info: info, from: checkpoint)
            guard info.iteration < config.train.iterations else {
                throw ConfigError("the run in \(run.url.path) already finished \(info.iteration) of train.n_train_itr \(config.train.iterations) iterations; raise train.n_train_itr to continue it")
            }
        }
        resumed = resume ? info : nil
        startedFrom = checkpoint
        acceptedChanges = changes
        environmentSteps = resumed?.environmentSteps ?? 0
        drops = DropLedger(counts: resumed?.droppedSegments ?? [:])
        rejectionReport.drops = drops.byReason
        assembler = BatchAssembler(mode: config.cluster.isAsync ? .async(maxPolicyLag: UInt64(config.cluster.maxPolicyLag)) : .strict,
                                   actors: config.cluster.actors, steps: config.train.stepsPerIteration,
                                   environments: config.environment.environmentsPerActor, observationWidth: observationWidth,
                                   recordWidth: config.recordWidth, stallTimeout: config.cluster.stallTimeoutSeconds, drops: drops)
        weights = WeightStore(parameters: model.trainableParameters, version: resumed?.policyVersion ?? 1,
                              keptLag: config.cluster.isAsync ? UInt64(config.cluster.maxPolicyLag) : nil, codec: codec,
                              chainTransport: config.cluster.chainTransport, chainCheckEvery: config.cluster.chainCheckEvery)
        var rebuilder: SeededChainSampler?
        if config.cluster.chainTransport == .seeded, case .diffusion = model {
            rebuilder = SeededChainSampler(policy: DiffusionPolicy(settings: config.denoising, network: config.networkShape),
                                           shards: config.workerThreads(for: .learner))
            rebuilder?.policy.base.parameters.copy(from: model.baseParameters)
        }
        chains = ChainResolver(transport: config.cluster.chainTransport, rebuilder: rebuilder, observationWidth: observationWidth,
                               recordWidth: config.recordWidth, tolerance: config.cluster.chainTolerance)
    }

    /// Runs the whole fine-tuning job and returns the summary written to summary.json.
    @discardableResult
    public func run(log: @escaping (String) -> Void = Cluster.log) throws -> [String: Any] {
        let started = Date().addingTimeInterval(-(resumed?.wallSeconds ?? 0))
        let endpoints = Endpoints(host: config.cluster.host, basePort: config.cluster.basePort)
        let sockets = try LearnerSockets(endpoints: endpoints)
        let receiver = TrajectoryReceiver(socket: sockets.trajectories, codec: codec, drops: drops, actors: config.cluster.actors,
                                          observationWidth: config.networkShape.observationDim, recordWidth: config.recordWidth,
                                          environments: config.environment.environmentsPerActor, maxSteps: config.train.stepsPerIteration)
        let base = model.baseParameters
        let welcome = [Messages.floats("base", base.values, count: base.count, shape: [base.count])] + Messages.normalizationTensors(normalization)
        let control = ControlServer(socket: sockets.control, codec: codec, welcomeTensors: welcome, configHash: config.compatibilityHash,
                                    actors: config.cluster.actors, seed: config.seed)
        defer { reportRejections(control: control, force: true, log: log) }
        if config.cluster.chainTransport == .seeded {
            chains.runSelfTest(weights: weights, environments: config.environment.environmentsPerActor,
                               steps: min(config.cluster.segmentSteps, config.train.stepsPerIteration), seed: config.seed, log: log)
        }
        control.publish { [chains, config] in $0.chainTransport = chains.transport; $0.chainCheckEvery = config.cluster.chainCheckEvery }
        control.start()
        defer { control.stop() }
        let metrics = try openRunDirectory(log: log)
        _ = try ranks?.agree(on: LearnerRanks.Setup(shards: update.shardCount, config: config))
        try ranks?.shareState(update: update, base: model.baseParameters)
        log("learner: listening on \(endpoints.trajectories) (segments), \(endpoints.weights) (weights), \(endpoints.control) (control); "
            + "update on \(update.shardCount) threads" + (ranks.map { " × \($0.group.size) ranks" } ?? ""))
        let initial = try resumed?.initialEvaluation ?? evaluateInitialPolicy(metrics: metrics, log: log)
        var lastEvaluation = resumed?.lastEvaluation ?? initial
        try publishWeights(version: weights.version, control: control, publisher: sockets.weights)

        // SIGTERM or SIGINT (`StopRequest`, installed by `dppo learner`): checkpoint the last whole iteration, write
        // summary.json, tell the actors to shut down, return. `snapshot`: that state, kept before an update abandoned.
        func stop(afterIteration done: Int, snapshot: Checkpoint.Encoded?) throws -> [String: Any] {
            let signal = StopRequest.name(of: StopRequest.requestedSignal ?? SIGTERM)
            let url = run.checkpoints.appendingPathComponent("itr-\(done).safetensors")
            if let snapshot {
                try snapshot.write(to: url)
            } else {
                try saveCheckpoint(name: "itr-\(done)", iteration: done, initial: initial, last: lastEvaluation,
                                   wallSeconds: Date().timeIntervalSince(started))
            }
            log("learner: \(signal): stopped after iteration \(done) of \(config.train.iterations)"
                + (snapshot == nil ? "" : ", abandoning iteration \(done + 1)'s update")
                + "; checkpoint \(url.lastPathComponent) (continue with --resume \(run.url.path))")
            _ = ranks?.shareWork(iteration: nil, batch: assembler.batch)
            control.publish { $0.shuttingDown = true }
            broadcastShutdown(publisher: sockets.weights)
            return try writeSummary(initial: initial, last: lastEvaluation, started: started, control: control,
                                    stop: (signal, done, url), log: log)
        }

        for iteration in (resumed?.iteration ?? 0)..<config.train.iterations {
            let iterationStart = Date()
            let episodeReturns: [Double]
            do {
                episodeReturns = try collectBatch(receiver: receiver, publisher: sockets.weights, control: control, log: log)
            } catch is StopRequested {
                return try stop(afterIteration: iteration, snapshot: nil)
            }
            let rolloutSeconds = Date().timeIntervalSince(iterationStart)
            let updateStart = Date()
            _ = ranks?.shareWork(iteration: iteration, batch: assembler.batch)
            // A stop mid-update abandons it; the state from before it is what the checkpoint then holds. Several
            // ranks finish the update together instead (they wait on each other inside it).
            let snapshot = StopRequest.isInstalled && ranks == nil
                ? try encodeCheckpoint(iteration: iteration, initial: initial, last: lastEvaluation, wallSeconds: Date().timeIntervalSince(started))
                : nil
            let statistics = update.update(batch: assembler.batch, iteration: iteration,
                                           behaviour: weights.behaviourPolicies(rowVersions: assembler.rowVersions),
                                           shouldStop: { snapshot != nil && StopRequest.isRequested })
            if statistics.abandoned { return try stop(afterIteration: iteration, snapshot: snapshot) }
            // Never publish weights no actor can use: stop with the last checkpoint as it was.
            let trained = UnsafeBufferPointer(start: model.trainableParameters.values, count: model.trainableParameters.count)
            if let bad = trained.firstIndex(where: { !$0.isFinite }) {
                throw ClusterError.diverged("iteration \(iteration + 1)'s update made the policy's parameter \(bad) \(trained[bad]); nothing was published "
                                  + "(the last checkpoint is intact): lower train.actor_lr, set train.max_grad_norm, or check the rewards")
            }
            try ranks?.checkAgreement(update: update, iteration: iteration + 1)
            let updateSeconds = Date().timeIntervalSince(updateStart)
            environmentSteps += assembler.batch.count * config.environment.actSteps
            let isLast = iteration + 1 == config.train.iterations
            // After the last update no actor needs weights: fetches and heartbeats are answered with shutdown.
            try publishWeights(version: weights.version + 1, control: control, publisher: sockets.weights, final: isLast)
            var record = iterationMetrics(iteration: iteration + 1, started: started, iterationStart: iterationStart,
                                          rolloutSeconds: rolloutSeconds, updateSeconds: updateSeconds, statistics: statistics,
                                          episodeReturns: episodeReturns, receiver: receiver, control: control)
            // A stop asked for during the update skips the evaluation: the checkpoint comes first (within 10 s).
            if evaluator.isDue(afterIteration: iteration + 1) && !(StopRequest.isRequested && !isLast) {
                lastEvaluation = try evaluator.evaluate()
                record.evaluation = IterationMetrics.Evaluation(lastEvaluation)
            }
            try metrics.write(record)
            log(record.consoleLine(iterations: config.train.iterations))
            if isLast || (config.train.checkpointEvery > 0 && (iteration + 1) % config.train.checkpointEvery == 0) {
                try saveCheckpoint(name: isLast ? "final" : "itr-\(iteration + 1)", iteration: iteration + 1, initial: initial,
                                   last: lastEvaluation, wallSeconds: Date().timeIntervalSince(started))
            }
            if StopRequest.isRequested && !isLast { return try stop(afterIteration: iteration + 1, snapshot: nil) }
        }
        // An error thrown before this point ends every rank at once (`MPIGroup.abort`, from the learner command); a rank
        // that crashes is noticed by mpirun, which stops the others (under srun: --kill-on-bad-exit).
        _ = ranks?.shareWork(iteration: nil, batch: assembler.batch)
        broadcastShutdown(publisher: sockets.weights)
        return try writeSummary(initial: initial, last: lastEvaluation, started: started, control: control, log: log)
    }
}
