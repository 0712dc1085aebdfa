import Foundation
import Transport

/// Serves the learner's REQ→REP `control` endpoint on its own thread: hello → welcome,
/// weight fetches, heartbeats. It only reads snapshots the training thread publishes, so it
/// never waits for an update to finish and never sees half-written weights.
///
/// Heartbeats and weight fetches are answered only for actor indices that said hello to this
/// learner process; anyone else is refused with `unknown_actor`, which tells an actor that the
/// learner was restarted and it must say hello again (and roll out the current version afresh).
/// Once the run is over, weight fetches and heartbeats are answered with `shutdown`.
final class ControlServer: @unchecked Sendable {
    // @unchecked: its mutable state (snapshot, contacts, reports, counts) is read and written only under `lock`;
    // the socket and codec are themselves thread-safe.
    struct Snapshot {
        var policyVersion: UInt64 = 0
        var weightsMessage: [UInt8] = []
        var shuttingDown = false
        /// What welcome, weights and heartbeat replies tell actors about chain transport (`ChainTransport`).
        var chainTransport = ChainTransport.full
        var chainCheckEvery = 0
        /// Strict mode: actors asked to roll a version again because part of their stream never arrived (actor → version).
        var redo: [Int: UInt64] = [:]
    }

    /// What an actor's latest heartbeat said: the last version it rolled out and its last segment's sequence number.
    struct ActorReport {
        var policyVersion: UInt64
        var sequence: UInt64
        /// The actor's own statistics (heartbeat `meta`; zero when it sent none or they did not parse).
        var environmentSteps = 0
        var episodes = 0
        var stepsPerSecond = 0.0
        var received = Date()
    }

    let socket: Socket
    let codec: WireCodec
    let welcomeTensors: [WireTensor]
    let configHash: UInt64
    let actors: Int
    let seed: UInt64
    private let lock = NSLock()
    private var snapshot = Snapshot()
    private var stopRequested = false
    private var thread: Thread?
    private(set) var rejected: [String: Int] = [:]
    /// Actors that said hello to this process, with when they were last heard from.
    private var lastHeartbeat: [Int: Date] = [:]
    private var reports: [Int: ActorReport] = [:]
    private var nextActorIndex = 0

    init(socket: Socket, codec: WireCodec, welcomeTensors: [WireTensor], configHash: UInt64, actors: Int, seed: UInt64) {
        self.socket = socket
        self.codec = codec
        self.welcomeTensors = welcomeTensors
        self.configHash = configHash
        self.actors = actors
        self.seed = seed
    }

    func publish(_ update: (inout Snapshot) -> Void) {
        lock.lock(); defer { lock.unlock() }
        update(&snapshot)
    }

    func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "control"
        self.thread = thread
        thread.start()
    }

    func stop() {
        lock.lock(); stopRequested = true; lock.unlock()
        while thread?.isFinished == false { usleep(10_000) }
    }

    /// Actors heard from within the last `seconds`.
    func connectedActors(within seconds: Double) -> Int {
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        return lastHeartbeat.values.filter { now.timeIntervalSince($0) < seconds }.count
    }

    /// Every actor's latest heartbeat report to this learner process, by index.
    func allReports() -> [Int: ActorReport] {
        lock.lock(); defer { lock.unlock() }
        return reports
    }

    /// Actor `index`'s latest heartbeat report to this learner process, if any.
    func report(actor index: Int) -> ActorReport? {
        lock.lock(); defer { lock.unlock() }
        return reports[index]
    }

    func rejectionCounts() -> [String: Int] {
        lock.lock(); defer { lock.unlock() }
        return rejected
    }

    private func serve() {
        while true {
            lock.lock(); let stopping = stopRequested; lock.unlock()
            if stopping { return }
            guard let request = try? socket.receive() else { continue }
            let reply = respond(to: request)
            _ = try? socket.send(reply)
        }
    }

    private func refusal(_ reason: String, _ detail: String) -> [UInt8] {
        lock.lock(); rejected[reason, default: 0] += 1; lock.unlock()
        do {
            let meta = try RefusalMeta(reason: reason, detail: detail).tensor()
            return try codec.encode(WireMessage(kind: .refusal, policyVersion: 0, actorIndex: 0, sequence: 0, tensors: [meta]))
        } catch {
            Cluster.log("control: could not encode a \(reason) refusal (\(error)); the request goes unanswered")
            return []
        }
    }

    func respond(to bytes: [UInt8]) -> [UInt8] {
        let request: WireMessage
        do { request = try codec.decode(bytes) } catch { return refusal(error.reason, error.description) }
        lock.lock(); let current = snapshot; lock.unlock()
        switch request.kind {
        case .hello:
            let hello: HelloMeta
            do { hello = try HelloMeta(from: request) } catch { return refusal("bad_hello", "\(error)") }
            guard UInt64(hello.configHash) == configHash else {
                return refusal("config_mismatch", "actor config hash \(hello.configHash) differs from the learner's \(configHash): start actors with the learner's config")
            }
            lock.lock()
            var index = hello.requestedIndex ?? -1
            if index < 0 || index >= actors { index = nextActorIndex % actors; nextActorIndex += 1 }
            lastHeartbeat[index] = Date()
            reports[index] = nil // a new process counts its sequence numbers from 1
            lock.unlock()
            let meta = WelcomeMeta(actorIndex: index, seed: String(seed &+ UInt64(index) &* 1000), policyVersion: current.policyVersion,
                                   chainTransport: current.chainTransport, chainCheckEvery: current.chainCheckEvery)
            do {
                let welcome = WireMessage(kind: .welcome, policyVersion: current.policyVersion, actorIndex: UInt32(index), sequence: request.sequence,
                                          tensors: welcomeTensors + [try meta.tensor()])
                return try codec.encode(welcome)
            } catch {
                return refusal("encode_failed", "welcome: \(error)")
            }
        case .weightsRequest:
            guard recordContact(from: Int(request.actorIndex)) else { return unknownActor(request) }
            guard !current.shuttingDown else { return shutdown(request, current) }
            guard !current.weightsMessage.isEmpty else { return refusal("no_weights", "the learner has not published weights yet") }
            return current.weightsMessage
        case .heartbeat:
            guard recordContact(from: Int(request.actorIndex)) else { return unknownActor(request) }
            guard !current.shuttingDown else { return shutdown(request, current) }
            let index = Int(request.actorIndex)
            var report = ActorReport(policyVersion: request.policyVersion, sequence: request.sequence)
            // The statistics are optional; when present, they decode strictly.
            let statistics: HeartbeatMeta?
            do { statistics = try HeartbeatMeta.ifPresent(in: request) } catch { return refusal("bad_heartbeat", "\(error)") }
            if let statistics {
                report.environmentSteps = statistics.envSteps
                report.episodes = statistics.episodes
                report.stepsPerSecond = statistics.envStepsPerSecond
            }
            lock.lock(); reports[index] = report; lock.unlock()
            let settings = ChainSettingsMeta(chainTransport: current.chainTransport, chainCheckEvery: current.chainCheckEvery,
                                             redoVersion: current.redo[index].map { String($0) })
            do {
                return try codec.encode(WireMessage(kind: .heartbeatReply, policyVersion: current.policyVersion, actorIndex: request.actorIndex,
                                                    sequence: request.sequence, tensors: [try settings.tensor()]))
            } catch {
                return refusal("encode_failed", "heartbeat reply: \(error)")
            }
        default:
            return refusal("unexpected_kind", "control does not accept \(request.kind)")
        }
    }

    /// Notes that `index` was heard from; false when it never said hello to this learner process.
    private func recordContact(from index: Int) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard lastHeartbeat[index] != nil else { return false }
        lastHeartbeat[index] = Date()
        return true
    }

    private func unknownActor(_ request: WireMessage) -> [UInt8] {
        refusal("unknown_actor", "actor \(request.actorIndex) has not said hello to this learner (it was restarted): say hello again")
    }

    private func shutdown(_ request: WireMessage, _ current: Snapshot) -> [UInt8] {
        let reply = WireMessage(kind: .shutdown, policyVersion: current.policyVersion, actorIndex: request.actorIndex, sequence: request.sequence, tensors: [])
        return (try? codec.encode(reply)) ?? []
    }
}
