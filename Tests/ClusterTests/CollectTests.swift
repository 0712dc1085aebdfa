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
}
