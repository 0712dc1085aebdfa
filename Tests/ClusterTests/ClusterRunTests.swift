import XCTest
import Foundation
@testable import Cluster
import Diffusion
import Tensors
import Transport

/// A real learner and two actors in this process, over nanomsg on loopback TCP.
final class ClusterRunTests: XCTestCase {
    func tinyConfig(port: Int, batchTimeout: Int = 60, model: String = "denoising_steps: 4, ft_denoising_steps: 2",
                    task: String = "pendulum") throws -> RunConfig {
        try RunConfig.parse(yaml: """
        name: test
        env: {task: \(task), n_envs: 3, act_steps: 2, horizon_steps: 2}
        model: {\(model), time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: 3, n_steps: 30, batch_size: 60, update_epochs: 2, val_freq: 2, eval_episodes: 4, save_model_freq: 2}
        cluster: {actors: 2, base_port: \(port), segment_steps: 12, batch_timeout_s: \(batchTimeout)}
        """)
    }

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func testLearnerAndActorsCompleteARun() throws {
        try checkCompleteRun(config: try tinyConfig(port: 42_000 + Int(getpid() % 500) * 3))
    }

    /// The Gaussian baseline goes through the same learner, actors, wire format and checkpoints.
    func testGaussianBaselineCompletesARun() throws {
        try checkCompleteRun(config: try tinyConfig(port: 44_600 + Int(getpid() % 500) * 3, model: "policy: gaussian"))
    }

    /// DDIM sampling (K 20, S 4, all 4 fine-tuned) end to end.
    func testDDIMCompletesARun() throws {
        try checkCompleteRun(config: try tinyConfig(port: 46_200 + Int(getpid() % 500) * 3,
                                                    model: "denoising_steps: 20, use_ddim: true, ddim_steps: 4, ft_denoising_steps: 4"))
    }

    /// MuJoCo Hopper from scratch: `pretrain.n_epochs: 0` without a dataset writes initialised weights, which the
    /// Gaussian PPO learner and its actors then train (the expert stage of the Hopper pipeline, in miniature).
    func testHopperFromScratchCompletesARun() throws {
        var config = try tinyConfig(port: 47_800 + Int(getpid() % 500) * 3, model: "policy: gaussian, fixed_std: 0.5, std_max: 1", task: "hopper")
        config.pretrain.settings.epochs = 0
        try checkCompleteRun(config: config, start: { directory in
            try runPretraining(config: config, output: directory, log: { _ in })
        })
    }

    /// The tabletop Lift task end to end: behaviour cloning on a few scripted (multimodal) demonstrations, then
    /// fine-tuning through the learner and two actors; the success rate is in the metrics and the summary, and
    /// `dppo eval`'s path on the final checkpoint gives the run's own final success rate.
    func testLiftFromDemonstrationsCompletesARun() throws {
        var config = try tinyConfig(port: 49_400 + Int(getpid() % 500) * 3, task: "lift")
        config.pretrain.demonstrationEpisodes = 6
        config.pretrain.settings.epochs = 3
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = try runPretraining(config: config, output: directory, log: { _ in })
        let (run, summary, _) = try runInProcessCluster(config: config, start: start, in: directory)
        XCTAssertEqual(summary["env_steps"] as? Int, 3 * 2 * 3 * 30 * 2)
        let rate = try XCTUnwrap(summary["final_eval_success_rate"] as? Double)
        XCTAssertTrue((0...1).contains(rate))
        XCTAssertNotNil(summary["initial_eval_success_rate"] as? Double)
        let records = try String(contentsOf: run.metrics, encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(records.filter { $0["eval/success_rate"] != nil }.count, 3, "initial, iteration 2 and the last")
        let evaluation = try evaluateCheckpoint(config: config, checkpoint: run.checkpoints.appendingPathComponent("final.safetensors"), episodes: 4)
        XCTAssertEqual(evaluation.successRate, rate)
        XCTAssertEqual(evaluation.meanReturn, rate, accuracy: 1e-9, "a sparse reward of 1 on success: the mean return is the success rate")
    }

    func checkCompleteRun(config: RunConfig, start makeStart: ((URL) throws -> URL)? = nil) throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = try makeStart?(directory) ?? writeRandomPolicy(config: config, to: directory)
        let (run, summary, lines) = try runInProcessCluster(config: config, start: start, in: directory)

        XCTAssertEqual(summary["env_steps"] as? Int, 3 * 2 * 3 * 30 * 2)
        XCTAssertEqual(summary["policy_version"] as? UInt64, 4)
        XCTAssertNotNil(summary["initial_eval_return"] as? Double)
        let metrics = try String(contentsOf: run.metrics, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(metrics.count, 4, "initial evaluation + one line per iteration")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.checkpoints.appendingPathComponent("final.safetensors").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.checkpoints.appendingPathComponent("itr-2.safetensors").path))
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: run.summary)) as! [String: Any]
        for key in ["initial_eval_return", "final_eval_return", "env_steps", "wall_seconds"] { XCTAssertNotNil(saved[key], key) }
        XCTAssertTrue(lines.contains { $0.hasPrefix("itr   3/3") }, lines.joined(separator: "\n"))
        // The final checkpoint evaluates with the same config.
        let evaluation = try evaluateCheckpoint(config: config, checkpoint: run.checkpoints.appendingPathComponent("final.safetensors"), episodes: 4)
        XCTAssertEqual(evaluation.meanReturn, saved["final_eval_return"] as! Double, accuracy: 1e-6)
    }

    /// Garbage, forged kinds, stale versions and malformed segments are counted and never used.
    func testLearnerDropsBadSegments() throws {
        let port = 43_600 + Int(getpid() % 500) * 3
        let config = try tinyConfig(port: port, batchTimeout: 4)
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let learner = try Learner(config: config, run: try RunDirectory(url: directory), basePolicy: try writeRandomPolicy(config: config, to: directory))
        let push = try Socket(.push)
        try push.connect(Endpoints(basePort: port).trajectories)
        let codec = WireCodec()
        let good = Segment(policyVersion: 1, actorIndex: 0, stepOffset: 0, steps: 1, environments: 3, observations: [Float](repeating: 0, count: 9),
                           chains: [Float](repeating: 0, count: 3 * config.denoising.chainWidth), rewards: [0, 0, 0], terminated: [0, 0, 0],
                           truncated: [0, 0, 0], firsts: [1, 1, 1], nextObservations: [Float](repeating: 0, count: 9), finalIndices: [],
                           finalObservations: [], episodeReturns: [], episodeLengths: [])
        var stale = good; stale.policyVersion = 7
        var poisoned = good; poisoned.rewards[1] = .nan
        var outOfRange = good; outOfRange.stepOffset = 30
        var wrongActor = good; wrongActor.actorIndex = 9
        let messages: [[UInt8]] = [
            [1, 2, 3],
            try codec.encode(stale.message(sequence: 1, observationWidth: 3, chainWidth: config.denoising.chainWidth)),
            try codec.encode(poisoned.message(sequence: 2, observationWidth: 3, chainWidth: config.denoising.chainWidth)),
            try codec.encode(outOfRange.message(sequence: 3, observationWidth: 3, chainWidth: config.denoising.chainWidth)),
            try codec.encode(wrongActor.message(sequence: 4, observationWidth: 3, chainWidth: config.denoising.chainWidth)),
            try codec.encode(WireMessage(kind: .hello, policyVersion: 1, actorIndex: 0, sequence: 5, tensors: [])),
        ]
        // Bind first (the learner binds inside run); send from a thread once it listens.
        let sender = Thread {
            usleep(1_500_000)
            for bytes in messages { _ = try? push.send(bytes) }
        }
        sender.start()
        XCTAssertThrowsError(try learner.run(log: { _ in })) { error in // no real actor: the batch times out
            XCTAssertTrue("\(error)".contains("have not delivered"), "\(error)")
        }
        XCTAssertEqual(learner.dropped["stale_version"], 1)
        XCTAssertEqual(learner.dropped["non_finite"], 1)
        XCTAssertEqual(learner.dropped["bad_shape"], 1)
        XCTAssertEqual(learner.dropped["bad_actor_index"], 1)
        XCTAssertEqual(learner.dropped["unexpected_kind"], 1)
        XCTAssertEqual(learner.dropped.values.reduce(0, +), 6, "\(learner.dropped)")
    }
}
