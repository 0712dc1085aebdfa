import XCTest
@testable import Algorithms
import Diffusion
import Networks
import Tensors

final class PPOUpdateTests: XCTestCase {
    func makeBatch(policy: DiffusionPolicy, streams: Int, steps: Int, seed: UInt64) -> RolloutBatch {
        let batch = RolloutBatch(streams: streams, steps: steps, observationWidth: 3, recordWidth: policy.settings.chainWidth)
        var random = Philox(seed: seed)
        random.fillUniform(batch.observations.data, count: batch.observations.count, low: -1, high: 1)
        random.fillUniform(batch.bootstrapObservations.data, count: batch.bootstrapObservations.count, low: -1, high: 1)
        policy.sampleChains(observations: batch.observations, mode: .exploration, random: &random, chains: batch.records)
        // Reward: how close the action's first coordinate is to the first observation coordinate.
        let action = policy.settings.fineTunedSteps * policy.settings.chunkWidth
        for row in 0..<batch.count {
            let difference = batch.records[row, action] - batch.observations[row, 0]
            batch.rewards[row] = -difference * difference
        }
        return batch
    }

    /// A small policy and critic (widths `width`), both initialised, and their DPPO update.
    func makeUpdate(denoisingSteps: Int, fineTunedSteps: Int, horizon: Int, width: Int, streams: Int,
                    configure: (inout PPOHyperparameters) -> Void) -> PPOUpdate {
        let settings = DenoisingSettings(denoisingSteps: denoisingSteps, fineTunedSteps: fineTunedSteps, horizonSteps: horizon, actSteps: horizon, actionDim: 1)
        let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 1, horizonSteps: horizon, observationDim: 3, timeDim: 8, mlpDims: [width, width, width]))
        var random = Philox(seed: 1)
        policy.initialize(random: &random)
        let critic = CriticMLP(observationDim: 3, mlpDims: [width, width, width])
        critic.initialize(random: &random)
        var hyperparameters = PPOHyperparameters()
        configure(&hyperparameters)
        return PPOUpdate(policy: policy, critic: critic, hyperparameters: hyperparameters, streams: streams, seed: 2)
    }

    /// Statistics of an update are consistent with PPO's definitions: ratios start at 1, the clipped
    /// surrogate moves the policy, KL stays small, the value loss falls as the critic fits the returns.
    func testUpdateMovesThePolicyAndFitsTheCritic() {
        let update = makeUpdate(denoisingSteps: 6, fineTunedSteps: 3, horizon: 2, width: 32, streams: 8) {
            $0.batchSize = 600
            $0.updateEpochs = 4
            $0.actorLearningRate = 1e-3
        }
        let policy = (update.actor as! DiffusionPPOActor).policy
        let before = Array(policy.fineTuned.parameters.valueBuffer)
        let base = Array(policy.base.parameters.valueBuffer)
        var valueLosses: [Double] = []
        for iteration in 0..<4 {
            let batch = makeBatch(policy: policy, streams: 8, steps: 50, seed: UInt64(10 + iteration))
            let statistics = update.update(batch: batch, iteration: iteration)
            XCTAssertEqual(statistics.minibatches, 4 * (8 * 50 * 3 / 600))
            XCTAssertTrue(statistics.losses.approxKL.isFinite && statistics.losses.approxKL >= 0)
            XCTAssertLessThan(statistics.losses.approxKL, 0.1)
            XCTAssertGreaterThan(statistics.losses.ratio, 0.9)
            valueLosses.append(statistics.losses.valueLoss)
        }
        XCTAssertNotEqual(Array(policy.fineTuned.parameters.valueBuffer), before, "the fine-tuned network must move")
        XCTAssertEqual(Array(policy.base.parameters.valueBuffer), base, "the base network is frozen")
        XCTAssertLessThan(valueLosses.last!, valueLosses.first!)
    }

    /// The critic warm-up leaves the actor untouched.
    func testCriticWarmupFreezesTheActor() {
        let update = makeUpdate(denoisingSteps: 4, fineTunedSteps: 2, horizon: 1, width: 8, streams: 4) {
            $0.batchSize = 100
            $0.criticWarmupIterations = 1
        }
        let policy = (update.actor as! DiffusionPPOActor).policy, critic = update.critic
        let before = Array(policy.fineTuned.parameters.valueBuffer)
        let criticBefore = Array(critic.parameters.valueBuffer)
        _ = update.update(batch: makeBatch(policy: policy, streams: 4, steps: 25, seed: 3), iteration: 0)
        XCTAssertEqual(Array(policy.fineTuned.parameters.valueBuffer), before)
        XCTAssertNotEqual(Array(critic.parameters.valueBuffer), criticBefore)
    }

    /// Quantile clipping clamps normalised advantages to the minibatch's quantiles, interpolated linearly.
    func testAdvantageQuantileClipping() {
        let settings = DenoisingSettings(denoisingSteps: 2, fineTunedSteps: 1, horizonSteps: 1, actSteps: 1, actionDim: 1)
        let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 1, horizonSteps: 1, observationDim: 3, timeDim: 4, mlpDims: [4, 4, 4]))
        var hyperparameters = PPOHyperparameters()
        hyperparameters.advantageLowerQuantile = 0.1
        hyperparameters.advantageUpperQuantile = 0.85
        let update = PPOUpdate(policy: policy, critic: CriticMLP(observationDim: 3, mlpDims: [4, 4, 4]), hyperparameters: hyperparameters, streams: 1, seed: 1)
        let normalized: [Float] = (0..<11).reversed().map(Float.init)
        let bounds = update.advantageQuantileBounds(size: 11) { normalized[$0] }
        XCTAssertEqual(bounds?.low, 1)
        XCTAssertEqual(bounds?.high, 8.5)
        hyperparameters.advantageLowerQuantile = 0
        hyperparameters.advantageUpperQuantile = 1
        update.hyperparameters = hyperparameters
        XCTAssertNil(update.advantageQuantileBounds(size: 11) { normalized[$0] }, "quantiles 0 and 1 clip nothing")
    }
}
