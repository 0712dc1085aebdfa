import XCTest
import Foundation
@testable import Environments
import Tensors

final class EnvironmentTests: XCTestCase {
    /// One step of Pendulum-v1 computed by hand from its equations.
    func testPendulumStepMatchesTheEquations() {
        let pendulum = Pendulum()
        var observation = [Float](repeating: 0, count: 3)
        pendulum.setState(angle: 0.5, angularVelocity: -1, observation: &observation)
        var action: [Float] = [3] // clipped to 2
        let outcome = pendulum.step(action: &action, observation: &observation)
        let cost = 0.25 + 0.1 * 1 + 0.001 * 4.0
        XCTAssertEqual(Double(outcome.reward), -cost, accuracy: 1e-6)
        let velocity = -1 + (15 * sin(0.5) + 3 * 2) * 0.05
        XCTAssertEqual(Double(pendulum.angularVelocity), velocity, accuracy: 1e-5)
        XCTAssertEqual(Double(pendulum.angle), 0.5 + velocity * 0.05, accuracy: 1e-5)
        XCTAssertEqual(Double(observation[0]), cos(0.5 + velocity * 0.05), accuracy: 1e-5)
        XCTAssertFalse(outcome.terminated)
        XCTAssertEqual(Pendulum.normalizeAngle(3 * .pi / 2), -.pi / 2, accuracy: 1e-5)
    }

    /// The full-strength scripted controller swings up and balances; the weak one (the default demonstrator) is much worse.
    func testScriptedControllerQuality() {
        func averageReturn(gain: Float) -> Double {
            let pendulum = Pendulum()
            var random = Philox(seed: 4)
            var observation = [Float](repeating: 0, count: 3)
            var total = 0.0
            for _ in 0..<20 {
                pendulum.reset(random: &random, observation: &observation)
                for _ in 0..<200 {
                    var action = [Pendulum.scriptedTorque(observation: observation, gain: gain)]
                    total += Double(pendulum.step(action: &action, observation: &observation).reward)
                }
            }
            return total / 20
        }
        let strong = averageReturn(gain: 1), weak = averageReturn(gain: 0.35)
        XCTAssertGreaterThan(strong, -300)
        XCTAssertLessThan(weak, strong - 100)
    }

    /// Chunks: Ta actions per decision, rewards summed, truncation at 200 env steps with an in-step reset,
    /// the final observation kept, normalisation to [−1, 1].
    func testVectorEnvironmentChunksAndTruncation() throws {
        let environments = try VectorEnvironment(task: .pendulum, count: 3, seed: 7, actSteps: 4, horizonSteps: 4)
        try environments.resetAll()
        for index in 0..<3 { XCTAssertLessThanOrEqual(abs(environments.observations[index, 2]), 1) }
        let chunks = Matrix(rows: 3, columns: 4)
        var finished = 0, decisions = 0
        while finished == 0 {
            let before = (environments.environments[0] as! Pendulum).angle
            try environments.step(chunks: chunks)
            decisions += 1
            XCTAssertLessThan(environments.rewards[0], 0)
            XCTAssertFalse(environments.terminated[0])
            if environments.truncated[0] {
                XCTAssertNotEqual((environments.environments[0] as! Pendulum).angle, before)
            }
            finished += environments.finishedEpisodes.count
        }
        XCTAssertEqual(decisions, 50, "200 env steps at Ta = 4")
        XCTAssertEqual(environments.finishedEpisodes.count, 3)
        XCTAssertTrue(environments.truncated.allSatisfy { $0 })
        XCTAssertEqual(environments.finishedEpisodes[0].length, 200)
        // The episode's final observation differs from the new episode's first.
        XCTAssertNotEqual(environments.finalObservations.toArray(), environments.observations.toArray())
    }

    func testSeedingIsReproducible() throws {
        let a = try VectorEnvironment(task: .pendulum, count: 2, seed: 11, actSteps: 1, horizonSteps: 1)
        let b = try VectorEnvironment(task: .pendulum, count: 2, seed: 11, actSteps: 1, horizonSteps: 1)
        try a.resetAll(); try b.resetAll()
        XCTAssertEqual(a.observations.toArray(), b.observations.toArray())
        XCTAssertNotEqual(Array(a.observations.toArray()[0..<3]), Array(a.observations.toArray()[3..<6]))
    }
}
