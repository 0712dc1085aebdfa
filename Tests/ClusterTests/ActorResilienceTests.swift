import XCTest
import Foundation
@testable import Cluster
import Tensors
import Transport

/// An actor against a scripted learner that answers badly: garbage bytes, a forged welcome, a wrong-kind reply,
/// non-finite weights. Each counts as a lost reply and the actor goes on; none ends it. Only `shutdown` does.
final class ActorResilienceTests: XCTestCase {
    func testBadRepliesAreLostRepliesNotTheEnd() throws {
        let port = 21_500 + Int(getpid() % 100) * 3 // FaultFuzzTests' block 1 ends at 21_900; this one is its own
        let config = try RunConfig.parse(yaml: """
            env: {task: pendulum, n_envs: 2, act_steps: 2, horizon_steps: 2}
            model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
            train: {n_steps: 4}
            cluster: {actors: 1, base_port: \(port), segment_steps: 4, learner_timeout_s: 30, reconnect_timeout_s: 30}
            """)
        let model = PolicyModel(config: config)
        let codec = WireCodec()
        let endpoints = Endpoints(basePort: port)
        let control = try Socket(.reply, receiveTimeoutMilliseconds: 100)
        try control.bind(endpoints.control)
        let weightsSocket = try Socket(.publish)
        try weightsSocket.bind(endpoints.weights)
        let trajectories = try Socket(.pull, receiveTimeoutMilliseconds: 100)
        try trajectories.bind(endpoints.trajectories)

        func meta(_ values: [String: Any]) -> WireTensor { Messages.meta(values) }
        let base = [Float](repeating: 0.01, count: model.baseParameters.count)
        func welcome(seed: Any) -> [UInt8] {
            let message = WireMessage(kind: .welcome, policyVersion: 1, actorIndex: 0, sequence: 0, tensors: [
                WireTensor(name: "base", floats: base, shape: [base.count]),
                meta(["actor_index": 0, "seed": seed, "policy_version": 1, "chain_transport": "full", "chain_check_every": 0]),
            ])
            return try! codec.encode(message)
        }
        var nonFinite = [Float](repeating: 0, count: model.trainableParameters.count)
        nonFinite[3] = .nan
        let script: [(expects: MessageKind, reply: [UInt8])] = [
            (.hello, Array("not a wire message at all".utf8)),
            (.hello, welcome(seed: "abc")),
            (.hello, welcome(seed: "7")),
            (.heartbeat, try codec.encode(WireMessage(kind: .welcome, policyVersion: 1, actorIndex: 0, sequence: 0, tensors: []))),
            (.weightsRequest, try codec.encode(WireMessage(kind: .weights, policyVersion: 1, actorIndex: 0, sequence: 0, tensors: [
                WireTensor(name: "fine_tuned", floats: nonFinite, shape: [nonFinite.count]), meta(["chain_transport": "full"]),
            ]))),
            (.weightsRequest, try codec.encode(WireMessage(kind: .shutdown, policyVersion: 1, actorIndex: 0, sequence: 0, tensors: []))),
        ]
        let record = Record()
        // Used by its own thread until `done`; the test reads it only after.
        nonisolated(unsafe) let actor = try Actor(config: config, learnerHost: "127.0.0.1", requestedIndex: 0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do { try actor.run(giveUpSeconds: 30, log: record.append) } catch { record.fail(error) }
            done.signal()
        }
        var seen: [MessageKind] = []
        let deadline = Date().addingTimeInterval(40)
        for step in script {
            var request: WireMessage?
            while request == nil, Date() < deadline {
                if let bytes = try control.receive() { request = try codec.decode(bytes) }
            }
            let received = try XCTUnwrap(request, "the actor stopped asking after \(seen)")
            // Heartbeats may come between the scripted requests; answer them with a plain reply.
            var current = received
            while current.kind != step.expects && current.kind == .heartbeat {
                _ = try control.send(try codec.encode(WireMessage(kind: .heartbeatReply, policyVersion: 1, actorIndex: 0, sequence: 0, tensors: [])))
                var next: WireMessage?
                while next == nil, Date() < deadline { if let bytes = try control.receive() { next = try codec.decode(bytes) } }
                current = try XCTUnwrap(next)
            }
            XCTAssertEqual(current.kind, step.expects, "after \(seen)")
            seen.append(current.kind)
            _ = try control.send(step.reply)
        }
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success, "the actor exits on shutdown")
        XCTAssertNil(record.error, "no bad reply ends the actor: \(String(describing: record.error))")
        let text = record.text
        XCTAssertTrue(text.contains("joined learner"), text)
        XCTAssertTrue(text.contains("counted as lost"), text)
        XCTAssertTrue(text.contains("non-finite weights refused"), text)
        XCTAssertTrue(text.contains("a welcome in answer to a heartbeat"), text)
        XCTAssertEqual(actor.model.baseParameters.values[0], 0.01, "the good welcome's base weights")
        XCTAssertFalse(UnsafeBufferPointer(start: actor.model.trainableParameters.values, count: model.trainableParameters.count).contains { $0.isNaN },
                       "the refused weights never reached the policy")
    }

    /// The actor thread's log lines and error, read once it is done.
    final class Record: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        private(set) var error: Error?
        func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
        func fail(_ error: Error) { lock.lock(); self.error = error; lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
    }

    /// A malformed welcome names the message and the field.
    func testAWelcomeIsCheckedFieldByField() throws {
        let config = try RunConfig.parse(yaml: "model: {mlp_dims: [16, 16, 16], time_dim: 4}")
        let actor = try Actor(config: config, learnerHost: "127.0.0.1", requestedIndex: 0)
        let base = WireTensor(name: "base", floats: [Float](repeating: 0, count: actor.model.baseParameters.count), shape: [actor.model.baseParameters.count])
        func welcome(_ meta: [String: Any], base: WireTensor? = nil, index: UInt32 = 0) -> WireMessage {
            WireMessage(kind: .welcome, policyVersion: 1, actorIndex: index, sequence: 0, tensors: [base].compactMap { $0 } + [Messages.meta(meta)])
        }
        let good: [String: Any] = ["actor_index": 0, "seed": "7", "policy_version": 1, "chain_transport": "full", "chain_check_every": 0]
        func with(_ key: String, _ value: Any?) -> [String: Any] { var meta = good; meta[key] = value; return meta }
        XCTAssertNoThrow(try actor.membership(from: welcome(good, base: base)))
        let cases: [(WireMessage, String)] = [
            (welcome(with("seed", "abc"), base: base), "meta field seed is 'abc', expected a decimal u64 in a string"),
            (welcome(with("seed", 7), base: base), "meta field seed is '7', expected a string"),
            (welcome(with("seed", nil), base: base), "meta field seed is missing"),
            (welcome(with("chain_transport", "pigeon"), base: base), "meta field chain_transport is 'pigeon'"),
            (welcome(with("chain_check_every", -1), base: base), "meta field chain_check_every is '-1', expected an integer ≥ 0"),
            (welcome(with("policy_version", 1.5), base: base), "meta field policy_version is '1.5'"),
            (welcome(with("colour", "red"), base: base), "meta field colour is not one a welcome carries"),
            (welcome(good, base: base, index: 9), "actor index 9"),
            (welcome(good), "base"),
            (WireMessage(kind: .welcome, policyVersion: 1, actorIndex: 0, sequence: 0, tensors: [WireTensor(name: "meta", dtype: .uint8, shape: [3], bytes: Array("{x:".utf8))]),
             "its meta is not a JSON object"),
        ]
        for (message, expected) in cases {
            XCTAssertThrowsError(try actor.membership(from: message), expected) { error in
                XCTAssertTrue("\(error)".hasPrefix("welcome"), "\(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(error) should say \(expected)")
            }
        }
    }
}
