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

    /// What this actor reports in its heartbeats: environment steps, finished episodes and seconds spent rolling out
    /// (sampling and stepping, not waiting for weights or sending), since it started.
    var statistics = (environmentSteps: 0, episodes: 0, rolloutSeconds: 0.0)

    /// A heartbeat: `version` rolled out, `sent` the sequence number of the last segment handed to the socket.
    func heartbeat(version: UInt64, index: Int, sent: UInt64) throws -> WireMessage {
        let rate = statistics.rolloutSeconds > 0 ? Double(statistics.environmentSteps) / statistics.rolloutSeconds : 0
        let meta = HeartbeatMeta(envSteps: statistics.environmentSteps, episodes: statistics.episodes, envStepsPerSecond: rate)
        return WireMessage(kind: .heartbeat, policyVersion: version, actorIndex: UInt32(index), sequence: sent, tensors: [try meta.tensor()])
    }

    /// Test seam: segments whose sequence number this returns true for are not sent, as if lost on the way.
    var losesSegment: ((UInt64) -> Bool)?

    /// Follows the learner's `chain_transport` and `chain_check_every` when a control reply carries them, and returns
    /// the reply's settings (nil: it has no meta). A reply whose meta does not decode strictly (an unknown transport,
    /// a negative count, a field it does not carry) is refused, naming the field, and changes nothing.
    @discardableResult
    func adoptChainTransport(from message: WireMessage, log: (String) -> Void) throws -> ChainSettingsMeta? {
        guard let settings = try ChainSettingsMeta.ifPresent(in: message) else { return nil }
        adopt(settings.chainTransport, checkEvery: settings.chainCheckEvery, log: log)
        return settings
    }

    /// Uses `transport` (full chains when this policy cannot sample seeded ones) and `checkEvery` (nil: unchanged).
    func adopt(_ transport: ChainTransport, checkEvery: Int?, log: (String) -> Void) {
        let wanted: ChainTransport = seededSampler == nil ? .full : transport
        if wanted != chainTransport { log("actor: chain transport \(chainTransport.rawValue) → \(wanted.rawValue) (the learner's choice)") }
        chainTransport = wanted
        chainCheckEvery = checkEvery ?? chainCheckEvery
    }

    /// Replies that could not be used since the last good one: each counts as a lost reply, waited out with
    /// backoff; after `badRepliesBeforeHello` of them in a row the actor says hello again.
    var badReplies = 0
    static let badRepliesBeforeHello = 3
    /// What was wrong with the last unusable reply, for the message when the actor gives up.
    var lastBadReply: String?

    /// Notes a reply that failed to decode or said something it may not, logs it and waits (0.2 s doubling, ≤ 5 s).
    func noteBadReply(_ problem: String, log: (String) -> Void) {
        badReplies += 1
        lastBadReply = problem
        log("actor: unusable reply from the learner (\(problem)); counted as lost (\(badReplies) in a row)")
        Thread.sleep(forTimeInterval: min(0.2 * pow(2, Double(badReplies - 1)), 5))
    }

    /// The fine-tuned weights of a `weights` reply, checked before they replace the policy's: the right count, all finite.
    func checkedWeights(_ message: WireMessage) throws -> [Float] {
        let tensor = try message.tensor(named: "fine_tuned")
        let values = try tensor.floats()
        guard values.count == model.trainableParameters.count else {
            throw MessageError(message, "fine_tuned holds \(values.count) floats, the policy has \(model.trainableParameters.count) parameters")
        }
        guard let bad = values.firstIndex(where: { !$0.isFinite }) else { return values }
        throw MessageError(message, "fine_tuned parameter \(bad) is \(values[bad]): non-finite weights refused")
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
                let beat = try heartbeat(version: rolledVersion, index: index, sent: sequence)
                if let reply = try exchange(request, beat, log: log) {
                    switch reply.kind {
                    case .shutdown: log("actor \(index): learner finished, exiting"); return
                    case .heartbeatReply:
                        let settings: ChainSettingsMeta?
                        do { settings = try adoptChainTransport(from: reply, log: log) } catch {
                            noteBadReply("\(error)", log: log)
                            if badReplies >= Actor.badRepliesBeforeHello { restarted = true }
                            continue
                        }
                        badReplies = 0
                        lastContact = Date(); announcedVersion = max(announcedVersion, reply.policyVersion)
                        if !async, rolledVersion > 0, settings?.redo == rolledVersion {
                            // Part of what we sent never reached the learner: roll the version again from its first step.
                            log("actor \(index): the learner lost part of version \(rolledVersion); rolling it again")
                            rolledVersion = 0
                        }
                    default:
                        if isUnknownActorRefusal(reply) { restarted = true; continue }
                        noteBadReply("a \(reply.kind) in answer to a heartbeat", log: log)
                        if badReplies >= Actor.badRepliesBeforeHello { restarted = true }
                    }
                } else if badReplies >= Actor.badRepliesBeforeHello {
                    restarted = true
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
            guard let weights = try exchange(request, fetch, log: log) else {
                if badReplies >= Actor.badRepliesBeforeHello { restarted = true }
                continue
            }
            switch weights.kind {
            case .shutdown: log("actor \(index): learner finished, exiting"); return
            case .weights: break
            default:
                if isUnknownActorRefusal(weights) { restarted = true; continue }
                noteBadReply("a \(weights.kind) in answer to a weights request", log: log)
                if badReplies >= Actor.badRepliesBeforeHello { restarted = true }
                continue
            }
            do {
                let values = try checkedWeights(weights)
                try adoptChainTransport(from: weights, log: log)
                values.withUnsafeBufferPointer { model.trainableParameters.values.update(from: $0.baseAddress!, count: $0.count) }
            } catch {
                noteBadReply("\(error)", log: log)
                if badReplies >= Actor.badRepliesBeforeHello { restarted = true }
                continue
            }
            badReplies = 0
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
        let helloMeta = HelloMeta(configHash: String(config.compatibilityHash), requestedIndex: index)
        let hello = WireMessage(kind: .hello, policyVersion: 0, actorIndex: 0, sequence: 0, tensors: [try helloMeta.tensor()])
        let deadline = Date().addingTimeInterval(giveUpSeconds)
        var pause = 0.5
        while true {
            if let welcome = try exchange(request, hello, log: { _ in }) {
                if welcome.kind == .refusal { throw refusalError(welcome) }
                do {
                    let granted = try membership(from: welcome)
                    badReplies = 0
                    return granted
                } catch {
                    // A malformed welcome is a lost reply: say hello again after the pause.
                    lastBadReply = "\(error)"
                    Cluster.log("actor: unusable welcome (\(error)); saying hello again")
                }
            }
            guard Date().addingTimeInterval(pause) < deadline else {
                throw ClusterError.unreachable("no usable welcome from the learner's control endpoint \(endpoints.control) within \(Int(giveUpSeconds)) s, giving up (cluster.reconnect_timeout_s)"
                                  + (lastBadReply.map { "; the last reply: \($0)" } ?? ""))
            }
            Thread.sleep(forTimeInterval: pause)
            pause = min(pause * 2, 10)
        }
    }

    /// The membership a welcome grants, every field checked (the error names the field) before any is used.
    func membership(from welcome: WireMessage) throws -> Membership {
        guard welcome.kind == .welcome else { throw MessageError(welcome, "a \(welcome.kind) in answer to hello") }
        let meta = try WelcomeMeta(from: welcome)
        guard Int(welcome.actorIndex) < config.cluster.actors else {
            throw MessageError(welcome, "actor index \(welcome.actorIndex) is not below cluster.actors \(config.cluster.actors)")
        }
        let base: [Float]
        do { base = try welcome.tensor(named: "base").floats() } catch { throw MessageError(welcome, "\(error)") }
        guard base.count == model.baseParameters.count, base.allSatisfy(\.isFinite) else {
            throw MessageError(welcome, "base holds \(base.count) floats (\(base.filter { !$0.isFinite }.count) non-finite), the policy has \(model.baseParameters.count) parameters")
        }
        let normalization = try Messages.readNormalization(welcome)
        adopt(meta.chainTransport, checkEvery: meta.chainCheckEvery, log: { _ in })
        base.withUnsafeBufferPointer { model.baseParameters.values.update(from: $0.baseAddress!, count: $0.count) }
        return Membership(index: Int(welcome.actorIndex), seed: meta.seedValue, policyVersion: welcome.policyVersion, normalization: normalization)
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
        let segment = try SegmentRecorder.record(version: version, index: index, offset: offset, steps: steps, config: config, policy: model.rollout,
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
            let beat = try heartbeat(version: version, index: index, sent: sequence - 1)
            guard try exchange(request, beat)?.kind == .heartbeatReply else { return false }
        }
        return true
    }

    /// Sends a request and waits up to the socket's receive timeout for its reply; nil when none came, or when it
    /// does not decode (damaged, forged, unsigned: `noteBadReply`).
    func exchange(_ socket: Socket, _ message: WireMessage, log: (String) -> Void = Cluster.log) throws -> WireMessage? {
        guard try socket.send(try codec.encode(message)), let reply = try socket.receive() else { return nil }
        do { return try codec.decode(reply) } catch {
            noteBadReply("a reply to \(message.kind) that does not decode (\(error.reason)): \(error)", log: log)
            return nil
        }
    }

    func isUnknownActorRefusal(_ message: WireMessage) -> Bool {
        message.kind == .refusal && (try? RefusalMeta(from: message))?.reason == "unknown_actor"
    }

    func refusalError(_ message: WireMessage) -> Error {
        do { return ClusterError.refused("the learner refused: \(try RefusalMeta(from: message).detail)") } catch {
            return ClusterError.refused("the learner refused, with a refusal that does not decode: \(error)")
        }
    }
}
