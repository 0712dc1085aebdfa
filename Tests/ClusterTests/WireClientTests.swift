import XCTest
import Foundation
@testable import Cluster
import Tensors
import Transport

/// `scripts/wire_client.py`, written from docs/wire-format.md alone (its own nanomsg REQ framing, encoder and
/// decoder, HMAC), against a live `dppo learner` with a cluster key: hello is accepted, the welcome and the
/// weights decode and check, a heartbeat is answered.
final class WireClientTests: XCTestCase {
    func testThePythonClientIsAcceptedByALiveLearner() throws {
        guard pythonHas("numpy, lz4.frame") else {
            throw XCTSkip("numpy and lz4 are not installed for Python (pip install -r scripts/requirements-test.txt)")
        }
        let binary = try FaultRestartTests.dppoBinary()
        let directory = try makeTemporaryDirectory("dppo-wire-client")
        let port = 17_000 + Int(getpid() % 300) * 3 // 17_000–17_899: no other test binds there
        let yaml = """
            env: {task: pendulum, n_envs: 2}
            model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
            train: {n_train_itr: 2, n_steps: 10}
            cluster: {actors: 2, base_port: \(port), batch_timeout_s: 60}
            """
        let configURL = directory.appendingPathComponent("config.yaml")
        try yaml.write(to: configURL, atomically: true, encoding: .utf8)
        let config = try RunConfig.parse(yaml: yaml)
        let start = try writeRandomPolicy(config: config, to: directory)
        let key = directory.appendingPathComponent("cluster.key")
        try "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n".write(to: key, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key.path)

        let learner = Process()
        learner.executableURL = binary
        learner.arguments = ["learner", "--config", configURL.path, "--run-dir", directory.appendingPathComponent("run").path, "--base-policy", start.path]
        learner.environment = ProcessInfo.processInfo.environment.merging(["DPPO_CLUSTER_KEY_FILE": key.path]) { $1 }
        let learnerLog = directory.appendingPathComponent("learner.log")
        FileManager.default.createFile(atPath: learnerLog.path, contents: nil)
        let handle = try FileHandle(forWritingTo: learnerLog)
        learner.standardOutput = handle
        learner.standardError = handle
        try learner.run()
        defer { if learner.isRunning { kill(learner.processIdentifier, SIGKILL); learner.waitUntilExit() } }
        let listening = Date().addingTimeInterval(30)
        while !((try? String(contentsOf: learnerLog, encoding: .utf8)) ?? "").contains("listening on") {
            guard learner.isRunning, Date() < listening else { return XCTFail("the learner did not start: \((try? String(contentsOf: learnerLog, encoding: .utf8)) ?? "")") }
            usleep(50_000)
        }

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/wire_client.py")
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", script.path, "handshake", "--port", String(port + 2), "--config-hash", String(config.compatibilityHash),
                            "--index", "1", "--key-file", key.path]
        let output = directory.appendingPathComponent("client.out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        let clientHandle = try FileHandle(forWritingTo: output)
        client.standardOutput = clientHandle
        client.standardError = clientHandle
        try client.run()
        let deadline = Date().addingTimeInterval(60)
        while client.isRunning && Date() < deadline { usleep(50_000) }
        if client.isRunning { kill(client.processIdentifier, SIGKILL); client.waitUntilExit() }
        let text = try String(contentsOf: output, encoding: .utf8)
        XCTAssertEqual(client.terminationStatus, 0, text)
        let reply = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
        let welcome = try XCTUnwrap(reply["welcome"] as? [String: Any])
        let model = PolicyModel(config: config)
        XCTAssertEqual(welcome["actor_index"] as? Int, 1)
        XCTAssertEqual(welcome["policy_version"] as? Int, 1)
        XCTAssertEqual(welcome["base_parameters"] as? Int, model.baseParameters.count)
        XCTAssertEqual(welcome["base_finite"] as? Bool, true)
        XCTAssertEqual(welcome["seed"] as? String, String(config.seed &+ 1_000), "actor 1's seed")
        let weights = try XCTUnwrap(reply["weights"] as? [String: Any])
        XCTAssertEqual(weights["parameters"] as? Int, model.trainableParameters.count)
        XCTAssertEqual(reply["heartbeat_reply"] as? String, "heartbeatReply")
        kill(learner.processIdentifier, SIGTERM)
        learner.waitUntilExit()
        let log = (try? String(contentsOf: learnerLog, encoding: .utf8)) ?? ""
        XCTAssertFalse(log.contains("control requests refused"), "nothing the client sent was refused: \(log)")
    }

    /// The same bytes through both decoders: valid messages and hundreds of damaged ones (every truncation, seeded
    /// bit flips, patched header and table fields), without and with a key. The Python client names the same reason
    /// as the Swift decoder for every one, or accepts the same messages.
    func testThePythonDecoderNamesTheSwiftDecodersReasons() throws {
        guard pythonHas("numpy, lz4.frame") else { throw XCTSkip("numpy and lz4 are not installed for Python") }
        let directory = try makeTemporaryDirectory("dppo-wire-reasons")
        let key = Array(0..<32).map { UInt8($0) }
        try key.map { String(format: "%02x", $0) }.joined().write(to: directory.appendingPathComponent("key"), atomically: true, encoding: .utf8)
        for keyed in [false, true] {
            let codec = WireCodec(key: keyed ? key : nil)
            let floats = (0..<300).map { Float($0 % 17) * 0.5 }
            let messages: [WireMessage] = [
                WireMessage(kind: .segment, policyVersion: 3, actorIndex: 1, sequence: 9, tensors: [
                    WireTensor(name: "observations", floats: floats, shape: [10, 30]), WireTensor(name: "empty", floats: [], shape: [0, 3]),
                    WireTensor(name: "step_offset", dtype: .int32, shape: [1], bytes: [4, 0, 0, 0])]),
                WireMessage(kind: .hello, policyVersion: 0, actorIndex: 0, sequence: 0, tensors: [Messages.meta(["config_hash": "12"])]),
                WireMessage(kind: .shutdown, policyVersion: 7, actorIndex: 0, sequence: 0, tensors: []),
            ]
            var random = Philox(seed: keyed ? 2 : 1)
            var cases: [[UInt8]] = []
            for message in messages {
                let bytes = try codec.encode(message)
                cases.append(bytes)
                for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 40)) { cases.append(Array(bytes.prefix(length))) }
                for _ in 0..<60 {
                    var flipped = bytes
                    let position = Int(random.nextUInt64() % UInt64(bytes.count))
                    flipped[position] ^= UInt8(1 << (random.nextUInt64() % 8))
                    cases.append(flipped)
                }
                for offset in [4, 6, 8, 12, 40, 48, 56, 96, 100, 102, 104] where offset + 2 <= bytes.count {
                    var patched = bytes
                    patched[offset] = 0xFF
                    patched[offset + 1] = 0x7F
                    cases.append(patched)
                }
                cases.append(bytes + [0])
            }
            var expected: [String] = []
            var paths: [String] = []
            for (index, bytes) in cases.enumerated() {
                do { _ = try codec.decode(bytes); expected.append("ok") } catch { expected.append(error.reason) }
                let path = directory.appendingPathComponent("\(keyed ? "k" : "u")-\(index).bin").path
                FileManager.default.createFile(atPath: path, contents: Data(bytes))
                paths.append(path)
            }
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/wire_client.py")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script.path, "reasons"] + paths + (keyed ? ["--key-file", directory.appendingPathComponent("key").path] : [])
            let output = directory.appendingPathComponent("reasons-\(keyed).out")
            FileManager.default.createFile(atPath: output.path, contents: nil)
            let handle = try FileHandle(forWritingTo: output)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            process.waitUntilExit()
            let got = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").map(String.init)
            XCTAssertEqual(process.terminationStatus, 0, got.suffix(10).joined(separator: "\n"))
            XCTAssertEqual(got.count, expected.count)
            for (index, (swift, python)) in zip(expected, got).enumerated() where swift != python {
                XCTFail("\(keyed ? "keyed" : "unkeyed") case \(index): Swift says \(swift), the Python client \(python)")
            }
            XCTAssertGreaterThan(Set(expected).count, 6, "the cases reach many reasons: \(Set(expected))")
        }
    }
}
