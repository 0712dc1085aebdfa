import CMuJoCo
import Foundation
import Tensors

/// The planar MuJoCo locomotion tasks.
public enum LocomotionTask: String, CaseIterable, Sendable, Codable {
    case hopper, walker2d, halfCheetah = "halfcheetah"
}

/// Which Gymnasium version's rules (and, for Walker2d, model) to follow. They differ in two places:
/// v4 pays the healthy reward on the step that terminates an episode and v5 does not, and v5's Walker2d
/// gives its right foot the left foot's friction (1.9 instead of 0.9).
public enum GymnasiumVersion: String, CaseIterable, Sendable, Codable {
    case v4, v5
}

/// Reward, termination and reset rules with Gymnasium's defaults for each task.
public struct LocomotionRules: Sendable, Equatable {
    public var frameSkip: Int
    public var forwardRewardWeight: Double
    public var controlCostWeight: Double
    public var healthyReward: Double
    /// Open intervals the torso height, the torso angle and (Hopper) every other state entry must stay in;
    /// nil where a task has no such rule. Leaving one terminates the episode.
    public var healthyZRange: (Double, Double)?
    public var healthyAngleRange: (Double, Double)?
    public var healthyStateRange: (Double, Double)?
    /// Initial positions get U(−s, s) added; initial velocities U(−s, s), or s·N(0, 1) for HalfCheetah.
    public var resetNoiseScale: Double
    public var gaussianVelocityNoise: Bool
    /// Observed velocities are clipped to ±this (Hopper, Walker2d: 10); nil leaves them unclipped.
    public var velocityClip: Double?
    /// v4 rule: the healthy reward is paid on the terminating step too.
    public var healthyRewardWhenTerminating: Bool
    public var maxEpisodeSteps: Int

    public static func == (a: LocomotionRules, b: LocomotionRules) -> Bool {
        a.frameSkip == b.frameSkip && a.forwardRewardWeight == b.forwardRewardWeight && a.controlCostWeight == b.controlCostWeight
            && a.healthyReward == b.healthyReward && a.healthyZRange.map { [$0.0, $0.1] } == b.healthyZRange.map { [$0.0, $0.1] }
            && a.healthyAngleRange.map { [$0.0, $0.1] } == b.healthyAngleRange.map { [$0.0, $0.1] }
            && a.healthyStateRange.map { [$0.0, $0.1] } == b.healthyStateRange.map { [$0.0, $0.1] }
            && a.resetNoiseScale == b.resetNoiseScale && a.gaussianVelocityNoise == b.gaussianVelocityNoise && a.velocityClip == b.velocityClip
            && a.healthyRewardWhenTerminating == b.healthyRewardWhenTerminating && a.maxEpisodeSteps == b.maxEpisodeSteps
    }

    public static func gymnasium(_ task: LocomotionTask, version: GymnasiumVersion) -> LocomotionRules {
        switch task {
        case .hopper:
            return LocomotionRules(frameSkip: 4, forwardRewardWeight: 1, controlCostWeight: 1e-3, healthyReward: 1,
                                   healthyZRange: (0.7, .infinity), healthyAngleRange: (-0.2, 0.2), healthyStateRange: (-100, 100),
                                   resetNoiseScale: 5e-3, gaussianVelocityNoise: false, velocityClip: 10,
                                   healthyRewardWhenTerminating: version == .v4, maxEpisodeSteps: 1000)
        case .walker2d:
            return LocomotionRules(frameSkip: 4, forwardRewardWeight: 1, controlCostWeight: 1e-3, healthyReward: 1,
                                   healthyZRange: (0.8, 2.0), healthyAngleRange: (-1, 1), healthyStateRange: nil,
                                   resetNoiseScale: 5e-3, gaussianVelocityNoise: false, velocityClip: 10,
                                   healthyRewardWhenTerminating: version == .v4, maxEpisodeSteps: 1000)
        case .halfCheetah:
            return LocomotionRules(frameSkip: 5, forwardRewardWeight: 1, controlCostWeight: 0.1, healthyReward: 0,
                                   healthyZRange: nil, healthyAngleRange: nil, healthyStateRange: nil,
                                   resetNoiseScale: 0.1, gaussianVelocityNoise: true, velocityClip: nil,
                                   healthyRewardWhenTerminating: false, maxEpisodeSteps: 1000)
        }
    }

    var terminates: Bool { healthyZRange != nil || healthyAngleRange != nil || healthyStateRange != nil }
}

/// Hopper, Walker2d or HalfCheetah simulated by MuJoCo with Gymnasium's observation, reward, termination and
/// reset rules: observation = qpos[1…] followed by qvel (clipped for Hopper/Walker2d), reward = forward velocity of
/// the root over one decision (frame skip × 2 ms or 10 ms) + healthy reward − control cost, termination when the
/// torso leaves its healthy ranges, truncation after 1000 steps (by `VectorEnvironment`). A step allocates nothing.
/// A simulation that produces a non-finite state (MuJoCo's instability) terminates the episode with reward 0.
public final class LocomotionEnvironment: Environment {
    public let task: LocomotionTask
    public let rules: LocomotionRules
    public let model: MuJoCoModel
    package let data: MuJoCoData
    let positions: Int, velocities: Int, controls: Int
    let decisionTime: Double

    /// - model: a compiled model to share between instances; defaults to this project's model of the task.
    public init(task: LocomotionTask, version: GymnasiumVersion = .v5, model: MuJoCoModel? = nil, rules: LocomotionRules? = nil) throws {
        self.task = task
        self.rules = rules ?? .gymnasium(task, version: version)
        self.model = try model ?? LocomotionEnvironment.builtInModel(task, version: version)
        data = try MuJoCoData(model: self.model)
        positions = self.model.positionCount
        velocities = self.model.velocityCount
        controls = self.model.actuatorCount
        decisionTime = self.model.timeStep * Double(self.rules.frameSkip)
    }

    /// This project's MJCF model of a task, compiled once per process and version.
    public static func builtInModel(_ task: LocomotionTask, version: GymnasiumVersion) throws -> MuJoCoModel {
        let key = "\(task.rawValue)-\(version.rawValue)"
        modelCacheLock.lock()
        defer { modelCacheLock.unlock() }
        if let model = modelCache[key] { return model }
        let xml: String
        switch task {
        case .hopper: xml = LocomotionModels.hopper
        case .walker2d: xml = LocomotionModels.walker2d(rightFootFriction: version == .v4 ? 0.9 : 1.9)
        case .halfCheetah: xml = LocomotionModels.halfCheetah
        }
        let model = try MuJoCoModel(xml: xml)
        modelCache[key] = model
        return model
    }

    /// nonisolated(unsafe): read and written only while holding `modelCacheLock`.
    nonisolated(unsafe) private static var modelCache: [String: MuJoCoModel] = [:]
    private static let modelCacheLock = NSLock()

    public var observationDim: Int { positions - 1 + velocities }
    public var actionDim: Int { controls }
    public var maxEpisodeSteps: Int { rules.maxEpisodeSteps }

    /// Nominal normalisation bounds (the observation space itself is unbounded): positions and angles ±1, which leaves
    /// them unscaled, velocities ±10, the clip of Hopper and Walker2d. Policies trained on data use the data's ranges instead.
    public var observationLow: [Float] { (0..<observationDim).map { $0 < positions - 1 ? -1 : -10 } }
    public var observationHigh: [Float] { (0..<observationDim).map { $0 < positions - 1 ? 1 : 10 } }
    public var actionLow: [Float] { model.controlRanges.map { Float($0.low) } }
    public var actionHigh: [Float] { model.controlRanges.map { Float($0.high) } }

    public func reset(random: inout Philox, observation: UnsafeMutablePointer<Float>) {
        data.reset()
        let scale = rules.resetNoiseScale
        let qpos0 = model.pointer.pointee.qpos0!
        for i in 0..<positions { data.qpos[i] = qpos0[i] + scale * (2 * Double(random.uniform()) - 1) }
        for i in 0..<velocities {
            data.qvel[i] = rules.gaussianVelocityNoise ? scale * Double(random.normal()) : scale * (2 * Double(random.uniform()) - 1)
        }
        data.forward()
        writeObservation(observation)
    }

    /// Sets the joint state (as Gymnasium's `set_state`: qpos, qvel, then `mj_forward`) and writes the observation.
    /// `warmstart` restores the constraint solver's initial guess (`qacc_warmstart`) too, which makes a replayed
    /// step agree with the recorded one to the solver's tolerance rather than to its iteration count.
    public func setState(qpos: [Double], qvel: [Double], warmstart: [Double]? = nil, observation: UnsafeMutablePointer<Float>) {
        precondition(qpos.count == positions && qvel.count == velocities && (warmstart?.count ?? velocities) == velocities)
        data.reset()
        for i in 0..<positions { data.qpos[i] = qpos[i] }
        for i in 0..<velocities { data.qvel[i] = qvel[i] }
        if let warmstart { for i in 0..<velocities { data.pointer.pointee.qacc_warmstart![i] = warmstart[i] } }
        data.forward()
        writeObservation(observation)
    }

    public var qpos: [Double] { Array(UnsafeBufferPointer(start: data.qpos, count: positions)) }
    public var qvel: [Double] { Array(UnsafeBufferPointer(start: data.qvel, count: velocities)) }

    public func step(action: UnsafePointer<Float>, observation: UnsafeMutablePointer<Float>) -> (reward: Float, terminated: Bool) {
        var controlCost = 0.0
        for i in 0..<controls {
            let a = Double(action[i])
            data.ctrl[i] = a   // MuJoCo clamps to ctrlrange (ctrllimited); the cost uses the action as given, as Gymnasium does
            controlCost += a * a
        }
        let xBefore = data.qpos[0]
        for _ in 0..<rules.frameSkip { data.step() }
        let xVelocity = (data.qpos[0] - xBefore) / decisionTime
        writeObservation(observation)
        guard isFinite else { return (0, true) }
        let healthy = isHealthy
        let healthyReward = (healthy || (rules.terminates && rules.healthyRewardWhenTerminating)) ? rules.healthyReward : 0
        let reward = rules.forwardRewardWeight * xVelocity + healthyReward - rules.controlCostWeight * controlCost
        return (Float(reward), rules.terminates && !healthy)
    }

    private var isFinite: Bool {
        for i in 0..<positions where !data.qpos[i].isFinite { return false }
        for i in 0..<velocities where !data.qvel[i].isFinite { return false }
        return true
    }

    /// Gymnasium's `is_healthy`: strict inequalities on the torso height qpos[1], angle qpos[2] and (Hopper) on
    /// every entry of (qpos, qvel) after the first two.
    public var isHealthy: Bool {
        if let (low, high) = rules.healthyZRange, !(low < data.qpos[1] && data.qpos[1] < high) { return false }
        if let (low, high) = rules.healthyAngleRange, !(low < data.qpos[2] && data.qpos[2] < high) { return false }
        if let (low, high) = rules.healthyStateRange {
            for i in 2..<positions where !(low < data.qpos[i] && data.qpos[i] < high) { return false }
            for i in 0..<velocities where !(low < data.qvel[i] && data.qvel[i] < high) { return false }
        }
        return true
    }

    private func writeObservation(_ observation: UnsafeMutablePointer<Float>) {
        for i in 1..<positions { observation[i - 1] = Float(data.qpos[i]) }
        let clip = rules.velocityClip ?? .infinity
        for i in 0..<velocities { observation[positions - 1 + i] = Float(min(max(data.qvel[i], -clip), clip)) }
    }
}
