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
    /// Whether the task defines success (the tabletop tasks do; the locomotion tasks and Pendulum do not).
    var hasSuccessCriterion: Bool { get }
    /// Whether the current episode has reached the task's goal (read when an episode ends, before the reset).
    var succeeded: Bool { get }
}

extension Environment {
    public var hasSuccessCriterion: Bool { false }
    public var succeeded: Bool { false }
}

/// The tasks, by the name used in configs (`env.task`).
public enum TaskName: String, CaseIterable, Sendable, Codable {
    case pendulum, hopper, walker2d, halfcheetah
    /// The tabletop manipulation tasks (`TabletopEnvironment`).
    case lift, place
    /// Any Python Gymnasium environment through the bridge (`env.gym_id`).
    case gymnasium

    public var locomotion: LocomotionTask? {
        switch self {
        case .hopper: return .hopper
        case .walker2d: return .walker2d
        case .halfcheetah: return .halfCheetah
        case .pendulum, .gymnasium, .lift, .place: return nil
        }
    }

    public var tabletop: TabletopTask? {
        switch self {
        case .lift: return .lift
        case .place: return .place
        default: return nil
        }
    }

    /// An in-process instance of a Swift task.
    public func make(version: GymnasiumVersion = .v5) throws -> Environment {
        switch self {
        case .pendulum: return Pendulum()
        case .hopper, .walker2d, .halfcheetah: return try LocomotionEnvironment(task: locomotion!, version: version)
        case .lift, .place: return try TabletopEnvironment(task: tabletop!)
        case .gymnasium: throw EnvironmentError("the gymnasium task runs in a Python child process, not in-process")
        }
    }
}

/// A task as configured: a Swift task (with the Gymnasium version whose rules the MuJoCo tasks follow) or a
/// Gymnasium environment run through the bridge.
public struct TaskSpec: Sendable, Equatable {
    public var name: TaskName
    public var version: GymnasiumVersion
    public var gymnasium: GymnasiumSettings

    public init(name: TaskName, version: GymnasiumVersion = .v5, gymnasium: GymnasiumSettings = GymnasiumSettings(id: "")) {
        self.name = name
        self.version = version
        self.gymnasium = gymnasium
    }

    /// `count` instances; instance i draws its randomness from (seed, stream i) (native) or is seeded with seed + i (bridge).
    public func makeBatch(count: Int, seed: UInt64) throws -> EnvironmentBatch {
        if name == .gymnasium { return try GymnasiumBatch(settings: gymnasium, count: count, seed: seed) }
        return NativeEnvironmentBatch(environments: try (0..<count).map { _ in try name.make(version: version) }, seed: seed)
    }

    /// Sizes and bounds; for a bridged task this starts Python once to read the spaces.
    public func describe() throws -> TaskDescription {
        if name == .gymnasium { return try GymnasiumBatch.describe(gymnasium) }
        return TaskDescription(try name.make(version: version))
    }

    /// A short label for logs and dataset metadata.
    public var label: String {
        switch name {
        case .gymnasium: return "gymnasium:\(gymnasium.id)"
        case .pendulum, .lift, .place: return name.rawValue
        default: return "\(name.rawValue)-\(version.rawValue)"
        }
    }
}
