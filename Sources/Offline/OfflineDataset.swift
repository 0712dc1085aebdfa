import Datasets
import Foundation
import Tensors

/// r′ = scale·r + offset, applied when transitions are built, never written back to the dataset (§5.1: reward
/// transforms are derived views; Diffusion-QL's antmaze (r − 0.5)·4 is scale 4, offset −2).
public struct RewardTransform: Sendable, Equatable, Codable {
    public var scale: Double
    public var offset: Double

    public init(scale: Double = 1, offset: Double = 0) {
        self.scale = scale
        self.offset = offset
    }

    public static let identity = RewardTransform()

    /// IQL's locomotion normalisation (§3.6): r·1000/(max episode return − min episode return).
    public static func iqlReturnNormalized(_ dataset: TrajectoryDataset) -> RewardTransform {
        guard let returns = dataset.episodeReturns, let low = returns.min(), let high = returns.max(), high > low else { return .identity }
        return RewardTransform(scale: 1000 / (high - low))
    }

    @inline(__always)
    func apply(_ reward: Float) -> Float { Float(scale * Double(reward) + offset) }
}

/// One minibatch of chunk transitions (s, a, R, s′, discount), all normalised, rows aligned.
public final class OfflineBatch {
    /// s: observation windows [B, To·Do].
    public let observations: Matrix
    /// a: action chunks [B, Tp·Da].
    public let actions: Matrix
    /// R = Σ_j γʲ r_{i+j} over the chunk's Tp steps [B, 1].
    public let rewards: Matrix
    /// s′: the observation window after the chunk [B, To·Do].
    public let nextObservations: Matrix
    /// γ^Tp·(1 − terminated) [B, 1]: the weight of the bootstrap term in every TD target, y = R + discount·V(s′).
    public let discounts: Matrix
    /// G = Σ_j γʲ r_{i+j} to the episode's end [B, 1], the Monte Carlo return of the behaviour policy (zeros when the
    /// dataset has none; see `OfflineDataset.returns`).
    public let returns: Matrix

    public init(rows: Int, observationDim: Int, actionDim: Int) {
        observations = Matrix(rows: rows, columns: observationDim)
        actions = Matrix(rows: rows, columns: actionDim)
        rewards = Matrix(rows: rows, columns: 1)
        nextObservations = Matrix(rows: rows, columns: observationDim)
        discounts = Matrix(rows: rows, columns: 1)
        returns = Matrix(rows: rows, columns: 1)
    }

    public var count: Int { observations.rows }
}

/// An in-memory store of chunk transitions with a uniform sampler (with replacement), the offline dataset of §1.5
/// and §5.1 in DPPO's parameterisation: a decision is an action chunk of Tp steps taken after an observation window of To steps.
///
/// A transition starts at step i of an episode [s, e) with i + Tp ≤ e (windows never cross an episode end, as in
/// `chunkDataset`). Its reward is the discounted sum over the chunk and its discount γ^Tp·(1 − terminated), so
/// Tp = 1 gives the papers' one-step targets. The window that ends exactly at e is kept only when the episode
/// terminated there: after a time-limit cut the next observation is not in the data and the step cannot bootstrap
/// (D4RL's Q-learning export drops it likewise); every earlier transition of a cut episode bootstraps normally.
public final class OfflineDataset {
    public let observations: Matrix
    public let actions: Matrix
    public let rewards: Matrix
    public let nextObservations: Matrix
    public let discounts: Matrix
    /// The discounted return from each transition's first step to its episode's end (transformed rewards, the
    /// dataset's γ), or nil for transitions given without episodes. A time-limit cut ends the sum early, so the
    /// returns of an episode's last ~1/(1 − γ) steps before a cut are low (D4RL-style datasets have few cuts).
    public let returns: Matrix?

    /// Transitions given directly (all normalised); `rewards`, `discounts` and `returns` hold one value per row.
    public init(observations: Matrix, actions: Matrix, rewards: [Float], nextObservations: Matrix, discounts: [Float], returns: [Float]? = nil) {
        let count = observations.rows
        precondition(actions.rows == count && nextObservations.rows == count && rewards.count == count && discounts.count == count
                     && (returns?.count ?? count) == count, "transition arrays disagree on the number of rows")
        precondition(count > 0, "an offline dataset needs at least one transition")
        self.observations = observations
        self.actions = actions
        self.nextObservations = nextObservations
        self.rewards = Matrix(rows: count, columns: 1, values: rewards)
        self.discounts = Matrix(rows: count, columns: 1, values: discounts)
        self.returns = returns.map { Matrix(rows: count, columns: 1, values: $0) }
    }

    /// The chunk transitions of a trajectory dataset, normalised with `normalization` (min-max to [−1, 1], §5.4).
    /// Episodes without a `terminals` entry count as cut by a time limit.
    public convenience init(dataset: TrajectoryDataset, normalization: Normalization, conditionSteps: Int, horizonSteps: Int,
                            discount: Double, rewardTransform: RewardTransform = .identity) throws {
        guard conditionSteps >= 1, horizonSteps >= 1 else {
            throw DatasetError.invalidWindow("cond_steps (To) and horizon_steps (Tp) must be at least 1, not \(conditionSteps) and \(horizonSteps)")
        }
        try dataset.validate()
        guard let rewards = dataset.rewards else {
            throw DatasetError.missingArray(name: "rewards", file: dataset.metadata["source"] ?? "the dataset")
        }
        let terminals = dataset.terminals ?? [Bool](repeating: false, count: dataset.stepCount)
        var starts: [(step: Int, episodeStart: Int, episodeEnd: Int)] = []
        for episode in dataset.episodeRanges where episode.count >= horizonSteps {
            for step in episode.lowerBound...(episode.upperBound - horizonSteps) {
                if step + horizonSteps == episode.upperBound && !terminals[episode.upperBound - 1] { continue }
                starts.append((step, episode.lowerBound, episode.upperBound))
            }
        }
        guard !starts.isEmpty else {
            throw DatasetError.invalidWindow("no episode holds a transition of horizon_steps = \(horizonSteps) steps followed by a next observation or a termination")
        }
        let doStates = dataset.stateDimension, da = dataset.actionDimension
        let states = normalization.normalizeObservation(dataset.states)
        let actions = normalization.normalizeAction(dataset.actions)
        let observationMatrix = Matrix(rows: starts.count, columns: conditionSteps * doStates)
        let nextMatrix = Matrix(rows: starts.count, columns: conditionSteps * doStates)
        let chunkMatrix = Matrix(rows: starts.count, columns: horizonSteps * da)
        var chunkRewards = [Float](repeating: 0, count: starts.count), chunkDiscounts = chunkRewards, chunkReturns = chunkRewards
        // Discounted returns-to-go of every step, accumulated backwards through each episode.
        var returnsToGo = [Double](repeating: 0, count: dataset.stepCount)
        for episode in dataset.episodeRanges {
            var running = 0.0
            for step in episode.reversed() {
                running = Double(rewardTransform.apply(rewards[step])) + discount * running
                returnsToGo[step] = running
            }
        }
        func window(endingAt last: Int, episodeStart: Int, episodeEnd: Int, into row: UnsafeMutablePointer<Float>) {
            for slot in 0..<conditionSteps {
                let step = min(max(last - (conditionSteps - 1 - slot), episodeStart), episodeEnd - 1)
                for column in 0..<doStates { row[slot * doStates + column] = states[step * doStates + column] }
            }
        }
        for (sample, start) in starts.enumerated() {
            window(endingAt: start.step, episodeStart: start.episodeStart, episodeEnd: start.episodeEnd, into: observationMatrix.row(sample))
            window(endingAt: start.step + horizonSteps, episodeStart: start.episodeStart, episodeEnd: start.episodeEnd, into: nextMatrix.row(sample))
            for column in 0..<(horizonSteps * da) { chunkMatrix.row(sample)[column] = actions[start.step * da + column] }
            var sum = 0.0, weight = 1.0
            for offset in 0..<horizonSteps {
                sum += weight * Double(rewardTransform.apply(rewards[start.step + offset]))
                weight *= discount
            }
            chunkRewards[sample] = Float(sum)
            chunkDiscounts[sample] = terminals[start.step + horizonSteps - 1] ? 0 : Float(weight)
            chunkReturns[sample] = Float(returnsToGo[start.step])
        }
        self.init(observations: observationMatrix, actions: chunkMatrix, rewards: chunkRewards, nextObservations: nextMatrix, discounts: chunkDiscounts,
                  returns: chunkReturns)
    }

    /// Number of transitions.
    public var count: Int { observations.rows }
    public var observationDim: Int { observations.columns }
    public var actionDim: Int { actions.columns }

    /// A batch buffer for this dataset's widths.
    public func makeBatch(size: Int) -> OfflineBatch { OfflineBatch(rows: size, observationDim: observationDim, actionDim: actionDim) }

    /// Fills `batch` (all its rows) with transitions drawn uniformly with replacement.
    public func sample(into batch: OfflineBatch, random: inout Philox) {
        let o = observationDim, a = actionDim
        for slot in 0..<batch.count {
            let index = random.integer(below: count)
            batch.observations.row(slot).update(from: observations.row(index), count: o)
            batch.nextObservations.row(slot).update(from: nextObservations.row(index), count: o)
            batch.actions.row(slot).update(from: actions.row(index), count: a)
            batch.rewards.data[slot] = rewards.data[index]
            batch.discounts.data[slot] = discounts.data[index]
            batch.returns.data[slot] = returns?.data[index] ?? 0
        }
    }
}
