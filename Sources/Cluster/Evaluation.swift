import Foundation
import Algorithms
import Datasets
import Diffusion
import Environments
import Tensors

/// Mean and spread of evaluation episode returns, and the fraction of episodes that reached the goal for tasks
/// that define one (`TaskDescription.hasSuccessCriterion`; nil otherwise).
public struct EvaluationResult: Sendable, Codable {
    public var meanReturn: Double
    public var stdReturn: Double
    public var minReturn: Double
    public var maxReturn: Double
    public var episodes: Int
    public var successRate: Double?

    public init(meanReturn: Double, stdReturn: Double, minReturn: Double, maxReturn: Double, episodes: Int, successRate: Double? = nil) {
        self.meanReturn = meanReturn
        self.stdReturn = stdReturn
        self.minReturn = minReturn
        self.maxReturn = maxReturn
        self.episodes = episodes
        self.successRate = successRate
    }

    /// "return −170.6 ± 96.1", with ", success 62.0 %" for tasks with a goal.
    public var summary: String {
        String(format: "return %.1f ± %.1f", meanReturn, stdReturn) + (successRate.map { String(format: ", success %.1f %%", 100 * $0) } ?? "")
    }
}

extension RunConfig {
    /// `count` environments of the task with the action-chunk wrapper, normalising with `normalization`
    /// (the policy's dataset statistics) or, when nil, the task's declared bounds.
    public func makeEnvironments(count: Int, seed: UInt64, normalization: Normalization?) throws -> VectorEnvironment {
        VectorEnvironment(batch: try environment.spec.makeBatch(count: count, seed: seed), conditionSteps: environment.conditionSteps,
                          actSteps: environment.actSteps, horizonSteps: environment.horizonSteps,
                          observationBounds: normalization.map { ($0.obsMin, $0.obsMax) },
                          actionBounds: normalization.map { ($0.actionMin, $0.actionMax) })
    }
}

/// Runs `episodes` full episodes (one per environment, all in parallel), deterministic sampling by default.
/// The environment seeds are fixed, so successive evaluations see the same initial states. This is the one
/// evaluation of the project: the learner's (`PolicyEvaluator`), `dppo eval` and the offline jobs all call it with
/// seed `seed + 7777`, so `dppo eval` on a run's checkpoint with its config repeats the run's own evaluation.
public func evaluatePolicy(_ policy: RolloutPolicy, config: RunConfig, normalization: Normalization?, episodes: Int, seed: UInt64,
                           mode: SamplingMode = .deterministic) throws -> EvaluationResult {
    let environments = try config.makeEnvironments(count: episodes, seed: seed, normalization: normalization)
    try environments.resetAll()
    var random = Philox(seed: seed, stream: 0xE7A1)
    let records = Matrix(rows: episodes, columns: policy.recordWidth)
    var returns = [Double?](repeating: nil, count: episodes)
    var successes = 0
    while returns.contains(where: { $0 == nil }) {
        policy.sample(observations: environments.observations, mode: mode, random: &random, records: records)
        try environments.step(chunks: records, offset: policy.actionOffset)
        for episode in environments.finishedEpisodes where returns[episode.environmentIndex] == nil {
            returns[episode.environmentIndex] = episode.totalReward
            if episode.success { successes += 1 }
        }
    }
    let values = returns.compactMap { $0 }
    let mean = values.reduce(0, +) / Double(values.count)
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
    return EvaluationResult(meanReturn: mean, stdReturn: variance.squareRoot(), minReturn: values.min() ?? .nan, maxReturn: values.max() ?? .nan,
                            episodes: values.count,
                            successRate: environments.batch.task.hasSuccessCriterion ? Double(successes) / Double(values.count) : nil)
}
