import CMuJoCo
import Environments
import Foundation
import Tensors

public enum TabletopBenchmark {
    /// Stepping speed of a tabletop task on one core: the environment's `step` (servo targets from the action,
    /// gravity compensation, 25 physics steps, observation, goal check) against the bound of 25 bare `mj_step`
    /// calls with the same controls. Both loops start from the same reset state and replay one scripted episode of
    /// 100 steps (grasp, carry, contact included); the raw loop replays the controls the environment computed.
    /// They alternate in rounds for `seconds` in all, so that frequency changes of the machine affect both alike.
    public static func measure(_ task: TabletopTask, seconds: Double) throws -> LocomotionSteppingRate {
        let environment = try TabletopEnvironment(task: task)
        let steps = 100, actionDim = environment.actionDim, controls = environment.model.actuatorCount
        var observation = [Float](repeating: 0, count: environment.observationDim)
        var actions = [Float](repeating: 0, count: steps * actionDim), recordedControls = [Double](repeating: 0, count: steps * controls)
        var random = Philox(seed: 5, stream: 0xBF)
        var demonstrator = TabletopDemonstrator(task: task, mode: .alongX, noise: 0.1)
        let model = environment.model.pointer, data = environment.data.pointer
        let start = try MuJoCoData(model: environment.model)
        func restart() {
            mj_copyData(data, model, start.pointer)
            environment.succeeded = false
        }
        environment.reset(random: &random, observation: &observation)
        mj_copyData(start.pointer, model, data)  // restart() returns both loops here (gravity compensation is set per step)
        for step in 0..<steps {
            actions.withUnsafeMutableBufferPointer { a in
                observation.withUnsafeMutableBufferPointer { o in
                    demonstrator.act(observation: o.baseAddress!, random: &random, action: a.baseAddress! + step * actionDim)
                    _ = environment.step(action: a.baseAddress! + step * actionDim, observation: o.baseAddress!)
                }
            }
            for c in 0..<controls { recordedControls[step * controls + c] = data.pointee.ctrl![c] }
        }
        func native() -> Double {
            restart()
            return Timing.seconds {
                actions.withUnsafeBufferPointer { a in
                    observation.withUnsafeMutableBufferPointer { o in
                        for step in 0..<steps { _ = environment.step(action: a.baseAddress! + step * actionDim, observation: o.baseAddress!) }
                    }
                }
            }
        }
        func raw() -> Double {
            restart()
            return Timing.seconds {
                for step in 0..<steps {
                    for c in 0..<controls { data.pointee.ctrl![c] = recordedControls[step * controls + c] }
                    data.pointee.qfrc_applied![environment.gripperZDof] = environment.gripperWeight
                    for _ in 0..<TabletopModel.substeps { mj_step(model, data) }
                }
            }
        }
        let (nativeSeconds, rawSeconds) = Timing.alternate(seconds: seconds, native, raw)
        return LocomotionSteppingRate(task: task.rawValue, frame_skip: TabletopModel.substeps, env_steps_per_second: Double(steps) / nativeSeconds,
                                      raw_mj_step_env_steps_per_second: Double(steps) / rawSeconds)
    }
}
