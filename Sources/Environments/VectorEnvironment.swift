import Tensors

/// Statistics of one finished episode.
public struct EpisodeRecord: Sendable, Equatable {
    public var environmentIndex: Int
    public var totalReward: Double
    public var length: Int
    /// Whether the episode reached the task's goal (always false for tasks without one: `TaskDescription.hasSuccessCriterion`).
    public var success: Bool = false
}

/// E instances of a task stepped together with action chunks (docs/algorithms.md §5.2):
/// observations are normalised to [−1, 1] and stacked over To steps, actions are un-normalised
/// from [−1, 1], the first Ta rows of each chunk are executed (an instance whose episode ends stops early),
/// their rewards summed, and an ended episode is reset within the step. Each of the Ta sub-steps is one
/// call of the backend for all still-running instances, so a bridged backend pays one round trip per sub-step.
public final class VectorEnvironment {
    public let batch: EnvironmentBatch
    public let conditionSteps: Int
    public let actSteps: Int
    public let horizonSteps: Int
    public let observationDim: Int
    public let actionDim: Int
    public let maxEpisodeSteps: Int

    let observationOffset: [Float], observationScale: [Float]
    let actionOffset: [Float], actionScale: [Float]

    /// Stacked normalised observations [E, To·Do], most recent last: the policy's conditioning.
    public let observations: Matrix
    /// Per environment, after `step`: summed chunk reward, terminated, truncated.
    public private(set) var rewards: [Float]
    public private(set) var terminated: [Bool]
    public private(set) var truncated: [Bool]
    /// Normalised, stacked last observation of an episode that was truncated in the last step (else unchanged).
    public let finalObservations: Matrix
    /// Episodes that ended during the last `step`.
    public private(set) var finishedEpisodes: [EpisodeRecord] = []

    /// Called for every executed environment step, when set: (environment index, raw observation before the step,
    /// raw action, reward, terminated). Dataset collection records transitions in environment units with it.
    public var transitionObserver: ((Int, UnsafePointer<Float>, UnsafePointer<Float>, Float, Bool) -> Void)?
    /// The latest raw observation of each environment [E·Do].
    var currentRaw: [Float]

    var episodeReturns: [Double]
    var episodeLengths: [Int]
    // Per-sub-step scratch, allocated once.
    var stepObservations: [Float]
    var stepRewards: [Float]
    var stepTerminated: [Bool]
    var rawActions: [Float]
    var active: [Bool]
    var ended: [Bool]

    /// Native instances of a built-in task; environment i is seeded with (seed, stream i).
    public convenience init(task: TaskName, count: Int, seed: UInt64, conditionSteps: Int = 1, actSteps: Int, horizonSteps: Int,
                            observationBounds: (low: [Float], high: [Float])? = nil, actionBounds: (low: [Float], high: [Float])? = nil) throws {
        self.init(batch: NativeEnvironmentBatch(environments: try (0..<count).map { _ in try task.make() }, seed: seed),
                  conditionSteps: conditionSteps, actSteps: actSteps, horizonSteps: horizonSteps,
                  observationBounds: observationBounds, actionBounds: actionBounds)
    }

    /// - observationBounds/actionBounds: normalisation ranges; default to the task's declared bounds.
    public init(batch: EnvironmentBatch, conditionSteps: Int = 1, actSteps: Int, horizonSteps: Int,
                observationBounds: (low: [Float], high: [Float])? = nil, actionBounds: (low: [Float], high: [Float])? = nil) {
        let count = batch.count, task = batch.task
        precondition(count >= 1 && actSteps >= 1 && actSteps <= horizonSteps && conditionSteps >= 1)
        self.batch = batch
        self.conditionSteps = conditionSteps
        self.actSteps = actSteps
        self.horizonSteps = horizonSteps
        observationDim = task.observationDim
        actionDim = task.actionDim
        maxEpisodeSteps = task.maxEpisodeSteps
        let observationRange = observationBounds ?? (task.observationLow, task.observationHigh)
        let actionRange = actionBounds ?? (task.actionLow, task.actionHigh)
        // x_n = 2(x − min)/(max − min + 1e−6) − 1;  a = (a_n + 1)/2·(max − min) + min   (docs/algorithms.md §3)
        observationScale = zip(observationRange.low, observationRange.high).map { 2 / ($1 - $0 + 1e-6) }
        observationOffset = observationRange.low
        actionScale = zip(actionRange.low, actionRange.high).map { ($1 - $0) / 2 }
        actionOffset = actionRange.low
        observations = Matrix(rows: count, columns: conditionSteps * observationDim)
        finalObservations = Matrix(rows: count, columns: conditionSteps * observationDim)
        rewards = [Float](repeating: 0, count: count)
        terminated = [Bool](repeating: false, count: count)
        truncated = [Bool](repeating: false, count: count)
        episodeReturns = [Double](repeating: 0, count: count)
        episodeLengths = [Int](repeating: 0, count: count)
        currentRaw = [Float](repeating: 0, count: count * observationDim)
        stepObservations = [Float](repeating: 0, count: count * observationDim)
        stepRewards = [Float](repeating: 0, count: count)
        stepTerminated = [Bool](repeating: false, count: count)
        rawActions = [Float](repeating: 0, count: count * actionDim)
        active = [Bool](repeating: false, count: count)
        ended = [Bool](repeating: false, count: count)
    }

    public var count: Int { batch.count }

    /// The in-process task instances, when the backend is native (tests and scripted controllers inspect them).
    public var environments: [Environment] { (batch as? NativeEnvironmentBatch)?.environments ?? [] }

    /// Resets every environment.
    public func resetAll() throws {
        for index in 0..<count { try reset(index) }
    }

    private func reset(_ index: Int) throws {
        let width = observationDim
        try currentRaw.withUnsafeMutableBufferPointer { try batch.reset(index, observation: $0.baseAddress! + index * width) }
        let row = observations.row(index)
        for slot in 0..<conditionSteps { writeNormalized(index, into: row + slot * width) }
        episodeReturns[index] = 0
        episodeLengths[index] = 0
    }

    private func writeNormalized(_ index: Int, into destination: UnsafeMutablePointer<Float>) {
        let base = index * observationDim
        for d in 0..<observationDim { destination[d] = (currentRaw[base + d] - observationOffset[d]) * observationScale[d] - 1 }
    }

    /// Executes the first Ta rows of each environment's chunk. `chunks` holds E rows of Tp·Da normalised actions
    /// starting at `chunks[row] + offset` (so a recorded chain's last slot can be passed directly).
    public func step(chunks: Matrix, offset: Int = 0) throws {
        finishedEpisodes.removeAll(keepingCapacity: true)
        let width = observationDim
        for index in 0..<count {
            rewards[index] = 0
            terminated[index] = false
            truncated[index] = false
            active[index] = true
            ended[index] = false
        }
        for step in 0..<actSteps {
            for index in 0..<count where active[index] {
                let chunk = chunks.row(index) + offset + step * actionDim
                for d in 0..<actionDim { rawActions[index * actionDim + d] = (chunk[d] + 1) * actionScale[d] + actionOffset[d] }
            }
            try rawActions.withUnsafeBufferPointer { actions in
                try active.withUnsafeBufferPointer { active in
                    try stepObservations.withUnsafeMutableBufferPointer { observations in
                        try stepRewards.withUnsafeMutableBufferPointer { rewards in
                            try stepTerminated.withUnsafeMutableBufferPointer { terminated in
                                try batch.step(actions: actions.baseAddress!, active: active.baseAddress!, observations: observations.baseAddress!,
                                               rewards: rewards.baseAddress!, terminated: terminated.baseAddress!)
                            }
                        }
                    }
                }
            }
            for index in 0..<count where active[index] {
                let reward = stepRewards[index], wasTerminated = stepTerminated[index]
                if let transitionObserver {
                    currentRaw.withUnsafeBufferPointer { before in rawActions.withUnsafeBufferPointer {
                        transitionObserver(index, before.baseAddress! + index * width, $0.baseAddress! + index * actionDim, reward, wasTerminated)
                    } }
                }
                for d in 0..<width { currentRaw[index * width + d] = stepObservations[index * width + d] }
                rewards[index] += reward
                episodeLengths[index] += 1
                let wasTruncated = !wasTerminated && episodeLengths[index] >= maxEpisodeSteps
                terminated[index] = wasTerminated
                truncated[index] = wasTruncated
                // Shift the history and append the newest observation.
                let row = observations.row(index)
                if conditionSteps > 1 { row.update(from: row + width, count: (conditionSteps - 1) * width) }
                writeNormalized(index, into: row + (conditionSteps - 1) * width)
                if wasTerminated || wasTruncated {
                    active[index] = false
                    ended[index] = true
                }
            }
            if !active.contains(true) { break }
        }
        for index in 0..<count {
            episodeReturns[index] += Double(rewards[index])
            if ended[index] {
                if truncated[index] { finalObservations.row(index).update(from: observations.row(index), count: conditionSteps * width) }
                finishedEpisodes.append(EpisodeRecord(environmentIndex: index, totalReward: episodeReturns[index], length: episodeLengths[index],
                                                      success: batch.succeeded(index)))
                try reset(index)
            }
        }
    }
}
