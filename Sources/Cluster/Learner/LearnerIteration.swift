import Foundation
import Algorithms
import Transport

/// The learner's three bound endpoints (docs/architecture.md, "Processes").
struct LearnerSockets {
    let trajectories: Socket
    let weights: Socket
    let control: Socket

    init(endpoints: Endpoints) throws(SocketError) {
        trajectories = try Socket(.pull, receiveTimeoutMilliseconds: TrajectoryReceiver.waitMilliseconds)
        try trajectories.bind(endpoints.trajectories)
        weights = try Socket(.publish)
        try weights.bind(endpoints.weights)
        control = try Socket(.reply, receiveTimeoutMilliseconds: 100)
        try control.bind(endpoints.control)
    }
}

/// What `Learner.reportRejections` last logged, and when.
struct RejectionReport {
    var time = Date.distantPast
    var drops: [String: Int] = [:]
    var refusals: [String: Int] = [:]
}

extension Learner {
    /// Writes the resolved config, drops the metrics records a killed learner wrote after its last checkpoint (a
    /// resumed run redoes those updates), and opens `metrics.jsonl`.
    func openRunDirectory(log: (String) -> Void) throws -> MetricsWriter {
        try ConfigResume.record(acceptedChanges, in: run, log: log)
        try config.resolvedYAML.write(to: run.config, atomically: true, encoding: .utf8)
        // A resumed run keeps the inputs its first process recorded and adds the checkpoint it continued from.
        let earlier = resumed == nil ? nil : try? RunManifest.read(from: run.url)
        var inputs = ["starting_checkpoint": startedFrom.path, "starting_checkpoint_sidecar": Checkpoint.sidecarURL(for: startedFrom).path]
        if earlier != nil { inputs = ["resumed_from": startedFrom.path] }
        var manifest = try RunManifest.make(job: "learner", config: config, inputs: inputs, threads: update.shardCount,
                                            ranks: ranks?.group.size ?? 1)
        if let earlier { manifest.inputs.merge(earlier.inputs) { new, _ in new } }
        try manifest.write(to: run.url)
        if let resumed {
            let discarded = try MetricsWriter.discardRecords(after: resumed.iteration, in: run.metrics)
            log("learner: resuming \(run.url.path) after iteration \(resumed.iteration) (policy version \(resumed.policyVersion), \(resumed.environmentSteps) env steps); discarded \(discarded) metrics records past it")
        }
        return try MetricsWriter(url: run.metrics, tensorBoard: run.tensorBoard, resumedAt: resumed.map { $0.iteration + 1 })
    }

    /// Evaluates the starting policy, iteration 0 of `metrics.jsonl`.
    func evaluateInitialPolicy(metrics: MetricsWriter, log: (String) -> Void) throws -> EvaluationResult {
        let initial = try evaluator.evaluate()
        log("learner: initial evaluation \(initial.summary) over \(initial.episodes) episodes")
        try metrics.write(InitialEvaluationRecord(policyVersion: weights.version, evaluation: initial))
        return initial
    }

    /// Receives segments until every actor has delivered `n_steps` decisions the batch can use (`BatchAssembler` says
    /// which), and returns the returns of the training episodes that finished in them.
    func collectBatch(receiver: TrajectoryReceiver, publisher: Socket, control: ControlServer, log: (String) -> Void) throws -> [Double] {
        let version = weights.version
        chains.counts = ChainResolver.Counts()
        let prepare: (inout Segment) -> String? = { [chains, weights] in chains.resolve(&$0, weights: weights, log: log) }
        assembler.begin(version: version, holdsWeights: weights.holds, prepare: prepare)
        try receiver.beginBatch()
        var publishedRedo: [Int: UInt64] = [:]
        defer {
            receiver.endBatch()
            control.publish { $0.redo = [:] }
        }
        // What judging a segment changed, told at once: drops to the log, redo requests and the chain transport to
        // the actors.
        func announceChanges() throws {
            reportRejections(control: control, log: log)
            if assembler.redoTable != publishedRedo {
                let table = assembler.redoTable
                control.publish { $0.redo = table }
                publishedRedo = table
            }
            if chains.transport != weights.chainTransport { try announceChainTransport(control: control) }
        }
        try announceChanges()
        var lastNotice = Date()
        while !assembler.isComplete {
            if StopRequest.isRequested { throw StopRequested() }
            let positions = { (actor: Int) in
                control.report(actor: actor).map { BatchAssembler.ActorPosition(policyVersion: $0.policyVersion, sequence: $0.sequence) }
            }
            for request in assembler.redoRequests(now: Date(), positions: positions) {
                log("learner: actor \(request.actor) sent version \(version) up to sequence \(request.reportedSequence), but its stream stops at step \(request.rows) of \(config.train.stepsPerIteration) (sequence \(request.lastSequence)): asking it to roll the version again (\(request.count) of at most \(BatchAssembler.maxRedos) this batch)")
            }
            try announceChanges()
            switch try receiver.next(admit: { assembler.admits(messageVersion: $0) }) {
            case .nothing:
                if Date().timeIntervalSince(lastNotice) > 2 {
                    // PUB/SUB drops notices for subscribers that were not connected yet: repeat it.
                    sendWeightsNotice(publisher: publisher)
                    lastNotice = Date()
                }
                let idle = Date().timeIntervalSince(assembler.lastProgress)
                if idle > config.cluster.batchTimeoutSeconds {
                    throw ClusterError.batchTimeout("no trajectory data for \(Int(idle)) s; actors \(assembler.missingActors) have not delivered version \(version) (are they running? see logs/)")
                }
            case .judged:
                break
            case .segment(let segment, let sequence):
                assembler.offer(segment, sequence: sequence, holdsWeights: weights.holds, prepare: prepare)
            }
            try announceChanges()
        }
        return assembler.episodeReturns
    }

    /// Makes the current weights `version` and publishes them: the `weights` reply on `control` and a notice on
    /// `weights`. `final`: the run's last version, after which control answers fetches and heartbeats with shutdown.
    func publishWeights(version: UInt64, control: ControlServer, publisher: Socket, final: Bool = false) throws {
        try weights.advance(to: version, chainTransport: chains.transport)
        let message = weights.message
        let transport = chains.transport
        control.publish {
            $0.policyVersion = version
            $0.weightsMessage = message
            $0.shuttingDown = final
            $0.chainTransport = transport
        }
        sendWeightsNotice(publisher: publisher)
    }

    /// Tells actors the run fell back to full chains: in their next heartbeat reply, weights or welcome.
    func announceChainTransport(control: ControlServer) throws {
        try weights.announce(chainTransport: chains.transport)
        let transport = chains.transport, message = weights.message
        control.publish { snapshot in
            snapshot.chainTransport = transport
            if !snapshot.weightsMessage.isEmpty { snapshot.weightsMessage = message }
        }
    }

    func sendWeightsNotice(publisher: Socket) {
        let notice = WireMessage(kind: .weightsNotice, policyVersion: weights.version, actorIndex: 0, sequence: weights.version, tensors: [])
        if let bytes = try? codec.encode(notice) { _ = try? publisher.send(bytes) }
    }

    func broadcastShutdown(publisher: Socket) {
        let shutdown = WireMessage(kind: .shutdown, policyVersion: weights.version, actorIndex: 0, sequence: 0, tensors: [])
        guard let bytes = try? codec.encode(shutdown) else { return }
        for _ in 0..<10 { _ = try? publisher.send(bytes); usleep(100_000) }
    }

    /// The metrics of the iteration that just completed (1-based `iteration`); rates are over the batch's collection.
    func iterationMetrics(iteration: Int, started: Date, iterationStart: Date, rolloutSeconds: Double, updateSeconds: Double,
                          statistics: PPOStatistics, episodeReturns: [Double], receiver: TrajectoryReceiver,
                          control: ControlServer) -> IterationMetrics {
        // A batch that was waiting in the queue (async mode) is collected in no measurable time: its rates are
        // unknown (null in metrics.jsonl, n/a on the console), not millions.
        let seconds = rolloutSeconds >= IterationMetrics.shortestMeasurableSeconds ? rolloutSeconds : .nan
        let traffic = receiver.traffic
        let batchSteps = assembler.batch.count * config.environment.actSteps
        // The actors' own view, from their latest heartbeats (within the last 10 s).
        let reports = control.allReports().filter { Date().timeIntervalSince($0.value.received) < 10 }
        let progress = IterationMetrics.Progress(
            iteration: iteration, environmentSteps: environmentSteps, policyVersion: weights.version,
            wallSeconds: Date().timeIntervalSince(started),
            resumedFromIteration: resumed.flatMap { $0.iteration == iteration - 1 ? $0.iteration : nil })
        let performance = IterationMetrics.Performance(
            rolloutSeconds: rolloutSeconds, updateSeconds: updateSeconds,
            environmentStepsPerSecond: Double(batchSteps) / Date().timeIntervalSince(iterationStart),
            samplesPerSecond: Double(assembler.decisions) / seconds,
            actorsEnvironmentStepsPerSecond: reports.values.reduce(0) { $0 + $1.stepsPerSecond },
            valuePassSeconds: update.timing.prepareSeconds, updateThreads: update.shardCount,
            updateSerialFraction: update.timing.serialFraction)
        let counts = chains.counts, lag = assembler.lagCounts
        let transport = IterationMetrics.TransportHealth(
            bytesReceived: receiver.bytesReceived, segments: assembler.segmentsUsed, redoRequests: assembler.redoRequestCount,
            connectedActors: control.connectedActors(within: 10), messages: traffic.messages, queueDepth: traffic.queueDepth,
            bytesPerSecond: Double(traffic.wireBytes) / seconds,
            compressionRatio: traffic.decodedWireBytes > 0 ? Double(traffic.decodedRawBytes) / Double(traffic.decodedWireBytes) : 1.0,
            policyLag0: lag[0], policyLag1: lag[1], policyLag2OrMore: lag[2],
            bytesPerEnvironmentStep: Double(traffic.wireBytes) / Double(max(assembler.decisions * config.environment.actSteps, 1)),
            chainTransport: chains.transport.rawValue, chainRebuiltDecisions: counts.rebuiltDecisions,
            chainRebuildSeconds: counts.rebuildSeconds, chainChecks: counts.checks,
            chainCheckMaxDifference: Double(counts.maxCheckDifference))
        let actors = reports.mapValues {
            IterationMetrics.ActorRates(environmentStepsPerSecond: $0.stepsPerSecond, environmentSteps: $0.environmentSteps, episodes: $0.episodes)
        }
        return IterationMetrics(progress: progress, training: .init(statistics: statistics, episodeReturns: episodeReturns),
                                performance: performance, transport: transport, actors: actors, dropped: drops.byReason,
                                evaluation: nil)
    }

    func saveCheckpoint(name: String, iteration: Int, initial: EvaluationResult, last: EvaluationResult, wallSeconds: Double) throws {
        try encodeCheckpoint(iteration: iteration, initial: initial, last: last, wallSeconds: wallSeconds)
            .write(to: run.checkpoints.appendingPathComponent("\(name).safetensors"))
    }

    /// The checkpoint of the learner's state now, after `iteration` iterations, in memory.
    func encodeCheckpoint(iteration: Int, initial: EvaluationResult, last: EvaluationResult, wallSeconds: Double) throws -> Checkpoint.Encoded {
        var info = CheckpointInfo(kind: "finetune", iteration: iteration, policyVersion: weights.version, environmentSteps: environmentSteps,
                                  model: model, normalization: normalization, actorOptimizerStep: update.actorOptimizer.step,
                                  criticOptimizerStep: update.criticOptimizer.step, rewardScaler: update.rewardScaler, evalReturn: last.meanReturn)
        info.learnerRandom = update.random
        info.actorScheduleSteps = update.actorScheduleSteps
        info.criticScheduleSteps = update.criticScheduleSteps
        info.initialEvaluation = initial
        info.lastEvaluation = last
        info.wallSeconds = wallSeconds
        info.droppedSegments = drops.byReason
        return try Checkpoint.encode(model: model, update: update, info: info)
    }

    /// Writes summary.json and logs the run's last line.
    /// `stop`: the signal that ended the run early and the checkpoint it left (`--resume` continues from it).
    func writeSummary(initial: EvaluationResult, last: EvaluationResult, started: Date, control: ControlServer,
                      stop: (signal: String, iterations: Int, checkpoint: URL)? = nil, log: (String) -> Void) throws -> [String: Any] {
        var summary: [String: Any] = [
            "initial_eval_return": initial.meanReturn, "initial_eval_return_std": initial.stdReturn,
            "final_eval_return": last.meanReturn, "final_eval_return_std": last.stdReturn,
            "eval_episodes": config.train.evalEpisodes, "env_steps": environmentSteps, "iterations": config.train.iterations,
            "policy_version": weights.version, "wall_seconds": Date().timeIntervalSince(started),
            "dropped_segments": drops.byReason, "control_rejections": control.rejectionCounts(),
            "redo_requests": assembler.redoRequestCount,
            "checkpoint": run.checkpoints.appendingPathComponent("final.safetensors").path,
            "chain_transport": chains.transport.rawValue,
        ]
        if let reason = chains.fallbackReason { summary["chain_fallback"] = reason }
        if let rate = initial.successRate { summary["initial_eval_success_rate"] = rate }
        if let rate = last.successRate { summary["final_eval_success_rate"] = rate }
        if let selfTest = chains.selfTest {
            // JSON has no infinity (a NaN difference reads as one): such a self-test reports null.
            func finite(_ value: Float) -> Any { value.isFinite ? Double(value) : NSNull() }
            summary["chain_self_test"] = ["decisions": selfTest.decisions, "max_chain_difference": finite(selfTest.chainDifference),
                                          "max_log_probability_difference": finite(selfTest.logProbabilityDifference)]
        }
        if let resumed { summary["resumed_from_iteration"] = resumed.iteration }
        summary["state"] = stop == nil ? "finished" : "stopped"
        // What produced the run, for whoever compares or reproduces it.
        summary["dppo"] = Build.description
        summary["started_from"] = startedFrom.path
        summary["config_hash"] = String(config.compatibilityHash)
        if let stop {
            summary["stopped_by"] = stop.signal
            summary["iterations_done"] = stop.iterations
            summary["checkpoint"] = stop.checkpoint.path
        }
        let data = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try data.write(to: run.summary, options: .atomic)
        log(String(format: "learner: %@ in %.0f s, %d env steps; eval return %.1f → %.1f; run directory %@", stop == nil ? "done" : "stopped",
                   Date().timeIntervalSince(started), environmentSteps, initial.meanReturn, last.meanReturn, run.url.path))
        return summary
    }

    /// Logs, at most once every 10 s (`force`: now), the segments dropped and `control` requests refused since the
    /// last report, by reason. The first rejection is logged at once; a flood costs one line per 10 s. Every count is
    /// in `metrics.jsonl` and `summary.json` whether logged or not.
    func reportRejections(control: ControlServer, force: Bool = false, log: (String) -> Void) {
        guard force || Date().timeIntervalSince(rejectionReport.time) >= 10 else { return }
        let dropped = drops.byReason, refusals = control.rejectionCounts()
        func news(_ counts: [String: Int], _ reported: [String: Int]) -> String {
            counts.keys.sorted().compactMap { reason in
                let fresh = counts[reason, default: 0] - reported[reason, default: 0]
                return fresh > 0 ? "\(reason) \(fresh)" : nil
            }.joined(separator: ", ")
        }
        let segments = news(dropped, rejectionReport.drops), requests = news(refusals, rejectionReport.refusals)
        guard !segments.isEmpty || !requests.isEmpty else { return }
        rejectionReport = RejectionReport(time: Date(), drops: dropped, refusals: refusals)
        var parts: [String] = []
        if !segments.isEmpty { parts.append("trajectory messages dropped: \(segments)") }
        if !requests.isEmpty { parts.append("control requests refused: \(requests)") }
        log("learner: " + parts.joined(separator: "; ") + " (at most one such line per 10 s; all counted in metrics.jsonl)")
    }
}
