import Tensors

/// What a task declares about itself: sizes, episode limit and the bounds used for normalisation.
public struct TaskDescription: Sendable, Equatable, Codable {
    public var observationDim: Int
    public var actionDim: Int
    /// Episodes are truncated after this many environment steps.
    public var maxEpisodeSteps: Int
    /// Bounds used to map observations to [−1, 1] (finite nominal ranges for tasks whose spaces are unbounded)
    /// and actions from [−1, 1].
    public var observationLow: [Float]
    public var observationHigh: [Float]
    public var actionLow: [Float]
    public var actionHigh: [Float]
    /// Whether finished episodes report success (`EpisodeRecord.success`); false in descriptions written before it existed.
    public var hasSuccessCriterion: Bool

    public init(observationDim: Int, actionDim: Int, maxEpisodeSteps: Int, observationLow: [Float], observationHigh: [Float],
                actionLow: [Float], actionHigh: [Float], hasSuccessCriterion: Bool = false) {
        self.observationDim = observationDim
        self.actionDim = actionDim
        self.maxEpisodeSteps = maxEpisodeSteps
        self.observationLow = observationLow
        self.observationHigh = observationHigh
        self.actionLow = actionLow
        self.actionHigh = actionHigh
        self.hasSuccessCriterion = hasSuccessCriterion
    }

    public init(_ environment: Environment) {
        self.init(observationDim: environment.observationDim, actionDim: environment.actionDim, maxEpisodeSteps: environment.maxEpisodeSteps,
                  observationLow: environment.observationLow, observationHigh: environment.observationHigh,
                  actionLow: environment.actionLow, actionHigh: environment.actionHigh, hasSuccessCriterion: environment.hasSuccessCriterion)
    }

    private enum CodingKeys: String, CodingKey {
        case observationDim, actionDim, maxEpisodeSteps, observationLow, observationHigh, actionLow, actionHigh, hasSuccessCriterion
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(observationDim: try c.decode(Int.self, forKey: .observationDim), actionDim: try c.decode(Int.self, forKey: .actionDim),
                  maxEpisodeSteps: try c.decode(Int.self, forKey: .maxEpisodeSteps),
                  observationLow: try c.decode([Float].self, forKey: .observationLow), observationHigh: try c.decode([Float].self, forKey: .observationHigh),
                  actionLow: try c.decode([Float].self, forKey: .actionLow), actionHigh: try c.decode([Float].self, forKey: .actionHigh),
                  hasSuccessCriterion: try c.decodeIfPresent(Bool.self, forKey: .hasSuccessCriterion) ?? false)
    }
}

/// An environment backend failed (a bridge child process died, a simulator reported instability it cannot recover from).
public struct EnvironmentError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// E instances of one task stepped together, in the task's own units. `VectorEnvironment` builds action chunks,
/// normalisation, observation history and episode bookkeeping on top of it. Native tasks step in-process
/// (`NativeEnvironmentBatch`); the Gymnasium bridge steps all instances in one round trip to a Python child.
public protocol EnvironmentBatch: AnyObject {
    var count: Int { get }
    var task: TaskDescription { get }
    /// Starts a new episode in instance `index` and writes its first observation [Do].
    func reset(_ index: Int, observation: UnsafeMutablePointer<Float>) throws
    /// Steps every instance whose `active` flag is set with its row of `actions` [E·Da]; writes that instance's row of
    /// `observations` [E·Do], `rewards` [E] and `terminated` [E]. Rows of inactive instances are left untouched.
    func step(actions: UnsafePointer<Float>, active: UnsafePointer<Bool>, observations: UnsafeMutablePointer<Float>,
              rewards: UnsafeMutablePointer<Float>, terminated: UnsafeMutablePointer<Bool>) throws
    /// Whether instance `index`'s current episode has reached the task's goal (false for tasks without one).
    func succeeded(_ index: Int) -> Bool
}

extension EnvironmentBatch {
    public func succeeded(_ index: Int) -> Bool { false }
}

/// In-process instances of a Swift task, each with its own counter-based random stream (seed, stream i).
public final class NativeEnvironmentBatch: EnvironmentBatch {
    public let environments: [Environment]
    public let task: TaskDescription
    var random: [Philox]

    public init(environments: [Environment], seed: UInt64) {
        precondition(!environments.isEmpty)
        self.environments = environments
        task = TaskDescription(environments[0])
        random = (0..<environments.count).map { Philox(seed: seed, stream: UInt64($0)) }
    }

    public var count: Int { environments.count }

    public func succeeded(_ index: Int) -> Bool { environments[index].succeeded }

    public func reset(_ index: Int, observation: UnsafeMutablePointer<Float>) {
        environments[index].reset(random: &random[index], observation: observation)
    }

    public func step(actions: UnsafePointer<Float>, active: UnsafePointer<Bool>, observations: UnsafeMutablePointer<Float>,
                     rewards: UnsafeMutablePointer<Float>, terminated: UnsafeMutablePointer<Bool>) {
        let actionDim = task.actionDim, observationDim = task.observationDim
        for index in 0..<count where active[index] {
            let outcome = environments[index].step(action: actions + index * actionDim, observation: observations + index * observationDim)
            rewards[index] = outcome.reward
            terminated[index] = outcome.terminated
        }
    }
}
