import XCTest
import Foundation
@testable import Cluster

/// `dppo sweep`: the grid, and a real two-run sweep that a second invocation skips and resumes.
final class SweepTests: XCTestCase {
    func testGridAxesAndRunNames() throws {
        XCTAssertEqual(try Sweep.axis("seed=1,2,3"), Sweep.Axis(key: "seed", values: ["1", "2", "3"]))
        XCTAssertEqual(try Sweep.axis("model.mlp_dims=[64,64,64], [128,128,128]").values, ["[64,64,64]", "[128,128,128]"])
        for bad in ["seed", "=1,2", "seed=1,,2", "seed=1,1"] { XCTAssertThrowsError(try Sweep.axis(bad), bad) }
        let sweep = try Sweep.plan(config: "c.yaml", grid: [try Sweep.axis("seed=1,2"), try Sweep.axis("train.actor_lr=1e-4,3e-4")],
                                   sets: [], directory: URL(fileURLWithPath: "/s"))
        XCTAssertEqual(sweep.runs.map(\.name), ["seed=1,actor_lr=1e-4", "seed=1,actor_lr=3e-4", "seed=2,actor_lr=1e-4", "seed=2,actor_lr=3e-4"])
        XCTAssertEqual(sweep.runs[1].overrides, ["seed=1", "train.actor_lr=3e-4"])
        XCTAssertEqual(sweep.runs[3].directory, "/s/seed=2,actor_lr=3e-4")
        let clash = try Sweep.plan(config: "c.yaml", grid: [try Sweep.axis("train.gamma=0.9"), try Sweep.axis("offline.gamma=0.8")], sets: [],
                                   directory: URL(fileURLWithPath: "/s"))
        XCTAssertEqual(clash.runs[0].name, "train.gamma=0.9,offline.gamma=0.8", "full keys when the last parts clash")
    }

    func testASweepRunsItsGridAndASecondRunSkipsAndResumes() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = try makeTemporaryDirectory("dppo-sweep").appendingPathComponent("sweep")
        let port = 18_000 + Int(getpid() % 300) * 3 // 18_000–18_910 (two slots): no other test binds there
        let arguments = ["sweep", "configs/pendulum/finetune.yaml", "--grid", "seed=1,2", "--parallel", "2", "--dir", directory.path,
                         "--set", "train.n_train_itr=2", "--set", "pretrain.n_epochs=1", "--set", "env.n_envs=3", "--set", "train.n_steps=20",
                         "--set", "train.val_freq=0", "--set", "train.eval_episodes=2", "--set", "train.save_model_freq=1",
                         "--set", "model.mlp_dims=[32, 32, 32]", "--set", "cluster.base_port=\(port)"]
        func sweep() throws -> (status: Int32, output: String) { try runToEnd(binary, arguments, in: repository) }
        let first = try sweep()
        XCTAssertEqual(first.status, 0, first.output)
        var manifest = try Sweep.read(from: directory)
        XCTAssertEqual(manifest.runs.map(\.state), ["finished", "finished"])
        let seeds = try manifest.runs.map { run -> UInt64 in try RunConfig.load(path: run.directory + "/config.yaml").seed }
        XCTAssertEqual(seeds, [1, 2], "each run its own grid value")
        let one = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifest.runs[0].directory + "/summary.json"))) as! [String: Any]
        let two = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifest.runs[1].directory + "/summary.json"))) as! [String: Any]
        XCTAssertNotEqual(one["final_eval_return"] as? Double, two["final_eval_return"] as? Double, "different seeds, different runs")

        // Make run 2 look preempted after its first iteration: its final checkpoint and summary gone, metrics cut.
        let second = URL(fileURLWithPath: manifest.runs[1].directory)
        for name in ["summary.json", "checkpoints/final.safetensors", "checkpoints/final.json"] {
            try FileManager.default.removeItem(at: second.appendingPathComponent(name))
        }
        _ = try MetricsWriter.discardRecords(after: 1, in: second.appendingPathComponent("metrics.jsonl"))
        let again = try sweep()
        XCTAssertEqual(again.status, 0, again.output)
        manifest = try Sweep.read(from: directory)
        XCTAssertEqual(manifest.runs.map(\.state), ["finished", "finished"])
        XCTAssertEqual(manifest.runs.map(\.attempts), [1, 2], "the finished run was skipped, the other resumed")
        let iterations = RunListing.metricsRecords(second.appendingPathComponent("metrics.jsonl")).compactMap { $0["iteration"] as? Int }
        XCTAssertEqual(iterations, [0, 1, 2], "resumed, every iteration once")
        let resumed = try JSONSerialization.jsonObject(with: Data(contentsOf: second.appendingPathComponent("summary.json"))) as! [String: Any]
        XCTAssertEqual(resumed["resumed_from_iteration"] as? Int, 1)
    }
}
