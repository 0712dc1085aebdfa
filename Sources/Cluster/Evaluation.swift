import Foundation
import Diffusion
import Environments
import Tensors

/// Mean and spread of evaluation episode returns.
public struct EvaluationResult: Sendable, Codable {
    public var meanReturn: Double
    public var stdReturn: Double
    public var episodes: Int
}

/// Runs `episodes` full episodes (one per environment, all in parallel) with deterministic sampling.
/// The environment seeds are fixed, so successive evaluations see the same initial states.
public func evaluatePolicy(_ policy: DiffusionPolicy, config: RunConfig, episodes: Int, seed: UInt64, mode: SamplingMode = .deterministic) -> EvaluationResult {
    let environments = VectorEnvironment(task: config.environment.task, count: episodes, seed: seed, conditionSteps: config.environment.conditionSteps,
                                         actSteps: config.environment.actSteps, horizonSteps: config.environment.horizonSteps)
    environments.resetAll()
    var random = Philox(seed: seed, stream: 0xE7A1)
    let chains = Matrix(rows: episodes, columns: policy.settings.chainWidth)
    var returns = [Double?](repeating: nil, count: episodes)
    let actionOffset = policy.settings.fineTunedSteps * policy.settings.chunkWidth
    while returns.contains(where: { $0 == nil }) {
        policy.sampleChains(observations: environments.observations, mode: mode, random: &random, chains: chains)
        environments.step(chunks: chains, offset: actionOffset)
        for episode in environments.finishedEpisodes where returns[episode.environmentIndex] == nil {
            returns[episode.environmentIndex] = episode.totalReward
        }
    }
    let values = returns.compactMap { $0 }
    let mean = values.reduce(0, +) / Double(values.count)
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
    return EvaluationResult(meanReturn: mean, stdReturn: variance.squareRoot(), episodes: values.count)
}
