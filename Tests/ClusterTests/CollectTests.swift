import XCTest
import Foundation
@testable import Cluster
import Tensors

/// `dppo collect` from a policy checkpoint: what the dataset records as the action of each step.
final class CollectTests: XCTestCase {
    /// A wide Gaussian samples past Pendulum's torque bound of 2 (std 1 in normalised units is 2 N·m); the dataset holds
    /// the torque the environment executed, clipped to [−2, 2], unless `rawActions` asks for the samples as drawn.
    func testCollectedActionsAreTheExecutedControls() throws {
        let directory = try makeTemporaryDirectory("collect")
        let config = try RunConfig.parse(yaml: """
            seed: 3
            env: {task: pendulum, n_envs: 4, horizon_steps: 1, act_steps: 1}
            model: {policy: gaussian, mlp_dims: [16, 16, 16], fixed_std: 1.0, std_min: 0.5, std_max: 1.0}
            """)
        let start = try writeRandomPolicy(config: config, to: directory)
        let executed = try collectPolicyEpisodes(config: config, checkpoint: start, episodes: 3, mode: .exploration)
        let raw = try collectPolicyEpisodes(config: config, checkpoint: start, episodes: 3, mode: .exploration, rawActions: true)
        XCTAssertEqual(executed.stepCount, 600)
        XCTAssertEqual(executed.rewards, raw.rewards, "the same episodes, only the record of the action differs")
        XCTAssertLessThanOrEqual(executed.actions.map(abs).max()!, 2)
        XCTAssertGreaterThan(raw.actions.map(abs).max()!, 2.5, "a std of 2 N·m samples past the bound")
        XCTAssertEqual(executed.actions, raw.actions.map { min(max($0, -2), 2) })
        XCTAssertEqual(executed.metadata["actions"], "executed, clipped to the action bounds")
    }

    /// Tabletop demonstrations record each episode's grasp mode and success; `pretrain.demo_modes` fixes the mode.
    func testTabletopDemonstrationsRecordTheirModes() throws {
        let config = try RunConfig.parse(yaml: "seed: 4\nenv: {task: lift}\n")
        let mixed = try collectDemonstrations(config: config, episodes: 20, gain: 1, seed: 9)
        let modes = try XCTUnwrap(mixed.metadata["modes"]).split(separator: ",").map(String.init)
        XCTAssertEqual(modes.count, 20)
        XCTAssertEqual(Set(modes), ["grasp_y", "grasp_x"], "both modes in 20 mixed episodes")
        let successes = try XCTUnwrap(mixed.metadata["successes"]).split(separator: ",")
        XCTAssertEqual(successes.count, 20)
        XCTAssertEqual(mixed.trajectoryLengths.count, 20)
        // A successful episode ends on its one rewarded step, which is terminal.
        XCTAssertEqual(Double(mixed.rewards!.reduce(0, +)), Double(successes.filter { $0 == "1" }.count))
        XCTAssertEqual(mixed.terminals!.filter { $0 }.count, successes.filter { $0 == "1" }.count)
        XCTAssertGreaterThanOrEqual(successes.filter { $0 == "1" }.count, 18)
        var fixed = config
        fixed.pretrain.demonstrationModes = "grasp_x"
        let single = try collectDemonstrations(config: fixed, episodes: 5, gain: 1, seed: 9)
        XCTAssertEqual(single.metadata["modes"], "grasp_x,grasp_x,grasp_x,grasp_x,grasp_x")
    }
}
