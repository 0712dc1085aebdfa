import Tensors

/// One simulated task instance. Observations and actions are in the task's own units;
/// `VectorEnvironment` handles normalisation, chunks and resets.
public protocol Environment: AnyObject {
    var observationDim: Int { get }
    var actionDim: Int { get }
    /// Episodes are truncated after this many environment steps.
    var maxEpisodeSteps: Int { get }
    /// Bounds used to map observations to [−1, 1] and actions from [−1, 1].
    var observationLow: [Float] { get }
    var observationHigh: [Float] { get }
    var actionLow: [Float] { get }
    var actionHigh: [Float] { get }
    /// Starts a new episode and writes its first observation.
    func reset(random: inout Philox, observation: UnsafeMutablePointer<Float>)
    /// Applies one action; writes the next observation; returns the reward and whether the episode terminated.
    func step(action: UnsafePointer<Float>, observation: UnsafeMutablePointer<Float>) -> (reward: Float, terminated: Bool)
}

/// The built-in tasks, by the name used in configs.
public enum TaskName: String, CaseIterable, Sendable, Codable {
    case pendulum

    public func make() -> Environment {
        switch self {
        case .pendulum: return Pendulum()
        }
    }
}
