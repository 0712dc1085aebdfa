import Foundation
import XCTest
@testable import Environments

/// Step-by-step agreement of the Swift MuJoCo tasks with Gymnasium's (`swift test --filter GymnasiumParity`).
///
/// `scripts/gymnasium_parity.py` rolls each task out in Gymnasium with seeded random actions (some beyond the control
/// range) and records, per step, the full simulator state before it (qpos, qvel, solver warm start), the action and
/// what Gymnasium returned. Each test loads Gymnasium's own model file into `LocomotionEnvironment`, restores every
/// recorded state, applies the same action and compares observation, reward and termination, then does the same with
/// this project's model. Tolerances: Debian ships MuJoCo 2.2.2, the PyPI wheel is 2.3.x; both run the same
/// algorithms, but their floating-point operations are ordered differently in places and the constraint solver stops
/// at a tolerance, so a step from an identical state agrees to about 1e-9 in the state, not bit for bit. Observations
/// are float32 here (5e-7 relative rounding), and the reward's forward term divides a position difference by the
/// decision time (8 ms or 50 ms), which multiplies a state error by up to 125. The bounds below are 1e-5 absolute
/// plus 1e-5 relative for observations and 1e-4 for rewards: far above both effects, far below any modelling error
/// (a friction, gear or mass change moves the next state by 1e-3 or more, see `testModelErrorsAreDetected`).
final class GymnasiumParityTests: XCTestCase {
    struct Recording: Decodable {
        var gymnasium_version: String
        var mujoco_version: String
        var tasks: [TaskRecording]
    }
    struct TaskRecording: Decodable {
        var id: String
        var model_path: String
        var frame_skip: Int
        var dt: Double
        var episode_starts: [EpisodeStart]
        var steps: [Step]
    }
    struct EpisodeStart: Decodable {
        var step: Int
        var qpos: [Double], qvel: [Double], observation: [Double]
    }
    struct Step: Decodable {
        var qpos: [Double], qvel: [Double], warmstart: [Double]
        var action: [Double]
        var observation: [Double]
        var reward: Double
        var terminated: Bool
        var qpos_after: [Double], qvel_after: [Double]
    }

    static let observationTolerance = (absolute: 1e-5, relative: 1e-5)
    static let rewardTolerance = 1e-4

    /// Records once per test process (about 2 s for 6 tasks × 300 steps).
    nonisolated(unsafe) static var cached: Result<Recording, Error>?

    static func recording() throws -> Recording {
        if let cached { return try cached.get() }
        let result = Result { try record() }
        cached = result
        return try result.get()
    }

    static func record() throws -> Recording {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/gymnasium_parity.py").path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("gymnasium-parity-\(getpid()).json")
        defer { try? FileManager.default.removeItem(at: output) }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import gymnasium, mujoco, imageio"]
        probe.standardError = FileHandle.nullDevice
        do { try probe.run() } catch { throw XCTSkip("GymnasiumParity needs python3 on PATH: \(error)") }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            throw XCTSkip("GymnasiumParity needs the Python packages gymnasium, mujoco and imageio: pip install -r scripts/requirements-test.txt")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-W", "ignore", script, "--steps", "300", "--seed", "0", "--output", output.path]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw EnvironmentError("gymnasium_parity.py failed: \(String(decoding: message, as: UTF8.self))")
        }
        return try JSONDecoder().decode(Recording.self, from: Data(contentsOf: output))
    }

    static func locomotionTask(_ id: String) -> (LocomotionTask, GymnasiumVersion) {
        let parts = id.split(separator: "-")
        let task: LocomotionTask = parts[0] == "Hopper" ? .hopper : parts[0] == "Walker2d" ? .walker2d : .halfCheetah
        return (task, GymnasiumVersion(rawValue: String(parts[1]))!)
    }

    struct Deviation {
        var observation = 0.0, reward = 0.0, state = 0.0
        var terminationMismatches = 0
    }

    /// Replays every recorded step from its recorded state; returns the largest deviations
    /// (observation in units of its tolerance, reward absolute, qpos/qvel absolute).
    static func replay(_ recording: TaskRecording, on environment: LocomotionEnvironment) -> Deviation {
        var deviation = Deviation()
        var observation = [Float](repeating: 0, count: environment.observationDim)
        var action = [Float](repeating: 0, count: environment.actionDim)
        for step in recording.steps {
            observation.withUnsafeMutableBufferPointer {
                environment.setState(qpos: step.qpos, qvel: step.qvel, warmstart: step.warmstart, observation: $0.baseAddress!)
            }
            for i in action.indices { action[i] = Float(step.action[i]) }
            let outcome = observation.withUnsafeMutableBufferPointer { o in
                action.withUnsafeBufferPointer { environment.step(action: $0.baseAddress!, observation: o.baseAddress!) }
            }
            for (ours, theirs) in zip(observation, step.observation) {
                let bound = observationTolerance.absolute + observationTolerance.relative * abs(theirs)
                deviation.observation = max(deviation.observation, abs(Double(ours) - theirs) / bound)
            }
            deviation.reward = max(deviation.reward, abs(Double(outcome.reward) - step.reward))
            for (ours, theirs) in zip(environment.qpos + environment.qvel, step.qpos_after + step.qvel_after) {
                deviation.state = max(deviation.state, abs(ours - theirs))
            }
            if outcome.terminated != step.terminated { deviation.terminationMismatches += 1 }
        }
        return deviation
    }

    func check(_ id: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let recording = try Self.recording()
        let task = try XCTUnwrap(recording.tasks.first { $0.id == id })
        let (name, version) = Self.locomotionTask(id)
        let theirs = try MuJoCoModel(path: task.model_path)
        for (label, model) in [("Gymnasium's model file", theirs), ("this project's model", try LocomotionEnvironment.builtInModel(name, version: version))] {
            let environment = try LocomotionEnvironment(task: name, version: version, model: model)
            XCTAssertEqual(environment.rules.frameSkip, task.frame_skip, file: file, line: line)
            XCTAssertEqual(model.timeStep * Double(environment.rules.frameSkip), task.dt, accuracy: 1e-12, file: file, line: line)
            let deviation = Self.replay(task, on: environment)
            print("\(id) with \(label) (MuJoCo \(MuJoCoModel.libraryVersion) vs \(recording.mujoco_version)): \(task.steps.count) steps, "
                  + "max observation error \(String(format: "%.3f", deviation.observation)) × tolerance, max reward error "
                  + "\(String(format: "%.2e", deviation.reward)), max state error \(String(format: "%.2e", deviation.state))")
            XCTAssertLessThanOrEqual(deviation.observation, 1, "\(id), \(label): observation beyond tolerance", file: file, line: line)
            XCTAssertLessThanOrEqual(deviation.reward, Self.rewardTolerance, "\(id), \(label): reward", file: file, line: line)
            XCTAssertEqual(deviation.terminationMismatches, 0, "\(id), \(label): termination", file: file, line: line)
        }
        // The compiled models agree in every physical parameter.
        let ours = try LocomotionEnvironment.builtInModel(name, version: version).physicalSummary
        for (field, values) in theirs.physicalSummary {
            let mine = try XCTUnwrap(ours[field], field)
            XCTAssertEqual(mine.count, values.count, "\(id): \(field) size", file: file, line: line)
            for (a, b) in zip(mine, values) where abs(a - b) > 1e-9 * max(1, abs(b)) {
                XCTFail("\(id): \(field) differs: ours \(mine), Gymnasium's \(values)", file: file, line: line)
                break
            }
        }
        // Reset: the initial positions are qpos0 plus uniform noise of the task's scale.
        for start in task.episode_starts {
            let qpos0 = theirs.physicalSummary["qpos0"]!
            let limit = LocomotionRules.gymnasium(name, version: version).resetNoiseScale
            for (q, q0) in zip(start.qpos, qpos0) { XCTAssertLessThanOrEqual(abs(q - q0), limit + 1e-12, "\(id): reset noise", file: file, line: line) }
        }
    }

    func testHopperV4() throws { try check("Hopper-v4") }
    func testHopperV5() throws { try check("Hopper-v5") }
    func testWalker2dV4() throws { try check("Walker2d-v4") }
    func testWalker2dV5() throws { try check("Walker2d-v5") }
    func testHalfCheetahV4() throws { try check("HalfCheetah-v4") }
    func testHalfCheetahV5() throws { try check("HalfCheetah-v5") }

    /// The comparison can fail: the v4 Walker2d model (right foot friction 0.9) replayed against v5's recording,
    /// and a Hopper with a 1 % heavier torso, are both caught.
    func testModelErrorsAreDetected() throws {
        let recording = try Self.recording()
        let walker = try XCTUnwrap(recording.tasks.first { $0.id == "Walker2d-v5" })
        let wrongFriction = try LocomotionEnvironment(task: .walker2d, version: .v5, model: try LocomotionEnvironment.builtInModel(.walker2d, version: .v4))
        let walkerDeviation = Self.replay(walker, on: wrongFriction)
        XCTAssertGreaterThan(walkerDeviation.observation, 1)

        let hopper = try XCTUnwrap(recording.tasks.first { $0.id == "Hopper-v5" })
        let heavier = LocomotionModels.hopper.replacingOccurrences(of: "name=\"torso_geom\"", with: "name=\"torso_geom\" density=\"1010\"")
        XCTAssertNotEqual(heavier, LocomotionModels.hopper, "the edit must apply")
        let heavy = try LocomotionEnvironment(task: .hopper, version: .v5, model: try MuJoCoModel(xml: heavier))
        XCTAssertGreaterThan(Self.replay(hopper, on: heavy).observation, 1)
    }
}
