import XCTest
@testable import Environments
import Tensors

/// The tabletop tasks' rules: reset ranges, success detection, contacts, determinism; and the scripted
/// demonstrator's two modes, whose average fails.
final class TabletopTests: XCTestCase {
    struct Episode {
        var success = false
        var steps = 0
        var totalReward: Float = 0
        var rewardSteps = 0
        var deepestPenetration = 0.0
        var lowestCube = Double.infinity
        var observationsInBounds = true
    }

    /// Runs one episode of `demonstrator` (zero actions when nil).
    static func run(_ environment: TabletopEnvironment, demonstrator: TabletopDemonstrator?, random: inout Philox) -> Episode {
        var observation = [Float](repeating: 0, count: environment.observationDim)
        var action = [Float](repeating: 0, count: environment.actionDim)
        observation.withUnsafeMutableBufferPointer { environment.reset(random: &random, observation: $0.baseAddress!) }
        var demonstrator = demonstrator
        var episode = Episode()
        let low = environment.observationLow, high = environment.observationHigh
        for step in 1...environment.maxEpisodeSteps {
            if demonstrator != nil {
                observation.withUnsafeBufferPointer { o in action.withUnsafeMutableBufferPointer {
                    demonstrator!.act(observation: o.baseAddress!, random: &random, action: $0.baseAddress!)
                } }
            }
            let outcome = observation.withUnsafeMutableBufferPointer { o in action.withUnsafeBufferPointer {
                environment.step(action: $0.baseAddress!, observation: o.baseAddress!)
            } }
            episode.steps = step
            episode.totalReward += outcome.reward
            if outcome.reward != 0 { episode.rewardSteps += 1 }
            episode.deepestPenetration = max(episode.deepestPenetration, environment.contacts.deepest)
            episode.lowestCube = min(episode.lowestCube, environment.cubePosition.2 - environment.cubeHalfSize)
            for (index, value) in observation.enumerated() where !(value.isFinite && value >= low[index] && value <= high[index]) {
                if episode.observationsInBounds { print("observation \(index) = \(value) outside [\(low[index]), \(high[index])]") }
                episode.observationsInBounds = false
            }
            if outcome.terminated { episode.success = environment.succeeded; break }
        }
        return episode
    }

    func testResetsStayInsideTheStatedRanges() throws {
        for task in TabletopTask.allCases {
            let environment = try TabletopEnvironment(task: task)
            let rules = environment.rules
            var random = Philox(seed: 5)
            var observation = [Float](repeating: 0, count: environment.observationDim)
            var sizes: [Double] = []
            for _ in 0..<200 {
                observation.withUnsafeMutableBufferPointer { environment.reset(random: &random, observation: $0.baseAddress!) }
                let cube = environment.cubePosition, gripper = environment.gripperPosition, size = environment.cubeHalfSize
                sizes.append(size)
                XCTAssertTrue(rules.cubeHalfSize.contains(size))
                XCTAssertTrue(rules.cubeX.contains(cube.0) && rules.cubeY.contains(cube.1), "\(cube)")
                XCTAssertEqual(cube.2, size, accuracy: 1e-12, "the cube starts resting on the table")
                let yaw = 2 * atan2(Double(observation[15]), Double(observation[12]))
                XCTAssertTrue(rules.cubeYaw.contains(yaw) || abs(yaw - rules.cubeYaw.upperBound) < 1e-6, "yaw \(yaw)")
                XCTAssertTrue(rules.gripperX.contains(gripper.0) && rules.gripperY.contains(gripper.1) && rules.gripperZ.contains(gripper.2))
                XCTAssertTrue(rules.gripperYaw.contains(environment.gripperYaw))
                XCTAssertEqual(environment.fingerPositions.0, 0.028, accuracy: 1e-12, "fingers start open")
                XCTAssertFalse(environment.succeeded)
                // The observation's layout: grip point 2 cm above the gripper origin; cube minus grip point.
                XCTAssertEqual(Double(observation[2]), gripper.2 + 0.02, accuracy: 1e-6)
                XCTAssertEqual(Double(observation[16]), cube.0 - gripper.0, accuracy: 1e-6)
                XCTAssertEqual(Double(observation[18]), cube.2 - gripper.2 - 0.02, accuracy: 1e-6)
                if task == .place {
                    XCTAssertTrue(rules.targetX.contains(environment.target.x) && rules.targetY.contains(environment.target.y))
                    XCTAssertEqual(Double(observation[21]), cube.0 - environment.target.x, accuracy: 1e-6)
                }
            }
            XCTAssertGreaterThan(Set(sizes).count, 150, "the cube's size is drawn per episode")
            // The mass follows the size (a solid cube of density 500).
            let m = environment.model.pointer.pointee
            XCTAssertEqual(m.body_mass[environment.cubeBody], 500 * pow(2 * environment.cubeHalfSize, 3), accuracy: 1e-12)
        }
    }

    /// With no action the cube rests where it started, nothing penetrates by more than 2 mm, no reward is paid
    /// and the episode runs to its limit without success.
    func testAnIdleEpisodeEarnsNothing() throws {
        for task in TabletopTask.allCases {
            let environment = try TabletopEnvironment(task: task)
            var random = Philox(seed: 8)
            var observation = [Float](repeating: 0, count: environment.observationDim)
            observation.withUnsafeMutableBufferPointer { environment.reset(random: &random, observation: $0.baseAddress!) }
            let start = environment.cubePosition
            var again = Philox(seed: 8)
            let episode = Self.run(environment, demonstrator: nil, random: &again)
            XCTAssertEqual(episode.steps, environment.maxEpisodeSteps)
            XCTAssertEqual(episode.totalReward, 0)
            XCTAssertFalse(episode.success)
            XCTAssertLessThan(episode.deepestPenetration, 0.002)
            XCTAssertEqual(environment.cubePosition.0, start.0, accuracy: 1e-4)
            XCTAssertEqual(environment.cubePosition.2, start.2, accuracy: 2e-3)
            XCTAssertTrue(episode.observationsInBounds)
        }
    }

    /// Each mode of the demonstrator succeeds on at least 90 % of 30 episodes; success pays reward 1 exactly once
    /// and ends the episode; the cube never sinks into the table by more than 3 mm.
    func testDemonstratorSucceedsInBothModes() throws {
        for task in TabletopTask.allCases {
            let environment = try TabletopEnvironment(task: task)
            var random = Philox(seed: 11)
            for mode in TabletopDemonstrator.Mode.allCases {
                var successes = 0
                for _ in 0..<30 {
                    let episode = Self.run(environment, demonstrator: TabletopDemonstrator(task: task, mode: mode, noise: 0.1), random: &random)
                    XCTAssertEqual(episode.totalReward, episode.success ? 1 : 0)
                    XCTAssertLessThanOrEqual(episode.rewardSteps, 1)
                    XCTAssertGreaterThan(episode.lowestCube, -0.003)
                    XCTAssertLessThan(episode.deepestPenetration, 0.003)
                    XCTAssertTrue(episode.observationsInBounds, "\(task) \(mode)")
                    if episode.success {
                        successes += 1
                        XCTAssertTrue(environment.goalReached)
                        XCTAssertLessThan(episode.steps, environment.maxEpisodeSteps)
                    }
                }
                print("tabletop demonstrator: \(task) \(mode.rawValue) \(successes)/30")
                XCTAssertGreaterThanOrEqual(successes, 27, "\(task) \(mode): \(successes)/30")
            }
        }
    }

    /// The modes' average, a grasp an eighth of a turn off the cube's faces, closes on its edges and mostly fails:
    /// a policy that averages the two modes does not solve the task.
    func testTheAverageOfTheModesFails() throws {
        let environment = try TabletopEnvironment(task: .lift)
        var random = Philox(seed: 12)
        var successes = 0
        for _ in 0..<30 {
            let averaged = TabletopDemonstrator(task: .lift, rules: nil, mode: .alongY, noise: 0.1, yawOffset: Double.pi / 4)
            if Self.run(environment, demonstrator: averaged, random: &random).success { successes += 1 }
        }
        print("tabletop demonstrator: lift, grasp between the modes \(successes)/30")
        XCTAssertLessThanOrEqual(successes, 10, "\(successes)/30 succeeded with the averaged grasp")
    }

    func testSuccessDetection() throws {
        let lift = try TabletopEnvironment(task: .lift)
        var random = Philox(seed: 3)
        var observation = [Float](repeating: 0, count: lift.observationDim)
        observation.withUnsafeMutableBufferPointer { lift.reset(random: &random, observation: $0.baseAddress!) }
        XCTAssertFalse(lift.goalReached)
        let q = lift.data.qpos
        q[lift.cubeQ + 2] = lift.cubeHalfSize + 0.039
        XCTAssertFalse(lift.goalReached, "3.9 cm is not yet lifted")
        q[lift.cubeQ + 2] = lift.cubeHalfSize + 0.041
        XCTAssertTrue(lift.goalReached)

        let place = try TabletopEnvironment(task: .place)
        observation = [Float](repeating: 0, count: place.observationDim)
        observation.withUnsafeMutableBufferPointer { place.reset(random: &random, observation: $0.baseAddress!) }
        let p = place.data.qpos
        p[place.cubeQ] = place.target.x + 0.015; p[place.cubeQ + 1] = place.target.y
        XCTAssertTrue(place.goalReached, "resting within 2 cm, fingers open")
        p[place.fingerQ.0] = place.cubeHalfSize
        XCTAssertFalse(place.goalReached, "still held")
        p[place.fingerQ.0] = 0.045
        p[place.cubeQ] = place.target.x + 0.021
        XCTAssertFalse(place.goalReached, "2.1 cm off")
        p[place.cubeQ] = place.target.x
        p[place.cubeQ + 2] = place.cubeHalfSize + 0.01
        XCTAssertFalse(place.goalReached, "not resting")
    }

    /// A state MuJoCo has to reset itself (a bad number in qpos) ends the episode with reward 0, no success, even
    /// though the state it continues from is finite.
    func testADivergedSimulationEndsTheEpisode() throws {
        let lift = try TabletopEnvironment(task: .lift)
        var random = Philox(seed: 4)
        var observation = [Float](repeating: 0, count: lift.observationDim)
        observation.withUnsafeMutableBufferPointer { lift.reset(random: &random, observation: $0.baseAddress!) }
        lift.data.qvel[0] = .infinity
        let action = [Float](repeating: 0, count: lift.actionDim)
        let outcome = observation.withUnsafeMutableBufferPointer { o in action.withUnsafeBufferPointer { lift.step(action: $0.baseAddress!, observation: o.baseAddress!) } }
        XCTAssertEqual(outcome.reward, 0)
        XCTAssertTrue(outcome.terminated)
        XCTAssertFalse(lift.succeeded)
        XCTAssertTrue(observation.allSatisfy(\.isFinite), "MuJoCo reset the state itself")
        observation.withUnsafeMutableBufferPointer { lift.reset(random: &random, observation: $0.baseAddress!) }
        let next = observation.withUnsafeMutableBufferPointer { o in action.withUnsafeBufferPointer { lift.step(action: $0.baseAddress!, observation: o.baseAddress!) } }
        XCTAssertFalse(next.terminated, "a reset clears MuJoCo's warning counts")
    }

    /// Same seed, same actions: the same observations, bit for bit; instances do not share state.
    func testDeterministicUnderASeed() throws {
        func trace() throws -> [Float] {
            let environments = try (0..<2).map { _ in try TabletopEnvironment(task: .place) }
            var random = Philox(seed: 77)
            var result: [Float] = []
            for environment in environments {
                var demonstrator = TabletopDemonstrator(task: .place, mode: .alongX, noise: 0.2)
                var observation = [Float](repeating: 0, count: environment.observationDim)
                var action = [Float](repeating: 0, count: environment.actionDim)
                observation.withUnsafeMutableBufferPointer { environment.reset(random: &random, observation: $0.baseAddress!) }
                for _ in 0..<60 {
                    observation.withUnsafeBufferPointer { o in action.withUnsafeMutableBufferPointer {
                        demonstrator.act(observation: o.baseAddress!, random: &random, action: $0.baseAddress!)
                    } }
                    _ = observation.withUnsafeMutableBufferPointer { o in action.withUnsafeBufferPointer {
                        environment.step(action: $0.baseAddress!, observation: o.baseAddress!)
                    } }
                    result += observation
                }
            }
            return result
        }
        let first = try trace(), second = try trace()
        XCTAssertEqual(first.count, 2 * 60 * 23)
        XCTAssertEqual(first.map(\.bitPattern), second.map(\.bitPattern))
    }
}
