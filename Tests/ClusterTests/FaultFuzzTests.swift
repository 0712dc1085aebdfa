import XCTest
import Foundation
@testable import Cluster
import Tensors
@testable import Transport

/// Fuzzes every endpoint the learner binds while a real run (learner + 2 actors, tiny Pendulum) goes on, and checks
/// that the learner never crashes or hangs, the run ends with exactly its configured env steps and policy version,
/// and the learner's counters account for every message sent:
///
/// - `trajectories` (PUSH → the learner's PULL): every delivered message ends in exactly one of summary.json's
///   `dropped_segments` reasons (the fuzzer never sends a segment the learner could use), so
///   Σ `dropped_segments` = messages sent − messages not delivered.
/// - `control` (REQ → the learner's REP): every delivered request is answered with a `refusal` (the fuzzer never sends
///   a request the learner could grant), so `control_rejections` = the refusal reasons the fuzzer read from the replies,
///   reason by reason, and Σ = requests sent − requests not delivered.
/// - Not delivered, by design: a message larger than the receiving socket's limit (`Socket`'s `receiveMaxBytes`,
///   nanomsg's NN_RCVMAXSIZE: `WireLimits.maxWireBytes`, the largest encoding of a 64 MiB payload) never reaches the learner's decoder: nanomsg closes that TCP connection when it
///   reads the length prefix. The fuzzer sends those on their own sockets (whatever follows on the closed connection
///   would be lost too) and counts them as not delivered.
/// - `weights` (the learner's PUB → actors' SUB) cannot be attacked from outside: actors connect to the learner's
///   publisher, and a peer can only publish into it by binding that address itself, which the learner holds. Not fuzzed.
///
/// Order, so the accounting is exact: the learner sits in iteration 1 (version 1) until actor 1 joins. Phase A fuzzes
/// both endpoints with no actor; then actor 0 joins and phase B fuzzes while it rolls out; only when the learner has
/// judged every fuzz message does actor 1 join and the run proceed.
final class FaultFuzzTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-fuzz-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func testFuzzedEndpointsWithoutAKey() throws {
        try fuzzRun(port: Self.basePort(block: 0), keyed: false)
    }

    func testFuzzedEndpointsWithAClusterKey() throws {
        try fuzzRun(port: Self.basePort(block: 1), keyed: true)
    }

    /// Three ports per test, below Linux's ephemeral range and apart from the other cluster tests' ranges.
    static func basePort(block: Int) -> Int { 20_000 + block * 1_000 + Int(getpid() % 300) * 3 }

    // MARK: The run

    private func fuzzRun(port: Int, keyed: Bool) throws {
        var keyFile: String?
        if keyed {
            let url = directory.appendingPathComponent("cluster.key")
            try Data("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".utf8).write(to: url)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: url.path)
            keyFile = url.path
        }
        let config = try RunConfig.parse(yaml: """
        name: test
        env: {task: pendulum, n_envs: 3, act_steps: 2, horizon_steps: 2}
        model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: 3, n_steps: 30, batch_size: 60, update_epochs: 2, val_freq: 2, eval_episodes: 4, save_model_freq: 2}
        cluster: {actors: 2, base_port: \(port), segment_steps: 12, batch_timeout_s: 40\(keyFile.map { ", key_file: '\($0)'" } ?? "")}
        """)
        // Shared with the fuzzing thread, which only reads its drop counters (behind the learner's locks).
        nonisolated(unsafe) let learner = try Learner(config: config, run: try RunDirectory(url: directory.appendingPathComponent("run")),
                                  basePolicy: try writeRandomPolicy(config: config, to: directory))
        XCTAssertEqual(learner.codec.isAuthenticating, keyed)
        let fuzzer = try Fuzzer(config: config, codec: learner.codec, keyed: keyed, endpoints: Endpoints(basePort: port))

        let finished = DispatchGroup()
        let errors = ErrorCollector()
        @Sendable func startActor(_ index: Int) {
            finished.enter()
            Thread.detachNewThread {
                defer { finished.leave() }
                do { try Actor(config: config, learnerHost: "127.0.0.1", requestedIndex: index).run(giveUpSeconds: 30, log: { _ in }) }
                catch { errors.append(error) }
            }
        }
        finished.enter()
        Thread.detachNewThread {
            defer { finished.leave() }
            do {
                try fuzzer.sendOversized()
                try fuzzer.fuzz(trajectories: 3_000, control: 2_000, seed: 1)
                try fuzzer.waitUntilJudged(by: learner)
                startActor(0)
                try fuzzer.fuzz(trajectories: 3_000, control: 2_000, seed: 2)
                try fuzzer.waitUntilJudged(by: learner)
            } catch { errors.append(error) }
            fuzzer.close()
            startActor(1) // even after a failure, so the learner's run can end
        }
        let started = Date()
        var lines: [String] = []
        let summary = try learner.run(log: { lines.append($0) })
        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success, "actors and fuzzer must finish when the learner does")
        XCTAssertTrue(errors.errors.isEmpty, "\(errors.errors)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 60)

        XCTAssertEqual(summary["env_steps"] as? Int, 3 * 2 * 3 * 30 * 2, "exactly the real actors' steps")
        XCTAssertEqual(summary["policy_version"] as? UInt64, 4)
        // The health part of the console line: both actors connected, the fuzz counted as dropped.
        XCTAssertTrue(lines.contains { $0.hasPrefix("itr   3/3") && $0.contains(" 2 act ") && $0.contains("drop \(fuzzer.trajectoryMessages.delivered)") },
                      lines.joined(separator: "\n"))
        // Health metrics: iteration 1 took every fuzz message and actor 1's 6 segments; 2 and 3 only the actors' 6 each.
        let records = try String(contentsOf: directory.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(records.count, 4)
        XCTAssertEqual(records[1]["transport/messages"] as? Int, fuzzer.trajectoryMessages.delivered + 6)
        for record in records.dropFirst(2) {
            XCTAssertEqual(record["transport/messages"] as? Int, 6)
            XCTAssertEqual(record["transport/policy_lag/0"] as? Int, 6)
            XCTAssertEqual((record["transport/policy_lag/1"] as? Int).map { $0 + (record["transport/policy_lag/2+"] as? Int ?? -1) }, 0)
            XCTAssertEqual(record["transport/connected_actors"] as? Int, 2)
            XCTAssertGreaterThan(record["perf/samples_per_second"] as? Double ?? 0, 0)
            for key in ["transport/queue_depth", "transport/bytes_per_second", "transport/compression_ratio"] { XCTAssertNotNil(record[key], key) }
        }
        // Rejections are logged, but rate-limited: the first at once, then at most one line per 10 s, and the rest at the end.
        let rejectionLines = lines.filter { $0.contains("trajectory messages dropped") || $0.contains("control requests refused") }
        XCTAssertGreaterThanOrEqual(rejectionLines.count, 1)
        XCTAssertLessThanOrEqual(rejectionLines.count, Int(Date().timeIntervalSince(started) / 10) + 2, rejectionLines.joined(separator: "\n"))
        XCTAssertTrue(rejectionLines.joined().contains("bad_magic"), rejectionLines.joined(separator: "\n"))
        let dropped = summary["dropped_segments"] as? [String: Int] ?? [:]
        XCTAssertEqual(dropped, learner.dropped)
        XCTAssertGreaterThanOrEqual(fuzzer.sent, 10_000)
        XCTAssertEqual(fuzzer.trajectoryMessages.notDelivered, 1)
        XCTAssertEqual(dropped.values.reduce(0, +), fuzzer.trajectoryMessages.delivered,
                       "every fuzz segment delivered is dropped under a reason, nothing else is: \(dropped)")
        XCTAssertEqual(learner.messagesReceived, fuzzer.trajectoryMessages.delivered + 2 * 3 * 3, "fuzz + 3 segments × 2 actors × 3 iterations")
        let expectedReasons = keyed
            ? ["bad_magic", "unsupported_version", "malformed_header", "truncated", "unknown_kind", "too_large", "bad_tag", "missing_tag", "stale_version",
               "non_finite", "unexpected_kind", "bad_shape", "bad_actor_index", "missing_tensor"]
            : ["bad_magic", "unsupported_version", "truncated", "unknown_kind", "too_large", "unexpected_tag", "stale_version",
               "non_finite", "unexpected_kind", "bad_shape", "bad_actor_index", "missing_tensor", "malformed_header"]
        for reason in expectedReasons { XCTAssertNotNil(dropped[reason], "\(reason) in \(dropped)") }

        let rejections = summary["control_rejections"] as? [String: Int] ?? [:]
        XCTAssertEqual(fuzzer.controlMessages.notDelivered, 1)
        XCTAssertEqual(fuzzer.unansweredRequests, 0, "a REP that refuses still answers")
        XCTAssertEqual(fuzzer.grantedRequests, [:], "the fuzzer must never be granted anything")
        XCTAssertEqual(rejections, fuzzer.refusals, "the learner's refusal counters are the refusals the fuzzer received")
        XCTAssertEqual(rejections.values.reduce(0, +), fuzzer.controlMessages.delivered)
        for reason in ["bad_magic", "unexpected_kind", "unknown_actor", "config_mismatch", "bad_hello"] + (keyed ? ["bad_tag", "missing_tag"] : ["unexpected_tag"]) {
            XCTAssertNotNil(rejections[reason], "\(reason) in \(rejections)")
        }
    }
}

/// Builds and sends hostile messages; tallies what was sent, delivered and answered.
private final class Fuzzer: @unchecked Sendable {
    struct Tally { var delivered = 0; var notDelivered = 0 }

    let config: RunConfig
    /// The run's own codec: with a key, it forges "insider" messages that pass the tag and reach the parsers.
    let codec: WireCodec
    let keyed: Bool
    let endpoints: Endpoints
    let push: Socket
    let request: Socket
    private(set) var trajectoryMessages = Tally()
    private(set) var controlMessages = Tally()
    private(set) var refusals: [String: Int] = [:]
    private(set) var grantedRequests: [String: Int] = [:]
    private(set) var unansweredRequests = 0
    var sent: Int { trajectoryMessages.delivered + trajectoryMessages.notDelivered + controlMessages.delivered + controlMessages.notDelivered }

    /// A policy version no fuzz segment can bit-flip its way to the learner's 1…4 from (16 bits set, flips touch ≤ 3).
    static let farVersion: UInt64 = 0xFFFF_0000_0000_0000
    /// An actor index no actor said hello with, and no ≤ 3 bit flips make 0 or 1.
    static let farActor: UInt32 = 0xFFFF_FF00

    init(config: RunConfig, codec: WireCodec, keyed: Bool, endpoints: Endpoints) throws {
        self.config = config
        self.codec = codec
        self.keyed = keyed
        self.endpoints = endpoints
        push = try Socket(.push, sendTimeoutMilliseconds: 20_000)
        try push.connect(endpoints.trajectories)
        request = try Socket(.request, sendTimeoutMilliseconds: 5_000, receiveTimeoutMilliseconds: 5_000)
        try request.connect(endpoints.control)
    }

    func close() { push.close(); request.close() }

    // MARK: Message sources

    func segment(version: UInt64, actor: Int = 0, offset: Int = 0, steps: Int = 12) -> Segment {
        let e = 3, o = 3, c = config.recordWidth
        return Segment(policyVersion: version, actorIndex: actor, stepOffset: offset, steps: steps, environments: e,
                       observations: [Float](repeating: 0.5, count: steps * e * o), chains: [Float](repeating: 0.25, count: steps * e * c),
                       rewards: [Float](repeating: -1, count: steps * e), terminated: [UInt8](repeating: 0, count: steps * e),
                       truncated: [UInt8](repeating: 0, count: steps * e), firsts: [UInt8](repeating: 0, count: steps * e),
                       nextObservations: [Float](repeating: 0.5, count: e * o), finalIndices: [], finalObservations: [],
                       episodeReturns: [], episodeLengths: [])
    }

    func encode(_ segment: Segment, sequence: UInt64 = 1) throws -> [UInt8] {
        try codec.encode(segment.message(sequence: sequence, observationWidth: 3, chainWidth: config.recordWidth))
    }

    /// Signed with a key that is not the run's (or unsigned, or signed where the run has no key).
    func wronglySigned(_ message: WireMessage, choice: UInt64) throws -> [UInt8] {
        let strangers = keyed ? [WireCodec(key: [UInt8](repeating: 0xB0, count: 32)), WireCodec()] : [WireCodec(key: [UInt8](repeating: 0xB0, count: 32))]
        return try strangers[Int(choice % UInt64(strangers.count))].encode(message)
    }

    /// Patches a header field and re-signs with the run's key when it has one (an insider's forgery).
    func patched(_ bytes: [UInt8], at offset: Int, _ value: [UInt8], resign: Bool = true) -> [UInt8] {
        var bytes = bytes
        for (index, byte) in value.enumerated() where offset + index < bytes.count { bytes[offset + index] = byte }
        if resign, keyed, bytes.count >= WireHeader.size { MessageAuthenticator(key: Self.keyBytes).sign(&bytes) }
        return bytes
    }

    static let keyBytes: [UInt8] = Array(0 ..< 32)

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    func flipped(_ bytes: [UInt8], random: inout SplitMix, resign: Bool) -> [UInt8] {
        var bytes = bytes
        for _ in 0 ..< 1 + Int(random.next() % 3) {
            let bit = Int(random.next() % UInt64(bytes.count * 8))
            bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        }
        // Re-signing makes the flips reach the decompressor and parsers (a peer that has the key but sends garbage).
        if resign, keyed, bytes.count >= WireHeader.size, bytes[8] & 2 != 0 { MessageAuthenticator(key: Self.keyBytes).sign(&bytes) }
        return bytes
    }

    /// One hostile `trajectories` message; none of them is a segment the learner could use.
    func trajectoryMessage(_ index: Int, random: inout SplitMix) throws -> [UInt8] {
        let stale = try encode(segment(version: Self.farVersion, actor: Int(random.next() % 2)), sequence: random.next())
        switch index % 16 {
        case 0: // garbage of any length, including empty
            return (0 ..< Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        case 1: // truncated: a valid (stale) segment cut short
            return Array(stale.prefix(Int(random.next() % UInt64(stale.count))))
        case 2, 3: // bit flips, re-signed or not
            return flipped(stale, random: &random, resign: index % 16 == 2)
        case 4: // forged kinds the learner knows (hello, weights, refusal, ...)
            let kind = MessageKind.allCases.filter { $0 != .segment }[Int(random.next() % 9)]
            return try codec.encode(WireMessage(kind: kind, policyVersion: 1, actorIndex: 0, sequence: 1, tensors: segment(version: 1).message(sequence: 1, observationWidth: 3, chainWidth: config.recordWidth).tensors))
        case 5: // kind codes no version knows
            return patched(stale, at: 6, Self.littleEndian([0, 11, 0xFFFF, 0x100][Int(random.next() % 4)] as UInt16))
        case 6: // wrong format version
            return patched(stale, at: 4, Self.littleEndian([0, 2, 0xFFFF][Int(random.next() % 3)] as UInt16))
        case 7: // oversized beyond the codec's limits: declares a payload over 64 MiB (or a huge encoded length)
            return random.next() % 2 == 0 ? patched(stale, at: 40, Self.littleEndian(UInt64(64 << 20) + 1 + random.next() % 1000))
                                          : patched(stale, at: 48, Self.littleEndian(UInt64.max - random.next() % 1000))
        case 8: // stale policy versions, well-formed otherwise (older, newer, far)
            return try encode(segment(version: [0, 2, 3, Self.farVersion][Int(random.next() % 4)]), sequence: 1)
        case 9: // the current version carrying NaN or infinity
            var poisoned = segment(version: 1, actor: Int(random.next() % 2))
            let value: Float = [.nan, .infinity, -.infinity][Int(random.next() % 3)]
            switch random.next() % 4 {
            case 0: poisoned.observations[Int(random.next() % UInt64(poisoned.observations.count))] = value
            case 1: poisoned.chains[Int(random.next() % UInt64(poisoned.chains.count))] = value
            case 2: poisoned.rewards[Int(random.next() % UInt64(poisoned.rewards.count))] = value
            default: poisoned.nextObservations[Int(random.next() % UInt64(poisoned.nextObservations.count))] = value
            }
            return try encode(poisoned)
        case 10: // the current version with wrong shapes, offsets, final indices or actor index
            var bad = segment(version: 1)
            switch random.next() % 4 {
            case 0: // chains flattened to one dimension
                return try codec.encode(WireMessage(kind: .segment, policyVersion: 1, actorIndex: 0, sequence: 1,
                        tensors: bad.message(sequence: 1, observationWidth: 3, chainWidth: config.recordWidth).tensors.map {
                            $0.name == "chains" ? WireTensor(name: "chains", floats: bad.chains, shape: [bad.chains.count]) : $0 }))
            case 1: bad.stepOffset = 25 // 25 + 12 > 30
            case 2: bad.finalIndices = [Int32(36 + random.next() % 100)]; bad.finalObservations = [0, 0, 0]
            default: bad.actorIndex = 2 + Int(random.next() % 1000)
            }
            return try encode(bad)
        case 11: // a tensor missing
            let message = segment(version: 1).message(sequence: 1, observationWidth: 3, chainWidth: config.recordWidth)
            var tensors = message.tensors
            tensors.remove(at: Int(random.next() % UInt64(tensors.count)))
            return try codec.encode(WireMessage(kind: .segment, policyVersion: 1, actorIndex: 0, sequence: 1, tensors: tensors))
        case 12, 13: // signed with the wrong key, or not signed (with a key) / signed (without one); otherwise usable
            return try wronglySigned(segment(version: 1).message(sequence: 1, observationWidth: 3, chainWidth: config.recordWidth), choice: random.next())
        case 14: // reserved header bytes set, or unknown flag bits
            return random.next() % 2 == 0 ? patched(stale, at: 12, [0xAB]) : patched(stale, at: 8, Self.littleEndian(UInt32(4)), resign: false)
        default: // large garbage within the socket's limit (1–4 MiB) now and then, else a short header-only message
            if index % 256 == 15 { return [UInt8](repeating: 0x5A, count: (1 + Int(random.next() % 4)) << 20) }
            return Array(stale.prefix(WireHeader.size))
        }
    }

    /// One hostile `control` request; none of them is one the learner would grant.
    func controlMessage(_ index: Int, random: inout SplitMix) throws -> [UInt8] {
        let far = Self.farActor | UInt32(random.next() % 256)
        let wrongHash = Messages.meta(["config_hash": "1", "requested_index": 0])
        // From a far actor index: a bit flip that turns the kind into heartbeat or weights request must not name a real actor.
        let hello = try codec.encode(WireMessage(kind: .hello, policyVersion: 0, actorIndex: far, sequence: 0, tensors: [wrongHash]))
        switch index % 12 {
        case 0: return (0 ..< Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        case 1: return Array(hello.prefix(Int(random.next() % UInt64(hello.count))))
        case 2: return flipped(hello, random: &random, resign: true)
        case 3: // heartbeats and weight requests (any version, stale included) from actors that never said hello
            let kind: MessageKind = random.next() % 2 == 0 ? .heartbeat : .weightsRequest
            return try codec.encode(WireMessage(kind: kind, policyVersion: [0, 1, 2, Self.farVersion][Int(random.next() % 4)], actorIndex: far, sequence: random.next(), tensors: []))
        case 4: // kinds control does not take: segments (NaN-carrying too), weights, welcome, refusal, ...
            let kind = [MessageKind.segment, .weightsNotice, .welcome, .weights, .heartbeatReply, .shutdown, .refusal][Int(random.next() % 7)]
            var poisoned = segment(version: 1); poisoned.rewards[0] = .nan
            return try codec.encode(WireMessage(kind: kind, policyVersion: 1, actorIndex: 0, sequence: 1,
                                                tensors: poisoned.message(sequence: 1, observationWidth: 3, chainWidth: config.recordWidth).tensors))
        case 5: return patched(hello, at: 6, Self.littleEndian(UInt16(11 + random.next() % 1000)))
        case 6: return patched(hello, at: 4, Self.littleEndian(UInt16(2 + random.next() % 1000)))
        case 7: return patched(hello, at: 40, Self.littleEndian(UInt64(64 << 20) + 1 + random.next() % 1000))
        case 8: // hello without meta, or with meta that is not JSON
            let tensors = random.next() % 2 == 0 ? [] : [WireTensor(name: "meta", utf8: "{\"config_hash\": NaN")]
            return try codec.encode(WireMessage(kind: .hello, policyVersion: 0, actorIndex: 0, sequence: 0, tensors: tensors))
        case 9: return hello // from a peer with another config
        case 10: // signed with the wrong key / unsigned / signed without a key: a heartbeat that would be granted
            return try wronglySigned(WireMessage(kind: .heartbeat, policyVersion: 1, actorIndex: 0, sequence: 1, tensors: []), choice: random.next())
        default: return [UInt8](Array("DPPO".utf8)) + (0 ..< Int(random.next() % 100)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        }
    }

    // MARK: Sending

    /// Messages over the learner's receive limit (`WireLimits.maxWireBytes`), one per endpoint, each on its own socket:
    /// never delivered.
    func sendOversized() throws {
        var huge = try encode(segment(version: Self.farVersion))
        huge += [UInt8](repeating: 0, count: WireLimits().maxWireBytes + 1 - huge.count + 16)
        let bigPush = try Socket(.push, sendTimeoutMilliseconds: 20_000)
        defer { bigPush.close() }
        try bigPush.connect(endpoints.trajectories)
        guard try bigPush.send(huge) else { throw ConfigError("oversized push timed out") }
        trajectoryMessages.notDelivered += 1
        let bigRequest = try Socket(.request, sendTimeoutMilliseconds: 5_000, receiveTimeoutMilliseconds: 1_000)
        defer { bigRequest.close() }
        try bigRequest.connect(endpoints.control)
        guard try bigRequest.send(huge) else { throw ConfigError("oversized request timed out") }
        controlMessages.notDelivered += 1
        if let reply = try bigRequest.receive() { throw ConfigError("an oversized request was answered (\(reply.count) bytes)") }
    }

    func fuzz(trajectories: Int, control: Int, seed: UInt64) throws {
        var random = SplitMix(state: seed)
        for index in 0 ..< trajectories {
            guard try push.send(try trajectoryMessage(index, random: &random)) else { throw ConfigError("fuzz push \(index) timed out") }
            trajectoryMessages.delivered += 1
        }
        for index in 0 ..< control {
            guard try request.send(try controlMessage(index, random: &random)) else { throw ConfigError("fuzz request \(index) timed out") }
            controlMessages.delivered += 1
            guard let reply = try request.receive() else { unansweredRequests += 1; continue }
            let message = try codec.decode(reply)
            if message.kind == .refusal, let reason = try Messages.readMeta(message)["reason"] as? String {
                refusals[reason, default: 0] += 1
            } else {
                grantedRequests["\(message.kind)", default: 0] += 1
            }
        }
    }

    /// Waits until the learner has dropped every delivered fuzz segment (it is in iteration 1 and takes no fuzz message).
    func waitUntilJudged(by learner: Learner) throws {
        let deadline = Date().addingTimeInterval(20)
        while learner.droppedTotal < trajectoryMessages.delivered {
            guard Date() < deadline else {
                throw ConfigError("the learner judged \(learner.droppedTotal) of \(trajectoryMessages.delivered) fuzz messages in 20 s")
            }
            usleep(20_000)
        }
    }
}

/// A small seeded generator (SplitMix64).
private struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
