import XCTest
import Foundation
@testable import Cluster
import Networks
import Tensors

/// `dppo offline` end to end on a tiny Pendulum dataset: Monte Carlo critic pre-training, training, evaluation, the
/// run directory's files, and a checkpoint that `dppo eval` reads.
final class OfflineJobTests: XCTestCase {
    func testOfflineRunPretrainsTheCriticsThenTrainsAndWritesItsRun() throws {
        let directory = try makeTemporaryDirectory("offline-job")
        let data = directory.appendingPathComponent("demos.safetensors")
        let yaml = """
            seed: 5
            env: {task: pendulum, n_envs: 2, horizon_steps: 2, act_steps: 2}
            model: {denoising_steps: 4, ft_denoising_steps: 2, mlp_dims: [16, 16, 16], time_dim: 8}
            pretrain: {dataset: \(data.path)}
            offline: {method: edp, variant: iql, n_steps: 6, batch_size: 8, critic_pretrain_steps: 4, log_freq: 2, eval_freq: 3,
                      eval_episodes: 2, candidates: 2, iql_reward_normalization: true}
            threads: 1
            """
        let config = try RunConfig.parse(yaml: yaml)
        try collectDemonstrations(config: config, episodes: 2, gain: 1, seed: 1).save(to: data)
        let run = try RunDirectory(url: directory.appendingPathComponent("run"))
        var lines: [String] = []
        let summary = try runOffline(config: config, run: run, log: { lines.append($0) })

        XCTAssertEqual(summary["steps"] as? Int, 6)
        XCTAssertEqual(lines.filter { $0.contains("critic pre-training") }.count, 2, "progress at steps 2 and 4 of the pre-training")
        let records = try String(contentsOf: run.metrics, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let pretraining = records.compactMap { $0["critic_pretrain_step"] as? Int }
        XCTAssertEqual(pretraining, [2, 4])
        XCTAssertTrue(records.filter { $0["critic_pretrain_step"] != nil }.allSatisfy { ($0["pretrain/value_loss"] as? Double ?? 0) > 0 },
                      "EDP-IQL pre-trains V as well")
        XCTAssertEqual(records.compactMap { $0["eval/return"] != nil ? $0["step"] as? Int : nil }, [0, 3, 6])
        let checkpoint = run.checkpoints.appendingPathComponent("final.safetensors")
        let evaluation = try evaluateCheckpoint(config: config, checkpoint: checkpoint, episodes: 2)
        XCTAssertTrue(evaluation.meanReturn.isFinite)
        // As the method evaluates it: candidates scored by the critics saved next to the checkpoint.
        let critics = run.checkpoints.appendingPathComponent("final-critics.safetensors")
        let selected = try evaluateCheckpointWithCritics(config: config, checkpoint: checkpoint, critics: critics, candidates: 3, episodes: 2)
        XCTAssertEqual(selected.episodes, 2)
        XCTAssertTrue(selected.meanReturn.isFinite)
        XCTAssertThrowsError(try evaluateCheckpointWithCritics(config: config, checkpoint: checkpoint, critics: checkpoint, candidates: 3, episodes: 2),
                             "a policy checkpoint is not a critics file")

        XCTAssertThrowsError(try RunConfig.parse(yaml: yaml.replacingOccurrences(of: "critic_pretrain_steps: 4", with: "critic_pretrain_steps: -1")))

        // DPPO fine-tuning starts from it: the learner takes the offline checkpoint as its base policy.
        let learner = try Learner(config: config, run: try RunDirectory(url: directory.appendingPathComponent("finetune")), basePolicy: checkpoint)
        let stored = PolicyModel(config: config)
        _ = try Checkpoint.load(stored, from: checkpoint)
        XCTAssertEqual(learner.model.baseParameters.namedTensors(prefix: "").map(\.values), stored.baseParameters.namedTensors(prefix: "").map(\.values))
        XCTAssertNotNil(learner.normalization)

        // A second run starts its actor and critics from the first run's files: no Monte Carlo pre-training, and with
        // critic_lr 0 its online critics stay exactly the loaded ones.
        let continued = yaml.replacingOccurrences(of: "n_steps: 6", with: "n_steps: 2, critic_lr: 0, init_checkpoint: \(checkpoint.path), init_critics: \(critics.path)")
        let second = try RunDirectory(url: directory.appendingPathComponent("second"))
        var secondLines: [String] = []
        try runOffline(config: try RunConfig.parse(yaml: continued), run: second, log: { secondLines.append($0) })
        XCTAssertTrue(secondLines.contains { $0.contains("critics start from") && $0.contains("EDP-IQL") })
        XCTAssertFalse(secondLines.contains { $0.contains("critic pre-training") })
        let (loaded, _) = try Safetensors.read(from: critics)
        let (kept, _) = try Safetensors.read(from: second.checkpoints.appendingPathComponent("final-critics.safetensors"))
        let online = loaded.keys.filter { $0.hasPrefix("critic.") }
        XCTAssertFalse(online.isEmpty)
        for name in online { XCTAssertTrue(kept[name] != nil && kept[name]?.values == loaded[name]?.values, "\(name) changed") }
        XCTAssertThrowsError(try runOffline(config: try RunConfig.parse(yaml: continued.replacingOccurrences(of: critics.path, with: checkpoint.path)),
                                            run: try RunDirectory(url: directory.appendingPathComponent("third")), log: { _ in }),
                             "a policy checkpoint is not a critics file")
        let perStep = continued.replacingOccurrences(of: "horizon_steps: 2, act_steps: 2", with: "horizon_steps: 1, act_steps: 1")
            .replacingOccurrences(of: "init_checkpoint: \(checkpoint.path), ", with: "")
        XCTAssertThrowsError(try runOffline(config: try RunConfig.parse(yaml: perStep), run: try RunDirectory(url: directory.appendingPathComponent("fourth")),
                                            log: { _ in }), "critics of 2-step chunks do not fit a per-step run") { error in
            XCTAssertTrue("\(error)".contains("does not fit"), "\(error)")
        }
    }

    /// `dppo offline --resume`: a run stopped after its evaluation at step 3 and resumed to step 6 ends with the weights,
    /// critics and evaluations of the run that went through uninterrupted, for both methods, across the end of a
    /// frozen-actor warm-up.
    func testAResumedOfflineRunContinuesBitForBit() throws {
        let directory = try makeTemporaryDirectory("offline-resume")
        let data = directory.appendingPathComponent("demos.safetensors")
        for method in ["method: diffusion_ql", "method: edp, variant: iql"] {
            let yaml = """
                seed: 7
                env: {task: pendulum, n_envs: 2, horizon_steps: 2, act_steps: 2}
                model: {denoising_steps: 4, ft_denoising_steps: 2, mlp_dims: [16, 16, 16], time_dim: 8}
                pretrain: {dataset: \(data.path)}
                offline: {\(method), n_steps: 6, batch_size: 8, critic_pretrain_steps: 2, critic_warmup_steps: 2, warmup_actor: frozen,
                          log_freq: 1, eval_freq: 3, eval_episodes: 1, candidates: 2}
                threads: 1
                """
            let config = try RunConfig.parse(yaml: yaml)
            if !FileManager.default.fileExists(atPath: data.path) {
                try collectDemonstrations(config: config, episodes: 2, gain: 1, seed: 1).save(to: data)
            }
            let whole = try RunDirectory(url: directory.appendingPathComponent("whole-\(method.count)"))
            try runOffline(config: config, run: whole, log: { _ in })
            let stopped = try RunDirectory(url: directory.appendingPathComponent("stopped-\(method.count)"))
            try runOffline(config: try RunConfig.parse(yaml: yaml, overrides: ["offline.n_steps=3"]), run: stopped, log: { _ in })
            var lines: [String] = []
            try runOffline(config: config, run: stopped, resume: true, log: { lines.append($0) })
            XCTAssertTrue(lines.contains { $0.contains("resuming") && $0.contains("at step 3 of 6") }, "\(lines)")
            XCTAssertFalse(lines.contains { $0.contains("critic pre-training") }, "a resumed run does not pre-train again")

            for file in ["final.safetensors", "final-critics.safetensors", OfflineResumeState.fileName] {
                let (expected, _) = try Safetensors.read(from: whole.checkpoints.appendingPathComponent(file))
                let (resumed, _) = try Safetensors.read(from: stopped.checkpoints.appendingPathComponent(file))
                XCTAssertEqual(Set(resumed.keys), Set(expected.keys), file)
                let differing = expected.keys.filter { resumed[$0]?.values != expected[$0]?.values }
                XCTAssertTrue(differing.isEmpty, "\(method) \(file): \(differing.sorted().prefix(4)) differ")
            }
            func records(_ run: RunDirectory) throws -> [String] {
                try String(contentsOf: run.metrics, encoding: .utf8).split(separator: "\n").map { line in
                    var record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                    record["perf/steps_per_second"] = nil
                    return String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self)
                }
            }
            XCTAssertEqual(try records(stopped), try records(whole), "\(method): the metrics read as one run's")
            let resolved = try String(contentsOf: stopped.config, encoding: .utf8)
            XCTAssertThrowsError(try runOffline(config: try RunConfig.parse(yaml: yaml, overrides: ["offline.batch_size=9"]), run: stopped, resume: true,
                                                log: { _ in })) { error in
                XCTAssertTrue("\(error)".contains("already finished 6"), "\(error)")
            }
            XCTAssertEqual(try String(contentsOf: stopped.config, encoding: .utf8), resolved, "a refused resume leaves config.yaml as it was")
        }
        XCTAssertThrowsError(try runOffline(config: try RunConfig.parse(yaml: "env: {task: pendulum}\npretrain: {dataset: \(data.path)}"),
                                            run: try RunDirectory(url: directory.appendingPathComponent("empty")), resume: true, log: { _ in })) { error in
            XCTAssertTrue("\(error)".contains("no resume-state.safetensors"), "\(error)")
        }
    }
}
