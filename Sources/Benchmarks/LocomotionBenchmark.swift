import CMuJoCo
import Environments
import Foundation
import Tensors

/// Stepping speed of a native MuJoCo task on one core: the environment's `step` (locomotion: controls, frame skip,
/// observation, reward, health check; tabletop: `TabletopBenchmark`) against the bound of calling `mj_step`
/// frame-skip times with the same controls and nothing else.
public struct LocomotionSteppingRate: Sendable, Codable {
    public var task: String
    public var frame_skip: Int
    public var env_steps_per_second: Double
    public var raw_mj_step_env_steps_per_second: Double
    public var fraction_of_raw: Double { env_steps_per_second / raw_mj_step_env_steps_per_second }
}

public enum LocomotionBenchmark {
    /// Both loops start from the same reset state and replay the same 1,000 uniform random actions, without resetting
    /// (a fallen hopper keeps simulating, so both do the same physics); each runs for `seconds`, alternating in rounds
    /// so that frequency changes of the machine affect both alike.
    public static func measure(_ task: LocomotionTask, seconds: Double) throws -> LocomotionSteppingRate {
        let environment = try LocomotionEnvironment(task: task)
        let actions = 1000, dim = environment.actionDim
        var random = Philox(seed: 5, stream: 0xBE)
        var table = [Float](repeating: 0, count: actions * dim)
        random.fillUniform(&table, count: table.count, low: -1, high: 1)
        var observation = [Float](repeating: 0, count: environment.observationDim)
        environment.reset(random: &random, observation: &observation)
        let start = (environment.qpos, environment.qvel)
        let model = environment.model.pointer, data = environment.data.pointer
        let frames = environment.rules.frameSkip

        func native() -> Double {
            environment.setState(qpos: start.0, qvel: start.1, observation: &observation)
            return Timing.seconds {
                table.withUnsafeBufferPointer { actions in
                    observation.withUnsafeMutableBufferPointer { o in
                        for step in 0..<1000 { _ = environment.step(action: actions.baseAddress! + step * dim, observation: o.baseAddress!) }
                    }
                }
            }
        }
        func raw() -> Double {
            environment.setState(qpos: start.0, qvel: start.1, observation: &observation)
            return Timing.seconds {
                for step in 0..<1000 {
                    for d in 0..<dim { data.pointee.ctrl![d] = Double(table[step * dim + d]) }
                    for _ in 0..<frames { mj_step(model, data) }
                }
            }
        }
        let (nativeSeconds, rawSeconds) = Timing.alternate(seconds: seconds, native, raw)
        return LocomotionSteppingRate(task: task.rawValue, frame_skip: frames, env_steps_per_second: 1000 / nativeSeconds,
                                      raw_mj_step_env_steps_per_second: 1000 / rawSeconds)
    }
}
