import Foundation
import Algorithms
import Diffusion
import Networks
import Tensors

/// A fixed small DPPO workload updated on `threads` workers in this process and on every rank of `group`: what
/// `dppo learner-rank-check` writes, so that tests can compare 1 rank with `mpirun -np N` on the same batch.
public struct RankCheckResult: Codable, Sendable {
    public var ranks: Int
    public var threads: Int
    public var actor: [Float]
    public var critic: [Float]
    public var policyLoss: [Double]
    public var valueLoss: [Double]
    public var checksum: UInt64
}

public func runRankCheck(threads: Int, group: RankGroup?, iterations: Int = 2) -> RankCheckResult {
    BLAS.setThreads(1)
    let settings = DenoisingSettings(denoisingSteps: 6, fineTunedSteps: 3, horizonSteps: 2, actSteps: 2, actionDim: 2)
    let shape = DiffusionMLPShape(actionDim: 2, horizonSteps: 2, observationDim: 3, timeDim: 8, mlpDims: [64, 64, 64], activation: .mish)
    let policy = DiffusionPolicy(settings: settings, network: shape)
    var random = Philox(seed: 11)
    policy.initialize(random: &random)
    let critic = CriticMLP(observationDim: 3, mlpDims: [32, 32, 32])
    critic.initialize(random: &random)
    var hyperparameters = PPOHyperparameters()
    hyperparameters.batchSize = 700
    hyperparameters.updateEpochs = 3
    hyperparameters.actorLearningRate = 1e-3
    hyperparameters.targetKL = nil
    hyperparameters.logProbabilityBatchSize = 200
    hyperparameters.clipValueCoefficient = 0.2
    let update = PPOUpdate(policy: policy, critic: critic, hyperparameters: hyperparameters, streams: 8, seed: 5, shards: threads, group: group)
    var result = RankCheckResult(ranks: group?.size ?? 1, threads: threads, actor: [], critic: [], policyLoss: [], valueLoss: [], checksum: 0)
    for iteration in 0..<iterations {
        let batch = RolloutBatch(streams: 8, steps: 60, observationWidth: 3, recordWidth: settings.chainWidth)
        var data = Philox(seed: 100 + UInt64(iteration))
        data.fillUniform(batch.observations.data, count: batch.observations.count, low: -1, high: 1)
        data.fillUniform(batch.bootstrapObservations.data, count: batch.bootstrapObservations.count, low: -1, high: 1)
        policy.sampleChains(observations: batch.observations, mode: .exploration, random: &data, chains: batch.records)
        let action = settings.fineTunedSteps * settings.chunkWidth
        for row in 0..<batch.count {
            let difference = batch.records[row, action] - batch.observations[row, 0]
            batch.rewards[row] = -difference * difference
            if row % 41 == 40 { batch.terminated[row] = 1 }
        }
        let statistics = update.update(batch: batch, iteration: iteration)
        result.policyLoss.append(statistics.losses.policyLoss)
        result.valueLoss.append(statistics.losses.valueLoss)
    }
    result.actor = Array(policy.fineTuned.parameters.valueBuffer)
    result.critic = Array(critic.parameters.valueBuffer)
    result.checksum = update.parameterChecksum()
    return result
}
