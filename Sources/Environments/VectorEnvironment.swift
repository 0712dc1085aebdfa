import Tensors

/// Statistics of one finished episode.
public struct EpisodeRecord: Sendable, Equatable {
    public var environmentIndex: Int
    public var totalReward: Double
    public var length: Int
}

/// E copies of a task stepped together with action chunks (dppo.md §5.2):
/// observations are normalised to [−1, 1] and stacked over To steps, actions are un-normalised
/// from [−1, 1], the first Ta rows of each chunk are executed (stopping early when the episode
/// ends), their rewards summed, and an ended episode is reset within the step.
public final class VectorEnvironment {
    public let environments: [Environment]
    public let conditionSteps: Int
    public let actSteps: Int
    public let horizonSteps: Int
    public let observationDim: Int
    public let actionDim: Int
    public let maxEpisodeSteps: Int
    var random: [Philox]

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
    var raw: [Float]
    var rawAction: [Float]

    /// - seed: environment i is seeded with (seed, stream i).
    /// - observationBounds/actionBounds: normalisation ranges; default to the task's declared bounds.
    public init(task: TaskName, count: Int, seed: UInt64, conditionSteps: Int = 1, actSteps: Int, horizonSteps: Int,
                observationBounds: (low: [Float], high: [Float])? = nil, actionBounds: (low: [Float], high: [Float])? = nil) {
        precondition(count >= 1 && actSteps >= 1 && actSteps <= horizonSteps && conditionSteps >= 1)
        environments = (0..<count).map { _ in task.make() }
        let prototype = environments[0]
        self.conditionSteps = conditionSteps
        self.actSteps = actSteps
        self.horizonSteps = horizonSteps
        observationDim = prototype.observationDim
        actionDim = prototype.actionDim
        maxEpisodeSteps = prototype.maxEpisodeSteps
        random = (0..<count).map { Philox(seed: seed, stream: UInt64($0)) }
        let observationRange = observationBounds ?? (prototype.observationLow, prototype.observationHigh)
        let actionRange = actionBounds ?? (prototype.actionLow, prototype.actionHigh)
        // x_n = 2(x − min)/(max − min + 1e−6) − 1;  a = (a_n + 1)/2·(max − min) + min   (dppo.md §3)
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
        raw = [Float](repeating: 0, count: observationDim)
        currentRaw = [Float](repeating: 0, count: count * observationDim)
        rawAction = [Float](repeating: 0, count: actionDim)
    }

    public var count: Int { environments.count }

    /// Resets every environment.
    public func resetAll() {
        for index in 0..<count { reset(index) }
    }

    private func reset(_ index: Int) {
        raw.withUnsafeMutableBufferPointer { environments[index].reset(random: &random[index], observation: $0.baseAddress!) }
        for d in 0..<observationDim { currentRaw[index * observationDim + d] = raw[d] }
        let row = observations.row(index)
        for slot in 0..<conditionSteps { writeNormalized(into: row + slot * observationDim) }
        episodeReturns[index] = 0
        episodeLengths[index] = 0
    }

    private func writeNormalized(into destination: UnsafeMutablePointer<Float>) {
        for d in 0..<observationDim { destination[d] = (raw[d] - observationOffset[d]) * observationScale[d] - 1 }
    }

    /// Executes the first Ta rows of each environment's chunk. `chunks` holds E rows of Tp·Da normalised actions
    /// starting at `chunks[row] + offset` (so a recorded chain's last slot can be passed directly).
    public func step(chunks: Matrix, offset: Int = 0) {
        finishedEpisodes.removeAll(keepingCapacity: true)
        let width = observationDim
        for index in 0..<count {
            let environment = environments[index]
            var reward: Float = 0
            var ended = false, wasTerminated = false, wasTruncated = false
            let chunk = chunks.row(index) + offset
            for step in 0..<actSteps {
                for d in 0..<actionDim { rawAction[d] = (chunk[step * actionDim + d] + 1) * actionScale[d] + actionOffset[d] }
                let outcome = raw.withUnsafeMutableBufferPointer { observation in
                    rawAction.withUnsafeBufferPointer { environment.step(action: $0.baseAddress!, observation: observation.baseAddress!) }
                }
                if let transitionObserver {
                    currentRaw.withUnsafeBufferPointer { before in rawAction.withUnsafeBufferPointer {
                        transitionObserver(index, before.baseAddress! + index * width, $0.baseAddress!, outcome.reward, outcome.terminated)
                    } }
                }
                for d in 0..<width { currentRaw[index * width + d] = raw[d] }
                reward += outcome.reward
                episodeLengths[index] += 1
                wasTerminated = outcome.terminated
                wasTruncated = !outcome.terminated && episodeLengths[index] >= maxEpisodeSteps
                // Shift the history and append the newest observation.
                let row = observations.row(index)
                if conditionSteps > 1 { row.update(from: row + width, count: (conditionSteps - 1) * width) }
                writeNormalized(into: row + (conditionSteps - 1) * width)
                if wasTerminated || wasTruncated { ended = true; break }
            }
            episodeReturns[index] += Double(reward)
            rewards[index] = reward
            terminated[index] = wasTerminated
            truncated[index] = wasTruncated
            if ended {
                if wasTruncated { finalObservations.row(index).update(from: observations.row(index), count: conditionSteps * width) }
                finishedEpisodes.append(EpisodeRecord(environmentIndex: index, totalReward: episodeReturns[index], length: episodeLengths[index]))
                reset(index)
            }
        }
    }
}
