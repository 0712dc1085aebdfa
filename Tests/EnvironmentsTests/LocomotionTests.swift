import XCTest
@testable import Environments
import Tensors

/// The MuJoCo tasks without Python: sizes, seeding, reset noise, termination rules, truncation, the v4/v5 difference.
/// Step-by-step agreement with Gymnasium is `GymnasiumParityTests`.
final class LocomotionTests: XCTestCase {
    func testSizesAndBounds() throws {
        for (task, observation, action) in [(TaskName.hopper, 11, 3), (.walker2d, 17, 6), (.halfcheetah, 17, 6)] {
            let description = try TaskSpec(name: task).describe()
            XCTAssertEqual(description.observationDim, observation, "\(task)")
            XCTAssertEqual(description.actionDim, action, "\(task)")
            XCTAssertEqual(description.maxEpisodeSteps, 1000)
            XCTAssertEqual(description.actionLow, [Float](repeating: -1, count: action))
            XCTAssertEqual(description.actionHigh, [Float](repeating: 1, count: action))
            XCTAssertTrue(description.observationLow.allSatisfy { $0.isFinite && $0 < 0 })
        }
    }

    func testResetIsSeededAndNoisy() throws {
        for task in LocomotionTask.allCases {
            let a = try TaskSpec(name: TaskName(rawValue: task.rawValue)!).makeBatch(count: 2, seed: 3)
            let b = try TaskSpec(name: TaskName(rawValue: task.rawValue)!).makeBatch(count: 2, seed: 3)
            let dim = a.task.observationDim
            var first = [Float](repeating: 0, count: 2 * dim), second = first
            for i in 0..<2 {
                try a.reset(i, observation: &first[i * dim])
                try b.reset(i, observation: &second[i * dim])
            }
            XCTAssertEqual(first, second, "same seed, same initial states")
            XCTAssertNotEqual(Array(first[0..<dim]), Array(first[dim...]), "instances draw different noise")
            let environment = (a as! NativeEnvironmentBatch).environments[0] as! LocomotionEnvironment
            let qpos0 = environment.model.physicalSummary["qpos0"]!
            let scale = environment.rules.resetNoiseScale
            for (q, q0) in zip(environment.qpos, qpos0) { XCTAssertLessThanOrEqual(abs(q - q0), scale) }
            XCTAssertTrue(environment.qpos.enumerated().contains { abs($0.element - qpos0[$0.offset]) > scale / 100 }, "noise is applied")
        }
    }

    /// With no torque the hopper topples: its episode terminates, the healthy reward (1) is paid on every step before,
    /// and on the terminating step only under the v4 rule.
    func testHopperTerminatesAndV4PaysTheLastHealthyReward() throws {
        func fall(_ version: GymnasiumVersion) throws -> (steps: Int, lastReward: Float, rewards: [Float]) {
            let environment = try LocomotionEnvironment(task: .hopper, version: version)
            var random = Philox(seed: 1)
            var observation = [Float](repeating: 0, count: 11)
            let zero = [Float](repeating: 0, count: 3)
            environment.reset(random: &random, observation: &observation)
            var rewards: [Float] = []
            for step in 1...1000 {
                let outcome = environment.step(action: zero, observation: &observation)
                rewards.append(outcome.reward)
                if outcome.terminated { return (step, outcome.reward, rewards) }
            }
            return (1000, .nan, rewards)
        }
        let v4 = try fall(.v4), v5 = try fall(.v5)
        XCTAssertLessThan(v4.steps, 1000, "an unpowered hopper falls")
        XCTAssertEqual(v4.steps, v5.steps, "same model, same dynamics")
        XCTAssertEqual(v4.lastReward - v5.lastReward, 1, accuracy: 1e-6)
        for (a, b) in zip(v4.rewards.dropLast(), v5.rewards.dropLast()) { XCTAssertEqual(a, b) }
        XCTAssertGreaterThan(v4.rewards[0], 0.5, "healthy reward 1 while standing, small forward velocity")
    }

    /// HalfCheetah never terminates; `VectorEnvironment` truncates it at 1000 steps and resets within the step.
    func testHalfCheetahTruncatesAtOneThousandSteps() throws {
        let environments = VectorEnvironment(batch: try TaskSpec(name: .halfcheetah).makeBatch(count: 2, seed: 5), actSteps: 4, horizonSteps: 4)
        try environments.resetAll()
        let chunks = Matrix(rows: 2, columns: 4 * 6)
        var random = Philox(seed: 2)
        var decisions = 0
        repeat {
            random.fillUniform(chunks.data, count: chunks.count, low: -1, high: 1)
            try environments.step(chunks: chunks)
            decisions += 1
            XCTAssertFalse(environments.terminated.contains(true))
        } while environments.finishedEpisodes.isEmpty
        XCTAssertEqual(decisions, 250)
        XCTAssertEqual(environments.finishedEpisodes.map(\.length), [1000, 1000])
        XCTAssertTrue(environments.truncated.allSatisfy { $0 })
    }

    /// Walker2d's v4 and v5 models differ only in the right foot's friction.
    func testWalkerVersionsDifferInRightFootFriction() throws {
        let v4 = try LocomotionEnvironment.builtInModel(.walker2d, version: .v4).physicalSummary
        let v5 = try LocomotionEnvironment.builtInModel(.walker2d, version: .v5).physicalSummary
        let differing = v4.keys.filter { v4[$0] != v5[$0] }
        XCTAssertEqual(differing, ["geom_friction"])
        XCTAssertEqual(v4["geom_friction"]!.filter { $0 == 0.9 }.count - v5["geom_friction"]!.filter { $0 == 0.9 }.count, 1)
    }

    func testBadModelIsRefusedWithTheParserMessage() {
        XCTAssertThrowsError(try MuJoCoModel(xml: "<mujoco><worldbody><body><geom type='nonsense'/></body></worldbody></mujoco>")) { error in
            XCTAssertTrue("\(error)".contains("MuJoCo could not compile"), "\(error)")
        }
        XCTAssertThrowsError(try MuJoCoModel(path: "/nonexistent/hopper.xml")) { error in
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
    }
}
