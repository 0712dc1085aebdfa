import XCTest
import Foundation
@testable import Environments
import Tensors

/// The Gymnasium bridge against a real Python child (`pip install -r scripts/requirements-test.txt`).
final class GymnasiumBridgeTests: XCTestCase {
    static let pendulum = GymnasiumSettings(id: "Pendulum-v1")

    /// Whether `python3` can import gymnasium; tests that need a child skip when it cannot.
    static let gymnasiumAvailable: Bool = {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import gymnasium"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { return false }
        probe.waitUntilExit()
        return probe.terminationStatus == 0
    }()

    func requireGymnasium() throws {
        try XCTSkipUnless(Self.gymnasiumAvailable,
                          "python3 cannot import gymnasium; install it with `pip install -r scripts/requirements-test.txt`")
    }

    func testDescribePendulum() throws {
        try requireGymnasium()
        let task = try GymnasiumBatch.describe(Self.pendulum)
        XCTAssertEqual(task, TaskDescription(observationDim: 3, actionDim: 1, maxEpisodeSteps: 200,
                                             observationLow: [-1, -1, -8], observationHigh: [1, 1, 8],
                                             actionLow: [-2], actionHigh: [2]))
    }

    /// Unbounded dimensions (and ones whose width overflows float32) normalise as the identity.
    func testUnboundedDimensionsGetUnitBounds() {
        let bounds = GymnasiumBatch.normalizationBounds(low: [-.infinity, 0, -3, -.greatestFiniteMagnitude],
                                                        high: [.infinity, .infinity, 5, .greatestFiniteMagnitude])
        XCTAssertEqual(bounds.low, [-1, -1, -3, -1])
        XCTAssertEqual(bounds.high, [1, 1, 5, 1])
    }

    /// One step of Gymnasium's Pendulum-v1 matches our Swift Pendulum set to the same state, for random torques
    /// (some beyond the ±2 limit) and changing active masks; inactive rows are left untouched.
    /// Gymnasium keeps its state in float64 and returns float32 observations, we compute in float32 from the float32
    /// observation, so each step agrees to 1e-4 (absolute, observations; relative, rewards).
    func testOneStepDynamicsMatchSwiftPendulum() throws {
        try requireGymnasium()
        let count = 8, steps = 60
        let batch = try GymnasiumBatch(settings: Self.pendulum, count: count, seed: 3)
        defer { batch.close() }
        var observations = [Float](repeating: 0, count: count * 3)
        for index in 0..<count {
            try observations.withUnsafeMutableBufferPointer { try batch.reset(index, observation: $0.baseAddress! + index * 3) }
        }
        let reference = Pendulum()
        var random = Philox(seed: 9)
        var next = [Float](repeating: 0, count: count * 3), expected = [Float](repeating: 0, count: 3)
        var actions = [Float](repeating: 0, count: count), rewards = [Float](repeating: 0, count: count)
        var terminated = [Bool](repeating: false, count: count), active = [Bool](repeating: true, count: count)
        for step in 0..<steps {
            for index in 0..<count {
                actions[index] = (random.uniform() * 2 - 1) * 2.5
                active[index] = (index + step) % 3 != 0
            }
            for index in 0..<count * 3 { next[index] = .nan }
            try batch.step(actions: actions, active: active, observations: &next, rewards: &rewards, terminated: &terminated)
            for index in 0..<count {
                let row = index * 3
                guard active[index] else {
                    XCTAssertTrue(next[row].isNaN, "inactive instance \(index) was written")
                    continue
                }
                reference.setState(angle: atan2f(observations[row + 1], observations[row]), angularVelocity: observations[row + 2],
                                   observation: &expected)
                let outcome = reference.step(action: [actions[index]], observation: &expected)
                for d in 0..<3 { XCTAssertEqual(next[row + d], expected[d], accuracy: 1e-4, "step \(step) instance \(index) dim \(d)") }
                XCTAssertEqual(rewards[index], outcome.reward, accuracy: 1e-4 * max(1, abs(outcome.reward)), "step \(step) instance \(index)")
                XCTAssertFalse(terminated[index])
                for d in 0..<3 { observations[row + d] = next[row + d] }
            }
        }
    }

    /// Chunks of 3 actions over a 200-step limit: the 67th decision runs 2 steps, truncates every instance and resets it in-step.
    func testVectorEnvironmentTruncatesAtTheSpecLimit() throws {
        try requireGymnasium()
        let count = 4
        let environments = VectorEnvironment(batch: try GymnasiumBatch(settings: Self.pendulum, count: count, seed: 11),
                                             actSteps: 3, horizonSteps: 4)
        try environments.resetAll()
        let chunks = Matrix(rows: count, columns: 4)
        for decision in 1...67 {
            try environments.step(chunks: chunks)
            for index in 0..<count {
                XCTAssertFalse(environments.terminated[index])
                XCTAssertEqual(environments.truncated[index], decision == 67, "decision \(decision)")
                XCTAssertLessThan(environments.rewards[index], 0)
            }
        }
        XCTAssertEqual(environments.finishedEpisodes.map(\.length), [Int](repeating: 200, count: count))
        XCTAssertEqual(environments.finishedEpisodes.map(\.environmentIndex), Array(0..<count))
        for index in 0..<count {
            XCTAssertNotEqual(environments.finalObservations[index, 0], environments.observations[index, 0], "instance \(index) was not reset")
        }
        try environments.step(chunks: chunks)
        XCTAssertTrue(environments.finishedEpisodes.isEmpty)
        XCTAssertEqual((environments.batch as? GymnasiumBatch)?.earlyTruncations, 0)
    }

    /// Instance i is seeded with seed + i at its first reset; later resets continue its own random stream.
    func testSeedingIsReproducible() throws {
        try requireGymnasium()
        func firstTwoResets(seed: UInt64) throws -> [[Float]] {
            let batch = try GymnasiumBatch(settings: Self.pendulum, count: 3, seed: seed)
            defer { batch.close() }
            var observation = [Float](repeating: 0, count: 3)
            var episodes: [[Float]] = []
            for _ in 0..<2 {
                for index in 0..<3 {
                    try batch.reset(index, observation: &observation)
                    episodes.append(observation)
                }
            }
            return episodes
        }
        let first = try firstTwoResets(seed: 5), again = try firstTwoResets(seed: 5), shifted = try firstTwoResets(seed: 6)
        XCTAssertEqual(first, again)
        XCTAssertNotEqual(first[0], first[1])
        XCTAssertNotEqual(first[0], first[3], "a second reset repeated the first episode's start")
        XCTAssertEqual(first[1], shifted[0], "instance 1 of seed 5 is seeded like instance 0 of seed 6")
        XCTAssertEqual(first[4], shifted[3])
    }

    func testMissingPythonIsReported() {
        for python in ["/nonexistent/python3", "no-such-python-for-the-bridge"] {
            XCTAssertThrowsError(try GymnasiumBatch(settings: GymnasiumSettings(id: "Pendulum-v1", python: python), count: 1, seed: 0)) {
                XCTAssertTrue("\($0)".contains("'\(python)' was not found"), "\($0)")
            }
        }
    }

    func testInvalidKwargsAreReported() {
        for kwargs in ["{not json", "[1, 2]"] {
            XCTAssertThrowsError(try GymnasiumBatch(settings: GymnasiumSettings(id: "Pendulum-v1", kwargsJSON: kwargs), count: 1, seed: 0)) {
                XCTAssertTrue("\($0)".contains("env.gym_kwargs must be a JSON object"), "\($0)")
            }
        }
    }

    func testUnknownIdAndNonBoxSpacesAreReported() throws {
        try requireGymnasium()
        XCTAssertThrowsError(try GymnasiumBatch.describe(GymnasiumSettings(id: "NoSuchEnvironment-v0"))) {
            XCTAssertTrue("\($0)".contains("unknown Gymnasium environment id 'NoSuchEnvironment-v0'"), "\($0)")
        }
        XCTAssertThrowsError(try GymnasiumBatch.describe(GymnasiumSettings(id: "CartPole-v1"))) {
            XCTAssertTrue("\($0)".contains("the action space Discrete(2); the bridge supports only Box spaces"), "\($0)")
        }
    }

    /// A Python whose gymnasium import fails (a package on PYTHONPATH that raises ImportError shadows the real one).
    func testUnimportableGymnasiumIsReported() throws {
        try requireGymnasium()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gymnasium-bridge-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let package = directory.appendingPathComponent("shadow/gymnasium")
        try FileManager.default.createDirectory(at: package, withIntermediateDirectories: true)
        try "raise ImportError('simulated missing gymnasium')\n".write(to: package.appendingPathComponent("__init__.py"), atomically: true, encoding: .utf8)
        let python = directory.appendingPathComponent("python")
        try "#!/bin/sh\nPYTHONPATH='\(directory.path)/shadow' exec python3 \"$@\"\n".write(to: python, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: python.path)
        XCTAssertThrowsError(try GymnasiumBatch.describe(GymnasiumSettings(id: "Pendulum-v1", python: python.path))) {
            XCTAssertTrue("\($0)".contains("cannot import gymnasium (simulated missing gymnasium); install it"), "\($0)")
        }
    }

    /// An exception inside the environment's step comes back as its traceback.
    func testEnvironmentExceptionIsReported() throws {
        try requireGymnasium()
        // Pendulum-v1 stores g without checking it; its first step computes 3·g/2 with a string.
        let batch = try GymnasiumBatch(settings: GymnasiumSettings(id: "Pendulum-v1", kwargsJSON: #"{"g": "ten"}"#), count: 1, seed: 0)
        var observation: [Float] = [0, 0, 0], reward: [Float] = [0], terminated = [false]
        try batch.reset(0, observation: &observation)
        XCTAssertThrowsError(try batch.step(actions: [0], active: [true], observations: &observation, rewards: &reward, terminated: &terminated)) {
            XCTAssertTrue("\($0)".contains("the environment raised an exception"), "\($0)")
            XCTAssertTrue("\($0)".contains("TypeError"), "\($0)")
        }
    }

    /// Killing the child mid-run turns the next call into an EnvironmentError with the signal, not a hang or a crash.
    func testDeadChildFailsCleanly() throws {
        try requireGymnasium()
        let batch = try GymnasiumBatch(settings: Self.pendulum, count: 2, seed: 1)
        var observations = [Float](repeating: 0, count: 6), rewards: [Float] = [0, 0], terminated = [false, false]
        try batch.reset(0, observation: &observations)
        XCTAssertEqual(kill(batch.childPID, SIGKILL), 0)
        XCTAssertThrowsError(try batch.step(actions: [0, 0], active: [true, false], observations: &observations,
                                            rewards: &rewards, terminated: &terminated)) {
            XCTAssertTrue($0 is EnvironmentError)
            XCTAssertTrue("\($0)".contains("was killed by signal 9 during step"), "\($0)")
        }
        XCTAssertThrowsError(try batch.reset(1, observation: &observations)) {
            XCTAssertTrue("\($0)".contains("was killed by signal 9"), "\($0)")
        }
        batch.close()
    }
}
