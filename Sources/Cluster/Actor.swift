import Foundation
import Algorithms
import Datasets
import Diffusion
import Environments
import Tensors
import Transport

/// The actor process: connects PUSH `trajectories`, SUB `weights`, REQ `control`; for each new
/// policy version it fetches the weights, rolls out `n_steps` decisions in its environments with
/// exploration sampling, and streams them to the learner in segments (async mode: it rolls out without waiting,
/// with the newest weights it holds; see `run`).
public final class Actor {
    let config: RunConfig
    let codec: WireCodec
    let endpoints: Endpoints
    let requestedIndex: Int?
    let model: PolicyModel
    var sequence: UInt64 = 0
    /// How this actor's segments carry chains, as the learner last said (welcome, weights, heartbeat replies).
    var chainTransport = ChainTransport.full
    var chainCheckEvery = 0
    /// Samples chains from per-step seeds (seeded transport; diffusion policies only).
    let seededSampler: SeededChainSampler?

    public init(config: RunConfig, learnerHost: String, requestedIndex: Int?) throws {
        self.config = config
        codec = WireCodec(key: try ClusterKey.load(config: config)?.bytes)
        endpoints = Endpoints(host: learnerHost, basePort: config.cluster.basePort)
        self.requestedIndex = requestedIndex
        BLAS.setThreads(1)
        model = PolicyModel(config: config)
        if case .diffusion(let policy) = model { seededSampler = SeededChainSampler(policy: policy) } else { seededSampler = nil }
    }

    /// The version a heartbeat reply asks this actor to roll again (strict mode, lost segments), if any.
    func redoVersion(in reply: WireMessage) -> UInt64? {
        guard let meta = Messages.optionalMeta(reply) else { return nil }
        return (meta["redo_version"] as? String).flatMap { UInt64($0) }
    }

    /// What this actor reports in its heartbeats: environment steps, finished episodes and seconds spent rolling out
    /// (sampling and stepping, not waiting for weights or sending), since it started.
    var statistics = (environmentSteps: 0, episodes: 0, rolloutSeconds: 0.0)

    /// A heartbeat: `version` rolled out, `sent` the sequence number of the last segment handed to the socket.
    func heartbeat(version: UInt64, index: Int, sent: UInt64) -> WireMessage {
        let rate = statistics.rolloutSeconds > 0 ? Double(statistics.environmentSteps) / statistics.rolloutSeconds : 0
        let meta = Messages.meta(["env_steps": statistics.environmentSteps, "episodes": statistics.episodes, "env_steps_per_second": rate])
        return WireMessage(kind: .heartbeat, policyVersion: version, actorIndex: UInt32(index), sequence: sent, tensors: [meta])
    }

    /// Test seam: segments whose sequence number this returns true for are not sent, as if lost on the way.
    var losesSegment: ((UInt64) -> Bool)?

    /// Follows the learner's `chain_transport` and `chain_check_every` when a control reply carries them.
    func adoptChainTransport(from message: WireMessage, log: (String) -> Void) {
        guard let meta = Messages.optionalMeta(message),
              let name = meta["chain_transport"] as? String, let transport = ChainTransport(rawValue: name) else { return }
        let wanted: ChainTransport = seededSampler == nil ? .full : transport
        if wanted != chainTransport { log("actor: chain transport \(chainTransport.rawValue) → \(wanted.rawValue) (the learner's choice)") }
        chainTransport = wanted
        chainCheckEvery = (meta["chain_check_every"] as? Int) ?? chainCheckEvery
    }

    /// What the learner said in its welcome.
    struct Membership {
        var index: Int
        var seed: UInt64
        var policyVersion: UInt64
        var normalization: Normalization?
    }

    /// Runs until the learner says to shut down.
    ///
    /// Reconnection: when the learner falls silent (no weights notice or heartbeat reply for
    /// `cluster.learner_timeout_s`) or refuses this actor as unknown (it was restarted, e.g. with `--resume`),
    /// the actor says hello again with its own index, retrying with backoff for up to `giveUpSeconds`
    /// (default `cluster.reconnect_timeout_s`). It keeps its environments and random state, and rolls out the
    /// learner's current version from its first step, whatever it sent before.
    ///
    /// `cluster.sync: async`: the actor never waits for a new version. It rolls out segment after segment with the
    /// newest weights it holds (each segment tagged with their version), and between segments takes notices and
    /// heartbeat replies and fetches a newer version's weights when one is announced. Its step offsets cycle through
    /// one iteration's quota (0, segment_steps, …, n_steps − 1) and its sequence numbers keep counting, so the learner
    /// can assemble a contiguous run of steps from any segment on.
    public func run(giveUpSeconds: Double? = nil, log: (String) -> Void = Cluster.log) throws {
        let giveUp = giveUpSeconds ?? config.cluster.reconnectTimeoutSeconds
        let learnerTimeout = config.cluster.learnerTimeoutSeconds
        let push = try Socket(.push, sendTimeoutMilliseconds: 5_000)
        try push.connect(endpoints.trajectories)
        let async = config.cluster.isAsync
        // Async actors poll for notices between segments, without waiting.
        let subscriber = try Socket(.subscribe, receiveTimeoutMilliseconds: async ? 0 : 100)
        try subscriber.connect(endpoints.weights)
        let request = try Socket(.request, receiveTimeoutMilliseconds: 2_000)
        try request.connect(endpoints.control)

        let membership = try join(request, index: requestedIndex, giveUpSeconds: giveUp)
        let index = membership.index
        log("actor \(index): joined learner at \(endpoints.control), seed \(membership.seed), \(config.environment.environmentsPerActor) environments")

        let environments = try config.makeEnvironments(count: config.environment.environmentsPerActor, seed: membership.seed, normalization: membership.normalization)
        try environments.resetAll()
        var firsts = [UInt8](repeating: 1, count: environments.count)
        var random = Philox(seed: membership.seed, stream: 0xAC70)
        var rolledVersion: UInt64 = 0
        var announcedVersion = membership.policyVersion
        var lastContact = Date()
        var lastHeartbeat = Date.distantPast
        var restarted = false
        var asyncOffset = 0

        while true {
            if restarted || Date().timeIntervalSince(lastContact) > learnerTimeout {
                log("actor \(index): " + (restarted ? "the learner was restarted" : "no word from the learner for \(Int(learnerTimeout)) s") + "; saying hello again")
                let rejoined = try join(request, index: index, giveUpSeconds: giveUp)
                log("actor \(index): rejoined at policy version \(rejoined.policyVersion)")
                rolledVersion = 0
                announcedVersion = rejoined.policyVersion
                lastContact = Date()
                restarted = false
            }
            if let bytes = try subscriber.receive(), let notice = try? codec.decode(bytes) {
                if notice.kind == .shutdown { log("actor \(index): learner finished, exiting"); return }
                if notice.kind == .weightsNotice { announcedVersion = max(announcedVersion, notice.policyVersion); lastContact = Date() }
            }
            if Date().timeIntervalSince(lastHeartbeat) > 1 {
                lastHeartbeat = Date()
                let beat = heartbeat(version: rolledVersion, index: index, sent: sequence)
                if let reply = try exchange(request, beat) {
                    switch reply.kind {
                    case .shutdown: log("actor \(index): learner finished, exiting"); return
                    case .heartbeatReply:
                        lastContact = Date(); announcedVersion = max(announcedVersion, reply.policyVersion)
                        adoptChainTransport(from: reply, log: log)
                        if !async, rolledVersion > 0, redoVersion(in: reply) == rolledVersion {
                            // Part of what we sent never reached the learner: roll the version again from its first step.
                            log("actor \(index): the learner lost part of version \(rolledVersion); rolling it again")
                            rolledVersion = 0
                        }
                    default: if isUnknownActorRefusal(reply) { restarted = true; continue }
                    }
                }
            }
            if async && rolledVersion > 0 && announcedVersion <= rolledVersion {
                if try rolloutSegment(version: rolledVersion, index: index, offset: &asyncOffset, environments: environments, firsts: &firsts,
                                      random: &random, push: push, request: request) {
                    lastContact = Date()
                } else {
                    log("actor \(index): the learner stopped taking segments of version \(rolledVersion)")
                    rolledVersion = 0
                }
                continue
            }
            guard announcedVersion > rolledVersion else { continue }

            let fetch = WireMessage(kind: .weightsRequest, policyVersion: announcedVersion, actorIndex: UInt32(index), sequence: sequence, tensors: [])
            guard let weights = try exchange(request, fetch) else { continue }
            switch weights.kind {
            case .shutdown: log("actor \(index): learner finished, exiting"); return
            case .weights: break
            default: guard isUnknownActorRefusal(weights) else { throw refusalError(weights) }; restarted = true; continue
            }
            try weights.tensor(named: "fine_tuned").copyFloats(into: model.trainableParameters.values, count: model.trainableParameters.count)
            adoptChainTransport(from: weights, log: log)
            rolledVersion = weights.policyVersion
            announcedVersion = max(announcedVersion, rolledVersion)
            lastContact = Date()
            if async { continue } // the next pass rolls out with these weights
            if try rollout(version: rolledVersion, index: index, environments: environments, firsts: &firsts, random: &random, push: push, request: request) {
                lastContact = Date()
            } else {
                // Part of this version may be lost: roll it again from its first step, which restarts our stream at the learner.
                log("actor \(index): the learner stopped taking segments of version \(rolledVersion)")
                rolledVersion = 0
            }
        }
    }

    /// hello → welcome, retried with backoff (0.5 s doubling to 10 s) until `giveUpSeconds` have passed. Loads the
    /// frozen base weights the welcome carries.
    func join(_ request: Socket, index: Int?, giveUpSeconds: Double) throws -> Membership {
        var helloMeta: [String: Any] = ["config_hash": String(config.compatibilityHash)]
        if let index { helloMeta["requested_index"] = index }
        let hello = WireMessage(kind: .hello, policyVersion: 0, actorIndex: 0, sequence: 0, tensors: [Messages.meta(helloMeta)])
        let deadline = Date().addingTimeInterval(giveUpSeconds)
        var pause = 0.5
        while true {
            if let welcome = try exchange(request, hello) {
                guard welcome.kind == .welcome else { throw refusalError(welcome) }
                let meta = try Messages.readMeta(welcome)
                try welcome.tensor(named: "base").copyFloats(into: model.baseParameters.values, count: model.baseParameters.count)
                adoptChainTransport(from: welcome, log: { _ in })
                return Membership(index: Int(welcome.actorIndex), seed: UInt64((meta["seed"] as? String) ?? "") ?? config.seed,
                                  policyVersion: welcome.policyVersion, normalization: try Messages.readNormalization(welcome))
            }
            guard Date().addingTimeInterval(pause) < deadline else {
                throw ConfigError("no welcome from the learner's control endpoint \(endpoints.control) within \(Int(giveUpSeconds)) s, giving up (cluster.reconnect_timeout_s)")
            }
            Thread.sleep(forTimeInterval: pause)
            pause = min(pause * 2, 10)
        }
    }

    /// Rolls out one iteration's decisions for `version` and sends them as segments.
    /// Returns false when the learner stopped taking segments and no longer answers heartbeats (gone, restarted or
    /// finished): the rest of the version is not sent.
    func rollout(version: UInt64, index: Int, environments: VectorEnvironment, firsts: inout [UInt8], random: inout Philox,
                 push: Socket, request: Socket) throws -> Bool {
        var offset = 0
        repeat {
            guard try rolloutSegment(version: version, index: index, offset: &offset, environments: environments, firsts: &firsts,
                                     random: &random, push: push, request: request) else { return false }
        } while offset != 0
        return true
    }

    /// Rolls out and sends one segment of `version` at `offset` in the iteration's quota, and advances `offset`
    /// (back to 0 after the quota's last segment). Returns false when the learner stopped taking segments and no
    /// longer answers heartbeats.
    func rolloutSegment(version: UInt64, index: Int, offset: inout Int, environments: VectorEnvironment, firsts: inout [UInt8],
                        random: inout Philox, push: Socket, request: Socket) throws -> Bool {
        let o = config.networkShape.observationDim, c = config.recordWidth
        let records = Matrix(rows: environments.count, columns: c)
        let total = config.train.stepsPerIteration
        let steps = min(config.cluster.segmentSteps, total - offset)
        let seeded = chainTransport == .seeded ? seededSampler : nil
        let started = Date()
        let segment = try Actor.recordSegment(version: version, index: index, offset: offset, steps: steps, config: config, policy: model.rollout,
                                              environments: environments, records: records, firsts: &firsts, random: &random, seededSampler: seeded)
        sequence += 1
        offset = (offset + steps) % total
        statistics.environmentSteps += steps * environments.count * config.environment.actSteps
        statistics.episodes += segment.episodeReturns.count
        statistics.rolloutSeconds += Date().timeIntervalSince(started)
        // Seeded transport: the learner's sampled check gets this actor's 1st, (n+1)-th, … segment with its chains.
        let check = chainCheckEvery > 0 && (sequence - 1) % UInt64(chainCheckEvery) == 0
        let bytes = try codec.encode(segment.message(sequence: sequence, observationWidth: o, chainWidth: c, includeChains: check))
        if losesSegment?(sequence) == true { return true }
        // A send times out while the learner is busy (evaluating, checkpointing) or gone: wait while it answers heartbeats.
        while try !push.send(bytes) {
            // This segment is not sent yet: report the one before it, so the learner does not count it as lost.
            let beat = heartbeat(version: version, index: index, sent: sequence - 1)
            guard try exchange(request, beat)?.kind == .heartbeatReply else { return false }
        }
        return true
    }

    /// Rolls out `steps` decisions of `policy` (exploration sampling) in `environments` and records them as one
    /// segment; no I/O. `records` is scratch of [environments × record width]; `firsts` carries episode starts across calls.
    /// With `seededSampler` (the policy's, seeded chain transport), each decision step draws a 64-bit seed from `random`,
    /// samples its chains from it and records it in `chainSeeds`.
    static func recordSegment(version: UInt64, index: Int, offset: Int, steps: Int, config: RunConfig, policy: any RolloutPolicy,
                              environments: VectorEnvironment, records: Matrix, firsts: inout [UInt8], random: inout Philox,
                              seededSampler: SeededChainSampler? = nil) throws -> Segment {
        let e = environments.count
        let o = config.networkShape.observationDim, c = config.recordWidth
        var segment = Segment(policyVersion: version, actorIndex: index, stepOffset: offset, steps: steps, environments: e,
                              observations: [], chains: [], rewards: [], terminated: [], truncated: [], firsts: [],
                              nextObservations: [], finalIndices: [], finalObservations: [], episodeReturns: [], episodeLengths: [])
        segment.observations.reserveCapacity(steps * e * o)
        segment.chains.reserveCapacity(steps * e * c)
        for step in 0..<steps {
            segment.observations.append(contentsOf: environments.observations.buffer)
            if let seededSampler {
                let seed = random.nextUInt64()
                withUnsafePointer(to: seed) {
                    seededSampler.sample(observations: environments.observations, seeds: UnsafeBufferPointer(start: $0, count: 1), environments: e, chains: records)
                }
                segment.chainSeeds.append(seed)
            } else {
                policy.sample(observations: environments.observations, mode: .exploration, random: &random, records: records)
            }
            segment.chains.append(contentsOf: records.buffer)
            try environments.step(chunks: records, offset: policy.actionOffset)
            segment.firsts.append(contentsOf: firsts)
            for environment in 0..<e {
                segment.rewards.append(environments.rewards[environment])
                segment.terminated.append(environments.terminated[environment] ? 1 : 0)
                segment.truncated.append(environments.truncated[environment] ? 1 : 0)
                firsts[environment] = (environments.terminated[environment] || environments.truncated[environment]) ? 1 : 0
                if environments.truncated[environment] && !environments.terminated[environment] {
                    segment.finalIndices.append(Int32(step * e + environment))
                    segment.finalObservations.append(contentsOf: UnsafeBufferPointer(start: environments.finalObservations.row(environment), count: o))
                }
            }
            for episode in environments.finishedEpisodes {
                segment.episodeReturns.append(Float(episode.totalReward))
                segment.episodeLengths.append(Int32(episode.length))
            }
        }
        segment.nextObservations = environments.observations.toArray()
        return segment
    }

    /// Sends a request and waits up to the socket's receive timeout for its reply; nil when none came.
    func exchange(_ socket: Socket, _ message: WireMessage) throws -> WireMessage? {
        guard try socket.send(try codec.encode(message)), let reply = try socket.receive() else { return nil }
        return try codec.decode(reply)
    }

    func isUnknownActorRefusal(_ message: WireMessage) -> Bool {
        message.kind == .refusal && (try? Messages.readMeta(message))?["reason"] as? String == "unknown_actor"
    }

    func refusalError(_ message: WireMessage) -> Error {
        let meta = (try? Messages.readMeta(message)) ?? [:]
        return ConfigError("the learner refused: \(meta["detail"] ?? message.kind)")
    }
}
