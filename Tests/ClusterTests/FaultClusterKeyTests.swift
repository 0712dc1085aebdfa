import XCTest
import Foundation
@testable import Cluster
import Tensors
import Transport

/// The cluster key: where it comes from, how bad keys fail, and that peers without it cannot inject data or join.
final class FaultClusterKeyTests: XCTestCase {
    private let hexA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    private let hexB = String(repeating: "b0", count: 32)
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-key-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    private func writeKeyFile(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
        return url.path
    }

    private func config(keyFile: String?, port: Int = 5555, batchTimeout: Int = 60) throws -> RunConfig {
        try RunConfig.parse(yaml: """
        name: test
        env: {task: pendulum, n_envs: 3, act_steps: 2, horizon_steps: 2}
        model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: 3, n_steps: 30, batch_size: 60, update_epochs: 2, val_freq: 2, eval_episodes: 4, save_model_freq: 2}
        cluster: {actors: 2, base_port: \(port), segment_steps: 12, batch_timeout_s: \(batchTimeout)\(keyFile.map { ", key_file: '\($0)'" } ?? "")}
        """)
    }

    private func loadError(_ config: RunConfig, _ environment: [String: String]) -> String {
        do { _ = try ClusterKey.load(config: config, environment: environment, warn: { _ in }); return "no error" } catch { return "\(error)" }
    }

    func testNoKeyConfiguredMeansNoAuthentication() throws {
        XCTAssertNil(try ClusterKey.load(config: config(keyFile: nil), environment: [:]))
    }

    /// Fail closed: a key variable set to nothing is a mistake, not "no key"; and a learner other machines can reach
    /// needs a key or an explicit `cluster.allow_unauthenticated`.
    func testEmptyKeyVariablesAndUnauthenticatedNonLoopbackLearnersAreRefused() throws {
        for name in [ClusterKey.keyVariable, ClusterKey.keyFileVariable] {
            XCTAssertTrue(loadError(try config(keyFile: nil), [name: ""]).contains("\(name) is set but empty"), name)
            XCTAssertTrue(loadError(try config(keyFile: nil), [name: "  "]).contains("set but empty"), name)
        }
        let empty = try makeTemporaryDirectory().appendingPathComponent("empty.key")
        try Data().write(to: empty)
        XCTAssertTrue(loadError(try config(keyFile: nil), [ClusterKey.keyFileVariable: empty.path]).contains("0 bytes"))
        let open = try RunConfig.parse(yaml: "cluster: {host: 0.0.0.0}")
        XCTAssertThrowsError(try ClusterKey.forLearner(config: open, environment: [:], warn: { _ in })) { error in
            XCTAssertTrue("\(error)".contains("cluster.allow_unauthenticated"), "\(error)")
        }
        var warnings: [String] = []
        let allowed = try RunConfig.parse(yaml: "cluster: {host: 0.0.0.0, allow_unauthenticated: true}")
        XCTAssertNil(try ClusterKey.forLearner(config: allowed, environment: [:], warn: { warnings.append($0) }))
        XCTAssertEqual(warnings.count, 1, "said once, at start")
        XCTAssertNil(try ClusterKey.forLearner(config: try RunConfig.parse(yaml: "cluster: {host: localhost}"), environment: [:]))
        XCTAssertNotNil(try ClusterKey.forLearner(config: open, environment: [ClusterKey.keyVariable: hexA]))
    }

    func testKeyFileHoldsHexWithSurroundingWhitespaceIgnored() throws {
        let path = try writeKeyFile("key", "  \(hexA.uppercased())\n")
        let key = try XCTUnwrap(ClusterKey.load(config: config(keyFile: path), environment: [:], warn: { XCTFail($0) }))
        XCTAssertEqual(key.bytes, Array(0 ..< 32))
        XCTAssertEqual("\(key)", "ClusterKey(32 bytes)", "printing a key never shows it")
    }

    /// `DPPO_CLUSTER_KEY` beats `DPPO_CLUSTER_KEY_FILE`, which beats `cluster.key_file`; both variables at once is an error.
    func testEnvironmentComesBeforeTheConfig() throws {
        let configured = try config(keyFile: try writeKeyFile("a", hexA))
        let fileB = try writeKeyFile("b", hexB + "\n")
        XCTAssertEqual(try ClusterKey.load(config: configured, environment: [:])?.bytes, Array(0 ..< 32))
        XCTAssertEqual(try ClusterKey.load(config: configured, environment: [ClusterKey.keyFileVariable: fileB])?.bytes, [UInt8](repeating: 0xB0, count: 32))
        XCTAssertEqual(try ClusterKey.load(config: configured, environment: [ClusterKey.keyVariable: hexB])?.bytes, [UInt8](repeating: 0xB0, count: 32))
        XCTAssertTrue(loadError(configured, [ClusterKey.keyVariable: hexB, ClusterKey.keyFileVariable: fileB]).contains("set only one"))
    }

    func testBadKeysAreClearErrorsThatDoNotShowTheKey() throws {
        let missing = directory.appendingPathComponent("absent").path
        XCTAssertTrue(loadError(try config(keyFile: missing), [:]).contains("cannot read the cluster key file \(missing)"))
        let short = try writeKeyFile("short", "00112233445566778899aabbccddee\n")
        XCTAssertTrue(loadError(try config(keyFile: short), [:]).contains("has 15 bytes, it needs at least 16"))
        let secret = "correct horse battery staple, not hex at all"
        let text = try writeKeyFile("text", secret)
        let error = loadError(try config(keyFile: text), [:])
        XCTAssertTrue(error.contains("is not hexadecimal"), error)
        XCTAssertFalse(error.contains("horse"), "the error must not show the key")
        XCTAssertTrue(loadError(try config(keyFile: nil), [ClusterKey.keyVariable: String(hexA.dropLast())]).contains("is not hexadecimal"))
    }

    func testWorldReadableKeyFileWarns() throws {
        var warnings: [String] = []
        let open = try writeKeyFile("open", hexA, mode: 0o644)
        XCTAssertNotNil(try ClusterKey.load(config: config(keyFile: open), environment: [:], warn: { warnings.append($0) }))
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings.first?.contains("readable by every user") == true && warnings.first?.contains("chmod 600") == true, "\(warnings)")
        XCTAssertFalse(warnings.joined().contains(hexA), "the warning must not show the key")
    }

    func testKeyIsNotPartOfTheCompatibilityHash() throws {
        let plain = try config(keyFile: nil)
        let keyed = try config(keyFile: try writeKeyFile("a", hexA))
        XCTAssertEqual(plain.compatibilityHash, keyed.compatibilityHash)
        XCTAssertFalse(keyed.resolvedYAML.contains(hexA), "only the path is recorded")
    }

    /// A learner and two actors with key A complete a run as if alone, while peers with key B or no key push segments
    /// and say hello: every forged message is dropped under its tag reason and neither rogue actor joins.
    func testPeersWithoutTheKeyCannotInjectDataOrJoin() throws {
        let port = 52_000 + Int(getpid() % 500) * 3
        let keyFileA = try writeKeyFile("a", hexA), keyFileB = try writeKeyFile("b", hexB)
        let config = try config(keyFile: keyFileA, port: port)
        let rogueConfig = try self.config(keyFile: keyFileB, port: port)
        let keylessConfig = try self.config(keyFile: nil, port: port)
        let start = try writeRandomPolicy(config: config, to: directory)
        let learner = try Learner(config: config, run: try RunDirectory(url: directory.appendingPathComponent("run")), basePolicy: start)
        XCTAssertTrue(learner.codec.isAuthenticating)

        // Segments that would be accepted if they were signed with key A: current version, right shapes, actor 0, step 0.
        let forged = Segment(policyVersion: 1, actorIndex: 0, stepOffset: 0, steps: 12, environments: 3,
                             observations: [Float](repeating: 9, count: 12 * 3 * 3), chains: [Float](repeating: 1, count: 12 * 3 * config.recordWidth),
                             rewards: [Float](repeating: 1000, count: 36), terminated: [UInt8](repeating: 0, count: 36),
                             truncated: [UInt8](repeating: 0, count: 36), firsts: [UInt8](repeating: 0, count: 36),
                             nextObservations: [Float](repeating: 9, count: 9), finalIndices: [], finalObservations: [],
                             episodeReturns: [1e6], episodeLengths: [1])
        let rogueCodec = WireCodec(key: try XCTUnwrap(ClusterKey.load(config: rogueConfig, environment: [:])).bytes)
        let signedWithB = try (1...4).map { try rogueCodec.encode(forged.message(sequence: UInt64($0), observationWidth: 3, chainWidth: config.recordWidth)) }
        let unsigned = try WireCodec().encode(forged.message(sequence: 5, observationWidth: 3, chainWidth: config.recordWidth))
        let signedWithA = try learner.codec.encode(forged.message(sequence: 1, observationWidth: 3, chainWidth: config.recordWidth))
        XCTAssertNoThrow(try Segment(message: learner.codec.decode(signedWithA), observationWidth: 3, chainWidth: config.recordWidth,
                                     environments: 3, maxSteps: 30), "with key A the forged segment would be used")

        let finished = DispatchGroup()
        let errors = ErrorCollector(), rogueErrors = ErrorCollector(), keylessErrors = ErrorCollector()
        finished.enter()
        Thread.detachNewThread {
            defer { finished.leave() }
            do {
                // The forged segments reach the learner before any real actor has joined.
                let push = try Socket(.push, sendTimeoutMilliseconds: 10_000)
                try push.connect(Endpoints(basePort: port).trajectories)
                for bytes in signedWithB + [unsigned] { guard try push.send(bytes) else { throw ConfigError("rogue push timed out") } }
                do { try Actor(config: rogueConfig, learnerHost: "127.0.0.1", requestedIndex: 0).run(giveUpSeconds: 3, log: { _ in }) }
                catch { rogueErrors.append(error) }
                do { try Actor(config: keylessConfig, learnerHost: "127.0.0.1", requestedIndex: 1).run(giveUpSeconds: 3, log: { _ in }) }
                catch { keylessErrors.append(error) }
                push.close()
            } catch { errors.append(error) }
            for index in 0..<2 {
                finished.enter()
                Thread.detachNewThread {
                    defer { finished.leave() }
                    do { try Actor(config: config, learnerHost: "127.0.0.1", requestedIndex: index).run(giveUpSeconds: 30, log: { _ in }) }
                    catch { errors.append(error) }
                }
            }
        }
        let summary = try learner.run(log: { _ in })
        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success, "actors must exit when the learner finishes")
        XCTAssertTrue(errors.errors.isEmpty, "\(errors.errors)")

        XCTAssertEqual(summary["env_steps"] as? Int, 3 * 2 * 3 * 30 * 2, "exactly the real actors' steps")
        XCTAssertEqual(summary["policy_version"] as? UInt64, 4)
        XCTAssertEqual(learner.dropped, ["bad_tag": 4, "missing_tag": 1], "every forged segment, and nothing else, is dropped")
        XCTAssertEqual((errors.errors + rogueErrors.errors + keylessErrors.errors).count, 2)
        // The learner refuses their hello, and they cannot even read the refusal (it is signed with key A): each such
        // reply is a lost one, hello is retried with backoff, and the actor gives up naming the reason.
        XCTAssertTrue("\(rogueErrors.errors)".contains("bad_tag"), "\(rogueErrors.errors)")
        XCTAssertTrue("\(keylessErrors.errors)".contains("unexpected_tag"), "\(keylessErrors.errors)")
        let rejections = summary["control_rejections"] as? [String: Int] ?? [:]
        XCTAssertGreaterThanOrEqual(rejections["bad_tag"] ?? 0, 1, "\(rejections)")
        XCTAssertGreaterThanOrEqual(rejections["missing_tag"] ?? 0, 1, "\(rejections)")
        XCTAssertEqual(Set(rejections.keys), ["bad_tag", "missing_tag"], "\(rejections)")
    }
}
