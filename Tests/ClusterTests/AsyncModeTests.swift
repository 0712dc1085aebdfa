import XCTest
import Foundation
@testable import Algorithms
@testable import Cluster
import Tensors

/// `cluster.sync: async`: behaviour log-probabilities from older versions' weights, and a whole run in process.
final class AsyncModeTests: XCTestCase {
    func asyncConfig(port: Int, model: String = "denoising_steps: 4, ft_denoising_steps: 2", lag: Int = 1) throws -> RunConfig {
        try RunConfig.parse(yaml: """
        name: test
        env: {task: pendulum, n_envs: 3, act_steps: 2, horizon_steps: 2}
        model: {\(model), time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: 3, n_steps: 30, batch_size: 60, update_epochs: 2, val_freq: 2, eval_episodes: 4, save_model_freq: 2}
        cluster: {actors: 2, base_port: \(port), segment_steps: 12, batch_timeout_s: 60, sync: async, max_policy_lag: \(lag)}
        """)
    }

    func testConfigAcceptsStrictAndAsync() throws {
        XCTAssertTrue(try asyncConfig(port: 5555).cluster.isAsync)
        XCTAssertEqual(try asyncConfig(port: 5555, lag: 0).cluster.maxPolicyLag, 0)
        XCTAssertThrowsError(try asyncConfig(port: 5555, lag: -1))
        XCTAssertThrowsError(try RunConfig.parse(yaml: "cluster: {sync: eventually}"))
        let strict = try RunConfig.parse(yaml: "cluster: {actors: 2}")
        XCTAssertFalse(strict.cluster.isAsync)
        XCTAssertNotEqual(strict.compatibilityHash, try RunConfig.parse(yaml: "cluster: {actors: 2, sync: async}").compatibilityHash)
    }

    /// With lag 1, the old log-probabilities of rows sampled by version 1 are version 1's, not the current version 2's;
    /// the current version's rows use the current weights, which are left in place.
    func testLaggedRowsUseTheirVersionsWeights() throws {
        for model in ["denoising_steps: 4, ft_denoising_steps: 2", "policy: gaussian"] {
            let config = try asyncConfig(port: 5555, model: model)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-test-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let start = try writeRandomPolicy(config: config, to: directory)
            let learner = try Learner(config: config, run: try RunDirectory(url: directory.appendingPathComponent("run")), basePolicy: start)
            let parameters = learner.model.trainableParameters
            try learner.weights.advance(to: 1, chainTransport: .full)
            let version1 = Array(parameters.valueBuffer)
            for index in 0..<parameters.count { parameters.values[index] += 0.05 * Float(sin(Double(index))) }
            try learner.weights.advance(to: 2, chainTransport: .full)
            let version2 = Array(parameters.valueBuffer)

            let batch = RolloutBatch(streams: config.streams, steps: config.train.stepsPerIteration,
                                     observationWidth: config.networkShape.observationDim, recordWidth: config.recordWidth)
            var rowVersions = [UInt64](repeating: 2, count: batch.count)
            for index in 0..<(batch.observations.rows * batch.observations.columns) { batch.observations.data[index] = Float(sin(Double(index) * 0.37)) }
            for index in 0..<(batch.records.rows * batch.records.columns) { batch.records.data[index] = Float(cos(Double(index) * 0.53)) * 0.8 }
            let perActor = config.environment.environmentsPerActor
            for stream in 0..<batch.streams {
                for step in 0..<batch.steps {
                    // Actor 0's first 12 steps are version 1's (a lagged segment), everything else version 2's.
                    rowVersions[batch.row(stream: stream, step: step)] = stream < perActor && step < 12 ? 1 : 2
                }
            }
            let update = learner.update
            let terms = update.actor.termsPerDecision
            let behaviour = learner.weights.behaviourPolicies(rowVersions: rowVersions)
            XCTAssertEqual(behaviour?.snapshots.count, 1)
            XCTAssertNil(learner.weights.behaviourPolicies(rowVersions: [UInt64](repeating: 2, count: batch.count)),
                         "a batch of the current version only needs no snapshots")
            _ = update.prepare(batch: batch, behaviour: behaviour)
            let mixed = update.oldLogProbabilities
            XCTAssertEqual(Array(parameters.valueBuffer), version2, "the current weights are restored")
            parameters.values.update(from: version1, count: parameters.count)
            _ = update.prepare(batch: batch)
            let under1 = update.oldLogProbabilities
            parameters.values.update(from: version2, count: parameters.count)
            _ = update.prepare(batch: batch)
            let under2 = update.oldLogProbabilities

            var lagged = 0, differing = 0
            for row in 0..<batch.count {
                for term in 0..<terms {
                    let pair = row * terms + term
                    if rowVersions[row] == 1 {
                        lagged += 1
                        XCTAssertEqual(mixed[pair], under1[pair], accuracy: 1e-5, "\(model) row \(row)")
                        if abs(under1[pair] - under2[pair]) > 1e-4 { differing += 1 }
                    } else {
                        XCTAssertEqual(mixed[pair], under2[pair], accuracy: 1e-5, "\(model) row \(row)")
                    }
                }
            }
            XCTAssertEqual(lagged, perActor * 12 * terms)
            // (Some of the Gaussian's terms sit at the log-likelihood clamp under both versions.)
            XCTAssertGreaterThan(differing, lagged / 8, "\(model): version 1's log-probabilities differ from version 2's")
        }
    }

    /// A learner and two actors in async mode with lag 1: the run completes with n_steps per actor environment per
    /// iteration, and some segments were sampled by the previous version (actors keep rolling out during updates).
    func testAsyncRunCompletesWithLaggedSegments() throws {
        let config = try asyncConfig(port: 30_000 + Int(getpid() % 300) * 3)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = try writeRandomPolicy(config: config, to: directory)
        let (run, summary, lines) = try runInProcessCluster(config: config, start: start, in: directory)
        XCTAssertEqual(summary["env_steps"] as? Int, 3 * 2 * 3 * 30 * 2)
        XCTAssertEqual(summary["policy_version"] as? UInt64, 4)
        let records = try String(contentsOf: run.metrics, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        XCTAssertEqual(records.count, 4)
        let lagOne = records.compactMap { $0["transport/policy_lag/1"] as? Int }.reduce(0, +)
        XCTAssertGreaterThan(lagOne, 0, lines.joined(separator: "\n"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.checkpoints.appendingPathComponent("final.safetensors").path))
    }
}
