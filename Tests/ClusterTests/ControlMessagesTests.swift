import XCTest
import Foundation
@testable import Cluster
import Transport

/// The typed `meta` of each control message: what one side encodes the other decodes unchanged, and anything
/// else is refused with the message and the field named.
final class ControlMessagesTests: XCTestCase {
    func message(_ kind: MessageKind, _ meta: WireTensor) -> WireMessage {
        WireMessage(kind: kind, policyVersion: 3, actorIndex: 1, sequence: 2, tensors: [meta])
    }

    func testEveryKindRoundTrips() throws {
        let hello = HelloMeta(configHash: "1234567890123456789", requestedIndex: 2)
        XCTAssertEqual(try HelloMeta(from: message(.hello, try hello.tensor())), hello)
        let anonymous = HelloMeta(configHash: "5", requestedIndex: nil)
        XCTAssertEqual(try HelloMeta(from: message(.hello, try anonymous.tensor())), anonymous)
        let welcome = WelcomeMeta(actorIndex: 1, seed: String(UInt64.max), policyVersion: 9, chainTransport: .seeded, chainCheckEvery: 4)
        let decoded = try WelcomeMeta(from: message(.welcome, try welcome.tensor()))
        XCTAssertEqual(decoded, welcome)
        XCTAssertEqual(decoded.seedValue, UInt64.max)
        let beat = HeartbeatMeta(envSteps: 9600, episodes: 41, envStepsPerSecond: 812.5)
        XCTAssertEqual(try HeartbeatMeta(from: message(.heartbeat, try beat.tensor())), beat)
        let reply = ChainSettingsMeta(chainTransport: .full, chainCheckEvery: 0, redoVersion: "7")
        XCTAssertEqual(try ChainSettingsMeta(from: message(.heartbeatReply, try reply.tensor())).redo, 7)
        let refusal = RefusalMeta(reason: "config_mismatch", detail: "start actors with the learner's config")
        XCTAssertEqual(try RefusalMeta(from: message(.refusal, try refusal.tensor())), refusal)
        // The keys on the wire are docs/wire-format.md's.
        XCTAssertEqual(try Messages.readMeta(message(.welcome, try welcome.tensor())).keys.sorted(),
                       ["actor_index", "chain_check_every", "chain_transport", "policy_version", "seed"])
    }

    func testNothingReadsAsADefault() throws {
        let cases: [(WireMessage, (WireMessage) throws -> Any, String)] = [
            (message(.hello, Messages.meta(["config_hash": 12])), { try HelloMeta(from: $0) }, "meta field config_hash is '12', expected a string"),
            (message(.hello, Messages.meta(["config_hash": "abc"])), { try HelloMeta(from: $0) }, "meta field config_hash is 'abc', expected a decimal u64"),
            (message(.hello, Messages.meta(["requested_index": 0])), { try HelloMeta(from: $0) }, "meta field config_hash is missing"),
            (message(.hello, Messages.meta(["config_hash": "1", "requested_index": "0"])), { try HelloMeta(from: $0) }, "meta field requested_index is '0'"),
            (message(.hello, Messages.meta(["config_hash": "1", "index": 0])), { try HelloMeta(from: $0) }, "meta field index is not one a hello carries"),
            (message(.heartbeat, Messages.meta(["env_steps": -4, "episodes": 0, "env_steps_per_second": 1])), { try HeartbeatMeta(from: $0) },
             "meta field env_steps is '-4', expected an integer ≥ 0"),
            (message(.heartbeat, Messages.meta(["env_steps": 4, "episodes": 0])), { try HeartbeatMeta(from: $0) }, "meta field env_steps_per_second is missing"),
            (message(.heartbeatReply, Messages.meta(["chain_transport": "full", "redo_version": "x"])), { try ChainSettingsMeta(from: $0) },
             "meta field redo_version is 'x', expected a decimal u64"),
            (message(.refusal, Messages.meta(["reason": "no_weights"])), { try RefusalMeta(from: $0) }, "meta field detail is missing"),
            (WireMessage(kind: .hello, policyVersion: 0, actorIndex: 0, sequence: 0, tensors: []), { try HelloMeta(from: $0) }, "its meta tensor"),
        ]
        for (bad, decode, expected) in cases {
            XCTAssertThrowsError(try decode(bad)) { error in
                XCTAssertTrue("\(error)".hasPrefix("\(bad.kind)"), "names the message: \(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(error) should say \(expected)")
            }
        }
    }

    /// A non-finite step rate is never put on the wire (JSON has no NaN).
    func testAHeartbeatAlwaysEncodes() throws {
        let beat = HeartbeatMeta(envSteps: 1, episodes: 0, envStepsPerSecond: .infinity)
        XCTAssertEqual(try HeartbeatMeta(from: message(.heartbeat, try beat.tensor())).envStepsPerSecond, 0)
    }
}
