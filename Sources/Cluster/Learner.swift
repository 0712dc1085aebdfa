import Foundation
import Algorithms
import Datasets
import Diffusion
import Networks
import Tensors
import Transport

/// The learner process: binds PULL `trajectories`, PUB `weights`, REP `control`; assembles each
/// iteration's batch from the actors' segments (strict on-policy: only the current version counts; async: versions
/// up to `cluster.max_policy_lag` old, each decision's old log-probability taken with its own version's weights),
/// runs the DPPO update, publishes the new version, evaluates, checkpoints and writes metrics.
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
    let critic: CriticMLP
    let update: PPOUpdate
    let codec: WireCodec
    let batch: RolloutBatch
    let observationWidth: Int
    /// The checkpoint this learner continues from (`--resume`), nil for a fresh run.
    let resumed: CheckpointInfo?
    var policyVersion: UInt64 = 1
    var environmentSteps = 0
    var dropped: [String: Int] = [:]
    var bytesReceived = 0
    var segmentsReceived = 0
    /// Strict mode: times an actor was asked to roll a version again because part of its stream was lost.
    var redoRequests = 0
    /// This iteration's traffic on `trajectories` (reset when a batch starts), for the health metrics.
    var traffic = Traffic()
    /// Async mode: the policy version that sampled each batch row, the fine-tuned weights of the last
    /// `max_policy_lag` + 1 versions (for the behaviour log-probabilities), and segments that arrived for an actor whose
    /// stream was already complete, kept in order for the next batch.
    var rowVersions: [UInt64] = []
    var versionWeights: [UInt64: [Float]] = [:]
    var carried: [[(sequence: UInt64, segment: Segment)]] = []
    /// Messages taken off `trajectories` since the learner started, and how many of them (or of the segments they
    /// carried) were dropped, under any reason. Readable from any thread: the fuzz test waits on them to know that
    /// everything it sent has been judged.
    public var messagesReceived: Int { countersLock.withLock { receivedMessages } }
    public var droppedTotal: Int { countersLock.withLock { droppedCount } }
    /// Seeded chain transport (`ChainTransport`): the run's current choice (it starts as `cluster.chain_transport` and
    /// falls back to `full` when a check fails, `chainFallbackReason` saying why), the sampler that rebuilds a seeded
    /// segment's chains with its version's weights (present when the config asks for seeded chains), and the start-up
    /// self-test's result.
    var chainTransport: ChainTransport
    var chainFallbackReason: String?
    let chainRebuilder: SeededChainSampler?
    var chainRebuilderVersion: UInt64 = 0
    let chainObservations: Matrix
    let chainScratch: Matrix
    var chainSelfTest: SeededChainSampler.SelfTest?
    /// The control server of the running job, which tells actors the chain transport.
    var controlServer: ControlServer?
    /// The running job's log, and what `reportRejections` last reported.
    var logSink: ((String) -> Void)?
    var lastRejectionReport = Date.distantPast
    var reportedDrops: [String: Int] = [:]
    var reportedRefusals: [String: Int] = [:]
    private let countersLock = NSLock()
    private var receivedMessages = 0
    private var droppedCount = 0

    /// What arrived on `trajectories` while one batch was collected.
    struct Traffic {
        /// Messages of any kind and their bytes as they came off the wire.
        var messages = 0
        var wireBytes = 0
        /// Messages already waiting in the receive queue when collection began (sent during the update or evaluation).
        var queueDepth = 0
        /// Wire bytes and raw tensor-data bytes of the messages that decoded, for the compression ratio.
        var decodedWireBytes = 0
        var decodedRawBytes = 0
        /// Decisions (steps × environments) in the segments used for the batch.
        var decisions = 0
        /// Segment messages by policy lag (learner version − segment version): 0, 1, 2 or more (or from the future).
        var lag = [0, 0, 0]
        /// Seeded chains: decisions whose chains were rebuilt, the seconds that took, sampled checks made and the
        /// largest difference they found.
        var rebuiltDecisions = 0
        var rebuildSeconds = 0.0
        var chainChecks = 0
        var chainCheckMaxDifference: Float = 0
    }

    /// A fresh run fine-tuning the policy of `basePolicy`.
    public convenience init(config: RunConfig, run: RunDirectory, basePolicy: URL) throws {
        try self.init(config: config, run: run, checkpoint: basePolicy, resume: false)
    }

    /// Continues `run` from its latest checkpoint (`Checkpoint.latest`): weights, critic, optimizer states, reward
    /// scaler, random state, schedules, iteration, policy version and environment steps.
    public convenience init(config: RunConfig, resuming run: RunDirectory) throws {
        try self.init(config: config, run: run, checkpoint: try Checkpoint.latest(in: run), resume: true)
    }

    init(config: RunConfig, run: RunDirectory, checkpoint: URL, resume: Bool) throws {
        self.config = config
        codec = WireCodec(key: try ClusterKey.load(config: config)?.bytes)
        self.run = run
        BLAS.setThreads(config.cluster.learnerThreads)
        model = PolicyModel(config: config)
        let info = try Checkpoint.load(model, from: checkpoint)
        normalization = info.normalization
        observationWidth = config.networkShape.observationDim
        critic = CriticMLP(observationDim: observationWidth, mlpDims: config.model.criticDims)
        var random = Philox(seed: config.seed, stream: 0xC817)
        critic.initialize(random: &random)
        update = PPOUpdate(actor: model.makePPOActor(), critic: critic, hyperparameters: config.train.dppo, streams: config.streams, seed: config.seed)
        batch = RolloutBatch(streams: config.streams, steps: config.train.stepsPerIteration, observationWidth: observationWidth, recordWidth: config.recordWidth)
        rowVersions = [UInt64](repeating: 0, count: batch.count)
        carried = Array(repeating: [], count: config.cluster.actors)
        chainTransport = config.cluster.chainTransport
        if config.cluster.chainTransport == .seeded, case .diffusion = model {
            let rebuilder = SeededChainSampler(policy: DiffusionPolicy(settings: config.denoising, network: config.networkShape))
            rebuilder.policy.base.parameters.copy(from: model.baseParameters)
            chainRebuilder = rebuilder
        } else {
            chainRebuilder = nil
        }
        chainObservations = Matrix(rows: 0, columns: observationWidth)
        chainScratch = Matrix(rows: 0, columns: config.recordWidth)
        guard resume else { resumed = nil; return }
        try Checkpoint.restoreTraining(update, info: info, from: checkpoint)
        guard info.iteration < config.train.iterations else {
            throw ConfigError("the run in \(run.url.path) already finished \(info.iteration) of train.n_train_itr \(config.train.iterations) iterations; raise train.n_train_itr to continue it")
        }
        resumed = info
        policyVersion = info.policyVersion
        environmentSteps = info.environmentSteps
        dropped = info.droppedSegments ?? [:]
        reportedDrops = dropped
    }

    /// Runs the whole fine-tuning job and returns the summary written to summary.json.
    @discardableResult
    public func run(log: @escaping (String) -> Void = Cluster.log) throws -> [String: Any] {
        logSink = log
        defer { reportRejections(force: true); logSink = nil }
        let started = Date().addingTimeInterval(-(resumed?.wallSeconds ?? 0))
        let firstIteration = resumed?.iteration ?? 0
        let endpoints = Endpoints(host: config.cluster.host, basePort: config.cluster.basePort)
        let pull = try Socket(.pull, receiveTimeoutMilliseconds: 200)
        try pull.bind(endpoints.trajectories)
        let publisher = try Socket(.publish)
        try publisher.bind(endpoints.weights)
        let reply = try Socket(.reply, receiveTimeoutMilliseconds: 100)
        try reply.bind(endpoints.control)
        let base = model.baseParameters
        let welcome = [Messages.floats("base", base.values, count: base.count, shape: [base.count])] + Messages.normalizationTensors(normalization)
        let control = ControlServer(socket: reply, codec: codec, welcomeTensors: welcome, configHash: config.compatibilityHash,
                                    actors: config.cluster.actors, seed: config.seed)
        controlServer = control
        if config.cluster.chainTransport == .seeded { runChainSelfTest(log: log) }
        control.publish { $0.chainTransport = chainTransport; $0.chainCheckEvery = config.cluster.chainCheckEvery }
        control.start()
        defer { control.stop() }
        try config.resolvedYAML.write(to: run.config, atomically: true, encoding: .utf8)
        if let resumed {
            // Records the killed learner wrote after its last checkpoint describe updates this run redoes.
            let discarded = try MetricsWriter.discardRecords(after: resumed.iteration, in: run.metrics)
            log("learner: resuming \(run.url.path) after iteration \(resumed.iteration) (policy version \(resumed.policyVersion), \(resumed.environmentSteps) env steps); discarded \(discarded) metrics records past it")
        }
        let metrics = try MetricsWriter(url: run.metrics)
        log("learner: listening on \(endpoints.trajectories) (segments), \(endpoints.weights) (weights), \(endpoints.control) (control)")

        let initial: EvaluationResult
        if let evaluation = resumed?.initialEvaluation {
            initial = evaluation
        } else {
            initial = try evaluatePolicy(model.rollout, config: config, normalization: normalization, episodes: config.train.evalEpisodes, seed: config.seed &+ 7777)
            log(String(format: "learner: initial evaluation return %.1f ± %.1f over %d episodes", initial.meanReturn, initial.stdReturn, initial.episodes))
            metrics.write(["iteration": 0, "env_steps": 0, "eval/return": initial.meanReturn, "eval/return_std": initial.stdReturn, "policy_version": policyVersion])
        }
        var lastEval = resumed?.lastEvaluation ?? initial
        rememberWeights()
        publishWeights(control: control, publisher: publisher)

        for iteration in firstIteration..<config.train.iterations {
            let iterationStart = Date()
            let episodes = config.cluster.isAsync ? try collectAsyncBatch(pull: pull, publisher: publisher, control: control, log: log)
                                                  : try collectBatch(pull: pull, publisher: publisher, control: control, log: log)
            let rolloutSeconds = Date().timeIntervalSince(iterationStart)
            let updateStart = Date()
            update.behaviour = behaviourPolicies()
            let statistics = update.update(batch: batch, iteration: iteration)
            update.behaviour = nil
            let updateSeconds = Date().timeIntervalSince(updateStart)
            environmentSteps += batch.count * config.environment.actSteps
            policyVersion += 1
            rememberWeights()
            let isLast = iteration + 1 == config.train.iterations
            // After the last update no actor needs weights: fetches and heartbeats are answered with shutdown.
            publishWeights(control: control, publisher: publisher, final: isLast)

            var record: [String: Any] = [
                "iteration": iteration + 1, "env_steps": environmentSteps, "policy_version": policyVersion,
                "wall_seconds": Date().timeIntervalSince(started),
                "charts/episodes": episodes.count,
                "losses/policy_loss": statistics.losses.policyLoss, "losses/value_loss": statistics.losses.valueLoss,
                "losses/approx_kl": statistics.losses.approxKL, "losses/clipfrac": statistics.losses.clipFraction, "losses/ratio": statistics.losses.ratio,
                "losses/explained_variance": statistics.explainedVariance, "losses/actor_grad_norm": statistics.losses.actorGradientNorm,
                "losses/critic_grad_norm": statistics.losses.criticGradientNorm, "losses/minibatches": statistics.minibatches,
                "losses/stopped_early": statistics.stoppedEarly, "losses/bc_loss": statistics.losses.bcLoss,
                "charts/actor_lr": statistics.actorLearningRate, "charts/critic_lr": statistics.criticLearningRate,
                "perf/rollout_seconds": rolloutSeconds, "perf/update_seconds": updateSeconds,
                "perf/env_steps_per_second": Double(batch.count * config.environment.actSteps) / Date().timeIntervalSince(iterationStart),
                "transport/bytes_received": bytesReceived, "transport/segments": segmentsReceived, "transport/redo_requests": redoRequests,
                "transport/connected_actors": control.connectedActors(within: 10),
            ]
            // The actors' own view, from their latest heartbeats (within the last 10 s).
            let reports = control.allReports().filter { Date().timeIntervalSince($0.value.received) < 10 }
            for (index, report) in reports {
                record["actors/\(index)/env_steps_per_second"] = report.stepsPerSecond
                record["actors/\(index)/env_steps"] = report.environmentSteps
                record["actors/\(index)/episodes"] = report.episodes
            }
            record["actors/env_steps_per_second"] = reports.values.reduce(0) { $0 + $1.stepsPerSecond }
            let connected = record["transport/connected_actors"] as! Int
            let health = healthMetrics(rolloutSeconds: rolloutSeconds)
            record.merge(health) { $1 }
            for (reason, count) in dropped { record["transport/dropped/\(reason)"] = count }
            if let resumed, iteration == resumed.iteration { record["resumed_from_iteration"] = resumed.iteration }
            let meanReturn = episodes.isEmpty ? Double.nan : episodes.reduce(0, +) / Double(episodes.count)
            record["charts/episodic_return"] = meanReturn
            var line = String(format: "itr %3d/%d | steps %7d | %6.0f steps/s | return %8.1f (%3d ep) | v%-3d | pg %+.4f vf %.4f kl %.1e clip %.3f ev %.2f | rollout %.1fs update %.1fs",
                              iteration + 1, config.train.iterations, environmentSteps, record["perf/env_steps_per_second"] as! Double, meanReturn, episodes.count,
                              Int(policyVersion), statistics.losses.policyLoss, statistics.losses.valueLoss, statistics.losses.approxKL, statistics.losses.clipFraction,
                              statistics.explainedVariance, rolloutSeconds, updateSeconds)
            // Health, compactly: actors heard from, samples/s in, queue depth at batch start, policy lag 0/1/2+,
            // wire MB/s and compression ratio, segments dropped so far.
            line += String(format: " | %d act %.0f smp/s q%d lag %d/%d/%d %.2f MB/s x%.1f drop %d", connected,
                           health["perf/samples_per_second"] as! Double, traffic.queueDepth, traffic.lag[0], traffic.lag[1], traffic.lag[2],
                           health["transport/bytes_per_second"] as! Double / 1e6, health["transport/compression_ratio"] as! Double,
                           dropped.values.reduce(0, +))
            if isLast || (config.train.evalEvery > 0 && (iteration + 1) % config.train.evalEvery == 0) {
                lastEval = try evaluatePolicy(model.rollout, config: config, normalization: normalization, episodes: config.train.evalEpisodes, seed: config.seed &+ 7777)
                record["eval/return"] = lastEval.meanReturn
                record["eval/return_std"] = lastEval.stdReturn
                line += String(format: " | eval %.1f", lastEval.meanReturn)
            }
            metrics.write(record)
            log(line)
            if isLast || (config.train.checkpointEvery > 0 && (iteration + 1) % config.train.checkpointEvery == 0) {
                try saveCheckpoint(name: isLast ? "final" : "itr-\(iteration + 1)", iteration: iteration + 1, initial: initial, last: lastEval,
                                   wallSeconds: Date().timeIntervalSince(started))
            }
        }

        let shutdown = WireMessage(kind: .shutdown, policyVersion: policyVersion, actorIndex: 0, sequence: 0, tensors: [])
        if let bytes = try? codec.encode(shutdown) {
            for _ in 0..<10 { _ = try? publisher.send(bytes); usleep(100_000) }
        }
        var summary: [String: Any] = [
            "initial_eval_return": initial.meanReturn, "initial_eval_return_std": initial.stdReturn,
            "final_eval_return": lastEval.meanReturn, "final_eval_return_std": lastEval.stdReturn,
            "eval_episodes": config.train.evalEpisodes, "env_steps": environmentSteps, "iterations": config.train.iterations,
            "policy_version": policyVersion, "wall_seconds": Date().timeIntervalSince(started),
            "dropped_segments": dropped, "control_rejections": control.rejectionCounts(), "redo_requests": redoRequests,
            "checkpoint": run.checkpoints.appendingPathComponent("final.safetensors").path,
            "chain_transport": chainTransport.rawValue,
        ]
        if let chainFallbackReason { summary["chain_fallback"] = chainFallbackReason }
        if let chainSelfTest {
            // JSON has no infinity (a NaN difference reads as one): such a self-test reports null.
            func finite(_ value: Float) -> Any { value.isFinite ? Double(value) : NSNull() }
            summary["chain_self_test"] = ["decisions": chainSelfTest.decisions, "max_chain_difference": finite(chainSelfTest.chainDifference),
                                          "max_log_probability_difference": finite(chainSelfTest.logProbabilityDifference)]
        }
        if let resumed { summary["resumed_from_iteration"] = resumed.iteration }
        let data = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: run.summary, options: .atomic)
        log(String(format: "learner: done in %.0f s, %d env steps; eval return %.1f → %.1f; run directory %@",
                   Date().timeIntervalSince(started), environmentSteps, initial.meanReturn, lastEval.meanReturn, run.url.path))
        return summary
    }

    /// The per-iteration health metrics of `traffic` (README, "Run directory"); rates are over the batch's collection time.
    func healthMetrics(rolloutSeconds: Double) -> [String: Any] {
        let seconds = max(rolloutSeconds, 1e-9)
        return [
            "perf/samples_per_second": Double(traffic.decisions) / seconds,
            "transport/messages": traffic.messages,
            "transport/queue_depth": traffic.queueDepth,
            "transport/bytes_per_second": Double(traffic.wireBytes) / seconds,
            "transport/compression_ratio": traffic.decodedWireBytes > 0 ? Double(traffic.decodedRawBytes) / Double(traffic.decodedWireBytes) : 1.0,
            "transport/policy_lag/0": traffic.lag[0], "transport/policy_lag/1": traffic.lag[1], "transport/policy_lag/2+": traffic.lag[2],
            "transport/bytes_per_env_step": Double(traffic.wireBytes) / Double(max(traffic.decisions * config.environment.actSteps, 1)),
            "transport/chain_transport": chainTransport.rawValue,
            "transport/chain_rebuilt_decisions": traffic.rebuiltDecisions, "transport/chain_rebuild_seconds": traffic.rebuildSeconds,
            "transport/chain_checks": traffic.chainChecks, "transport/chain_check_max_diff": Double(traffic.chainCheckMaxDifference),
        ]
    }

    /// The current version's `weights` reply, telling actors the current chain transport too.
    func encodedWeights() -> [UInt8]? {
        let parameters = model.trainableParameters
        let message = WireMessage(kind: .weights, policyVersion: policyVersion, actorIndex: 0, sequence: policyVersion,
                                  tensors: [Messages.floats("fine_tuned", parameters.values, count: parameters.count, shape: [parameters.count]),
                                            Messages.meta(["chain_transport": chainTransport.rawValue, "chain_check_every": config.cluster.chainCheckEvery])])
        return try? codec.encode(message)
    }

    func publishWeights(control: ControlServer, publisher: Socket, final: Bool = false) {
        guard let bytes = encodedWeights() else { return }
        let version = policyVersion
        control.publish { $0.policyVersion = version; $0.weightsMessage = bytes; $0.shuttingDown = final }
        let notice = WireMessage(kind: .weightsNotice, policyVersion: policyVersion, actorIndex: 0, sequence: policyVersion, tensors: [])
        if let noticeBytes = try? codec.encode(notice) { _ = try? publisher.send(noticeBytes) }
    }

    /// Where one actor's stream stands while a batch is collected: the batch rows it fills (strict mode: also the
    /// step its next segment must start at), the offset in the actor's quota its next segment must have (async mode),
    /// the last segment's sequence number, and what the segments used so far held.
    struct StreamProgress {
        var rows = 0
        var nextOffset = 0
        var lastSequence: UInt64 = 0
        var segments = 0
        var episodeReturns: [Double] = []

        /// Continues the stream with `segment` (sequence number `sequence`), just placed at its end.
        mutating func extend(with segment: Segment, sequence: UInt64, quota: Int) {
            rows += segment.steps
            nextOffset = (segment.stepOffset + segment.steps) % quota
            lastSequence = sequence
            segments += 1
            episodeReturns += segment.episodeReturns.map(Double.init)
        }
    }

    /// Places `segment` at the end of its actor's stream and counts it.
    func accept(_ segment: Segment, sequence: UInt64, into stream: inout StreamProgress) {
        place(segment, at: stream.rows)
        stream.extend(with: segment, sequence: sequence, quota: config.train.stepsPerIteration)
        segmentsReceived += 1
        traffic.decisions += segment.steps * segment.environments
    }

    /// Receives segments until every actor has delivered `n_steps` decisions of the current version.
    /// Returns the returns of the training episodes that finished in them.
    ///
    /// A batch is consistent only with complete, contiguous, same-version data: each actor's rows come from one
    /// uninterrupted rollout of the current policy version, received segment by segment in order. Hence:
    /// - a segment of any other version is dropped (`stale_version`);
    /// - a segment starting at step 0 starts the actor's stream afresh; when the stream was incomplete, its partial
    ///   data is discarded (`restarted_stream` counts the segments thrown away). An actor restarted after a crash, or
    ///   one that rejoined a restarted learner, sends exactly this: the iteration's segments from its start;
    /// - any other segment is used only when it starts where the actor's stream ends and its sequence number follows
    ///   the previous segment's (the same rollout of the same process); otherwise it is dropped (`out_of_order`);
    /// - once an actor's stream is complete, further segments of this version are dropped (`duplicate`).
    func collectBatch(pull: Socket, publisher: Socket, control: ControlServer, log: (String) -> Void) throws -> [Double] {
        let steps = config.train.stepsPerIteration
        var streams = [StreamProgress](repeating: StreamProgress(), count: config.cluster.actors)
        var lastProgress = Date(), lastNotice = Date()
        traffic = Traffic()
        // Counts what is already queued: receive without waiting until the queue is empty, then wait as usual.
        try pull.setReceiveTimeout(milliseconds: 0)
        var countingQueue = true
        defer { try? pull.setReceiveTimeout(milliseconds: 200) }
        var lastSegment = [Date](repeating: Date(), count: streams.count), lastStallCheck = Date()
        var redos = [Int](repeating: 0, count: streams.count), redoPending = [Bool](repeating: false, count: streams.count)
        defer { control.publish { $0.redo = [:] } }
        while streams.contains(where: { $0.rows < steps }) {
            if Date().timeIntervalSince(lastStallCheck) > 1 {
                lastStallCheck = Date()
                requestRedoOfStalledStreams(streams, lastSegment: &lastSegment, redos: &redos, pending: &redoPending, control: control, log: log)
            }
            let received = try receiveSegment(pull: pull, publisher: publisher, countingQueue: &countingQueue, lastProgress: lastProgress,
                                              lastNotice: &lastNotice, missing: { streams.enumerated().filter { $0.element.rows < steps }.map(\.offset) },
                                              admit: { message in
                let lag = message.policyVersion <= policyVersion ? policyVersion - message.policyVersion : 2
                traffic.lag[Int(min(lag, 2))] += 1
                guard message.policyVersion == policyVersion else { drop("stale_version"); return false }
                return true
            })
            guard var (segment, message) = received else { continue }
            var stream = streams[segment.actorIndex]
            lastSegment[segment.actorIndex] = Date()
            guard stream.rows < steps else { drop("duplicate"); continue }
            guard segment.stepOffset == 0 || (segment.stepOffset == stream.rows && message.sequence == stream.lastSequence &+ 1) else {
                drop("out_of_order"); continue
            }
            if let reason = resolveChains(&segment, log: logSink ?? Cluster.log) { drop(reason); continue }
            if segment.stepOffset == 0 {
                if stream.segments > 0 { drop("restarted_stream", stream.segments) }
                stream = StreamProgress()
            }
            // The actor's stream moves again: any redo asked of it is answered (or was not needed).
            if redoPending[segment.actorIndex] {
                redoPending[segment.actorIndex] = false
                control.publish { $0.redo[segment.actorIndex] = nil }
            }
            accept(segment, sequence: message.sequence, into: &stream)
            streams[segment.actorIndex] = stream
            lastProgress = Date()
        }
        return streams.flatMap(\.episodeReturns)
    }

    /// Strict mode's answer to lost segments (a connection that broke with messages in flight, a segment dropped as
    /// malformed in transit): an actor whose heartbeats say it sent more of the current version than arrived, and from
    /// which nothing has arrived for `cluster.stall_timeout_s`, is asked (in its heartbeat replies) to roll the version
    /// again from step 0, which restarts its stream here. The request stands until a segment of the actor is used; it
    /// is made at most `maxRedos` times per actor and batch (an actor whose data is always refused, e.g. `non_finite`,
    /// is then left to `batch_timeout_s`, whose error names it), and not again while one is pending (`pending`).
    func requestRedoOfStalledStreams(_ streams: [StreamProgress], lastSegment: inout [Date], redos: inout [Int], pending: inout [Bool],
                                     control: ControlServer, log: (String) -> Void) {
        let steps = config.train.stepsPerIteration, maxRedos = 3
        for (index, stream) in streams.enumerated() where stream.rows < steps && redos[index] < maxRedos && !pending[index] {
            guard Date().timeIntervalSince(lastSegment[index]) > config.cluster.stallTimeoutSeconds,
                  let report = control.report(actor: index), report.policyVersion == policyVersion, report.sequence > stream.lastSequence else { continue }
            let version = policyVersion
            control.publish { $0.redo[index] = version }
            lastSegment[index] = Date()
            redos[index] += 1
            pending[index] = true
            redoRequests += 1
            log("learner: actor \(index) sent version \(policyVersion) up to sequence \(report.sequence), but its stream stops at step \(stream.rows) of \(steps) (sequence \(stream.lastSequence)): asking it to roll the version again (\(redos[index]) of at most \(maxRedos) this batch)")
        }
    }

    /// Takes the next message off `trajectories` while a batch is collected and decodes it as a segment of a known
    /// actor. Returns nil when none came (after repeating the weights notice every 2 s, and throwing once no batch data
    /// arrived for `batch_timeout_s`, naming the `missing` actors) or when the message was dropped. `admit` judges a
    /// segment message's version before its tensors are decoded, dropping it by returning false.
    func receiveSegment(pull: Socket, publisher: Socket, countingQueue: inout Bool, lastProgress: Date, lastNotice: inout Date,
                        missing: () -> [Int], admit: (WireMessage) -> Bool) throws -> (Segment, WireMessage)? {
        guard let bytes = try pull.receive() else {
            if countingQueue { countingQueue = false; try pull.setReceiveTimeout(milliseconds: 200); return nil }
            let idle = Date().timeIntervalSince(lastProgress)
            if Date().timeIntervalSince(lastNotice) > 2 {
                // PUB/SUB drops notices for subscribers that were not connected yet: repeat it.
                let notice = WireMessage(kind: .weightsNotice, policyVersion: policyVersion, actorIndex: 0, sequence: policyVersion, tensors: [])
                if let noticeBytes = try? codec.encode(notice) { _ = try? publisher.send(noticeBytes) }
                lastNotice = Date()
            }
            reportRejections()
            if idle > config.cluster.batchTimeoutSeconds {
                throw ConfigError("no trajectory data for \(Int(idle)) s; actors \(missing()) have not delivered version \(policyVersion) (are they running? see logs/)")
            }
            return nil
        }
        // Every message taken off the socket ends in exactly one place: a `dropped` reason or the batch
        // (`segments`, of which `restarted_stream` may later discard some). The fuzz test checks this.
        countersLock.withLock { receivedMessages += 1 }
        if countingQueue { traffic.queueDepth += 1 }
        traffic.messages += 1
        traffic.wireBytes += bytes.count
        bytesReceived += bytes.count
        let message: WireMessage
        do { message = try codec.decode(bytes) } catch { drop(error.reason); return nil }
        traffic.decodedWireBytes += bytes.count
        traffic.decodedRawBytes += message.tensors.reduce(0) { $0 + $1.bytes.count }
        guard message.kind == .segment else { drop("unexpected_kind"); return nil }
        guard admit(message) else { return nil }
        let segment: Segment
        do {
            segment = try Segment(message: message, observationWidth: observationWidth, chainWidth: config.recordWidth,
                                  environments: config.environment.environmentsPerActor, maxSteps: config.train.stepsPerIteration)
        } catch let error as SegmentError {
            drop(error.reason); return nil
        } catch let error as WireError {
            drop(error.reason); return nil
        } catch {
            // Hardening: whatever else a hostile segment makes decoding throw, drop it rather than end the run.
            drop("malformed_segment"); return nil
        }
        guard segment.actorIndex < config.cluster.actors else { drop("bad_actor_index"); return nil }
        return (segment, message)
    }

    /// Counts `count` dropped segments (or messages) under `reason`.
    func drop(_ reason: String, _ count: Int = 1) {
        dropped[reason, default: 0] += count
        countersLock.withLock { droppedCount += count }
        reportRejections()
    }

    /// Logs, at most once every 10 s (`force`: now), the segments dropped and `control` requests refused since the
    /// last report, by reason. The first rejection is logged at once; a flood costs one line per 10 s. Every count is
    /// in `metrics.jsonl` and `summary.json` whether logged or not.
    func reportRejections(force: Bool = false) {
        guard force || Date().timeIntervalSince(lastRejectionReport) >= 10 else { return }
        let refusals = controlServer?.rejectionCounts() ?? [:]
        func news(_ counts: [String: Int], _ reported: [String: Int]) -> String {
            counts.keys.sorted().compactMap { reason in
                let fresh = counts[reason, default: 0] - reported[reason, default: 0]
                return fresh > 0 ? "\(reason) \(fresh)" : nil
            }.joined(separator: ", ")
        }
        let segments = news(dropped, reportedDrops), requests = news(refusals, reportedRefusals)
        guard !segments.isEmpty || !requests.isEmpty else { return }
        lastRejectionReport = Date()
        reportedDrops = dropped
        reportedRefusals = refusals
        var parts: [String] = []
        if !segments.isEmpty { parts.append("trajectory messages dropped: \(segments)") }
        if !requests.isEmpty { parts.append("control requests refused: \(requests)") }
        logSink?("learner: " + parts.joined(separator: "; ") + " (at most one such line per 10 s; all counted in metrics.jsonl)")
    }

    /// Copies `segment` into its actor's streams from batch step `start`.
    func place(_ segment: Segment, at start: Int) {
        let e = segment.environments, o = observationWidth, c = config.recordWidth
        for step in 0..<segment.steps {
            for environment in 0..<e {
                let source = step * e + environment
                let stream = segment.actorIndex * e + environment
                let row = batch.row(stream: stream, step: start + step)
                rowVersions[row] = segment.policyVersion
                segment.observations.withUnsafeBufferPointer { batch.observations.row(row).update(from: $0.baseAddress! + source * o, count: o) }
                segment.chains.withUnsafeBufferPointer { batch.records.row(row).update(from: $0.baseAddress! + source * c, count: c) }
                batch.rewards[row] = segment.rewards[source]
                batch.terminated[row] = segment.terminated[source]
                batch.truncated[row] = segment.truncated[source]
                batch.firsts[row] = segment.firsts[source]
            }
        }
        for (slot, flat) in segment.finalIndices.enumerated() {
            let step = Int(flat) / e, environment = Int(flat) % e
            let row = batch.row(stream: segment.actorIndex * e + environment, step: start + step)
            segment.finalObservations.withUnsafeBufferPointer { batch.finalObservations.row(row).update(from: $0.baseAddress! + slot * o, count: o) }
        }
        if start + segment.steps == batch.steps {
            for environment in 0..<e {
                segment.nextObservations.withUnsafeBufferPointer {
                    batch.bootstrapObservations.row(segment.actorIndex * e + environment).update(from: $0.baseAddress! + environment * o, count: o)
                }
            }
        }
    }

    /// Async mode: keeps a copy of the current version's fine-tuned weights and forgets versions more than
    /// `max_policy_lag` behind it.
    func rememberWeights() {
        guard config.cluster.isAsync else { return }
        versionWeights[policyVersion] = Array(model.trainableParameters.valueBuffer)
        let lag = UInt64(config.cluster.maxPolicyLag)
        for version in versionWeights.keys where version + lag < policyVersion { versionWeights[version] = nil }
    }

    /// The weights that sampled each row of the batch when some rows are older than the current version; nil when
    /// every row is the current version's (always in strict mode), so the update uses the current weights.
    func behaviourPolicies() -> BehaviourPolicies? {
        guard config.cluster.isAsync, rowVersions.contains(where: { $0 != policyVersion }) else { return nil }
        var snapshots: [[Float]] = []
        var indices: [UInt64: Int] = [:]
        let rows = rowVersions.map { version -> Int in
            guard version != policyVersion else { return -1 }
            if let index = indices[version] { return index }
            guard let weights = versionWeights[version] else { preconditionFailure("no weights kept for policy version \(version)") }
            snapshots.append(weights)
            indices[version] = snapshots.count - 1
            return snapshots.count - 1
        }
        return BehaviourPolicies(snapshots: snapshots, rowSnapshots: rows)
    }

    /// Async mode (`cluster.sync: async`): receives segments until every actor's streams hold `n_steps` decisions, and
    /// returns the returns of the training episodes that finished in them.
    ///
    /// The batch takes the first segments that arrive whose policy lag (current version − segment version) is at
    /// most `max_policy_lag` and whose weights the learner still keeps; others are dropped (`stale_version`). Each
    /// segment is one version's; a batch may mix versions across and within actors, and every row is tagged with its
    /// version so that PPO's old log-probabilities are the behaviour policy's. GAE needs contiguous steps, so per actor
    /// the batch holds one contiguous run of `n_steps` decisions from consecutive segments of one actor process:
    /// - the run may start with any segment (placed at batch step 0, whatever its offset in the actor's quota);
    /// - a segment continues it only when its sequence number follows the previous one and its offset is where that
    ///   one ended (cyclically); otherwise the partial run is discarded (`restarted_stream`) and the segment starts a
    ///   new one (a stale segment inside a run thus breaks it);
    /// - segments arriving for an actor whose run is complete are kept, in order, for the next batch (at most
    ///   `n_steps` decisions per actor; beyond that `duplicate`), where their lag is judged again.
    /// Segments are counted in `transport/policy_lag/*` when judged for a batch (a carried one in the batch that uses it).
    func collectAsyncBatch(pull: Socket, publisher: Socket, control: ControlServer, log: (String) -> Void) throws -> [Double] {
        let steps = config.train.stepsPerIteration
        var streams = [StreamProgress](repeating: StreamProgress(), count: config.cluster.actors)
        var lastProgress = Date(), lastNotice = Date()
        traffic = Traffic()
        let maxLag = UInt64(config.cluster.maxPolicyLag)

        func consider(_ received: Segment, sequence: UInt64) {
            var segment = received
            let lag = segment.policyVersion <= policyVersion ? policyVersion - segment.policyVersion : 2
            let usable = segment.policyVersion <= policyVersion && lag <= maxLag && versionWeights[segment.policyVersion] != nil
            var stream = streams[segment.actorIndex]
            if usable && stream.rows >= steps {
                // Kept for the next batch, which judges (and counts) it then.
                let waiting = carried[segment.actorIndex].reduce(0) { $0 + $1.segment.steps }
                if waiting + segment.steps <= steps { carried[segment.actorIndex].append((sequence, segment)) } else { drop("duplicate") }
                return
            }
            traffic.lag[Int(min(lag, 2))] += 1
            guard usable else { drop("stale_version"); return }
            if let reason = resolveChains(&segment, log: logSink ?? Cluster.log) { drop(reason); return }
            let continues = stream.rows > 0 && sequence == stream.lastSequence &+ 1 && segment.stepOffset == stream.nextOffset
                && stream.rows + segment.steps <= steps
            if !continues {
                if stream.segments > 0 { drop("restarted_stream", stream.segments) }
                stream = StreamProgress()
                guard segment.steps <= steps else { drop("bad_shape"); return }
            }
            accept(segment, sequence: sequence, into: &stream)
            streams[segment.actorIndex] = stream
            lastProgress = Date()
        }

        let waiting = carried
        carried = Array(repeating: [], count: config.cluster.actors)
        for list in waiting { for (sequence, segment) in list { consider(segment, sequence: sequence) } }

        try pull.setReceiveTimeout(milliseconds: 0)
        var countingQueue = true
        defer { try? pull.setReceiveTimeout(milliseconds: 200) }
        while streams.contains(where: { $0.rows < steps }) {
            let received = try receiveSegment(pull: pull, publisher: publisher, countingQueue: &countingQueue, lastProgress: lastProgress,
                                              lastNotice: &lastNotice, missing: { streams.enumerated().filter { $0.element.rows < steps }.map(\.offset) },
                                              admit: { _ in true })
            guard let (segment, message) = received else { continue }
            consider(segment, sequence: message.sequence)
        }
        return streams.flatMap(\.episodeReturns)
    }

    func saveCheckpoint(name: String, iteration: Int, initial: EvaluationResult, last: EvaluationResult, wallSeconds: Double) throws {
        var info = CheckpointInfo(kind: "finetune", iteration: iteration, policyVersion: policyVersion, environmentSteps: environmentSteps,
                                  model: model, normalization: normalization, actorOptimizerStep: update.actorOptimizer.step,
                                  criticOptimizerStep: update.criticOptimizer.step, rewardScaler: update.rewardScaler, evalReturn: last.meanReturn)
        info.learnerRandom = update.random
        info.actorScheduleSteps = update.actorScheduleSteps
        info.criticScheduleSteps = update.criticScheduleSteps
        info.initialEvaluation = initial
        info.lastEvaluation = last
        info.wallSeconds = wallSeconds
        info.droppedSegments = dropped
        try Checkpoint.save(model: model, update: update, info: info, to: run.checkpoints.appendingPathComponent("\(name).safetensors"))
    }
}
