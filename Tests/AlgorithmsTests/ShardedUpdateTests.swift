import XCTest
@testable import Algorithms
import Diffusion
import Networks
import Tensors

/// The data-parallel update (docs/learner-scaling.md): the same seed and shard count give the same bits, and different
/// shard counts agree to float rounding, for every pass that trains (DPPO actor and critic, the value and
/// old-log-probability passes, async behaviour weights, the Gaussian baseline, behaviour cloning).
final class ShardedUpdateTests: XCTestCase {
    static let settings = DenoisingSettings(denoisingSteps: 6, fineTunedSteps: 3, horizonSteps: 2, actSteps: 2, actionDim: 2)
    static let shape = DiffusionMLPShape(actionDim: 2, horizonSteps: 2, observationDim: 3, timeDim: 8, mlpDims: [32, 32, 32], activation: .mish)

    /// A policy, critic and update built from fixed seeds, so that two calls give identical starting points.
    func makeUpdate(shards: Int, configure: (inout PPOHyperparameters) -> Void = { _ in }) -> (PPOUpdate, DiffusionPolicy) {
        let policy = DiffusionPolicy(settings: Self.settings, network: Self.shape)
        var random = Philox(seed: 11)
        policy.initialize(random: &random)
        let critic = CriticMLP(observationDim: 3, mlpDims: [16, 16, 16])
        critic.initialize(random: &random)
        var hyperparameters = PPOHyperparameters()
        hyperparameters.batchSize = 450
        hyperparameters.updateEpochs = 3
        hyperparameters.actorLearningRate = 1e-3
        hyperparameters.targetKL = nil
        hyperparameters.logProbabilityBatchSize = 128
        configure(&hyperparameters)
        return (PPOUpdate(policy: policy, critic: critic, hyperparameters: hyperparameters, streams: 6, seed: 5, shards: shards), policy)
    }

    func makeBatch(policy: DiffusionPolicy, seed: UInt64) -> RolloutBatch {
        let batch = RolloutBatch(streams: 6, steps: 50, observationWidth: 3, recordWidth: Self.settings.chainWidth)
        var random = Philox(seed: seed)
        random.fillUniform(batch.observations.data, count: batch.observations.count, low: -1, high: 1)
        random.fillUniform(batch.bootstrapObservations.data, count: batch.bootstrapObservations.count, low: -1, high: 1)
        policy.sampleChains(observations: batch.observations, mode: .exploration, random: &random, chains: batch.records)
        let action = Self.settings.fineTunedSteps * Self.settings.chunkWidth
        for row in 0..<batch.count {
            let difference = batch.records[row, action] - batch.observations[row, 0]
            batch.rewards[row] = -difference * difference
            if row % 37 == 36 { batch.terminated[row] = 1 }
        }
        return batch
    }

    func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        XCTAssertEqual(a.count, b.count)
        var difference = 0.0, norm = 0.0
        for index in 0..<min(a.count, b.count) {
            difference += Double(a[index] - b[index]) * Double(a[index] - b[index])
            norm += Double(a[index]) * Double(a[index])
        }
        return (difference / max(norm, 1e-30)).squareRoot()
    }

    func gradients(_ parameters: Parameters) -> [Float] { Array(UnsafeBufferPointer(start: parameters.gradients, count: parameters.count)) }

    /// |a − b| ≤ 1e-5 relative, or relative to `scale` when that is larger (a policy loss is a mean of ±Â·ρ terms
    /// with normalised advantages, so its natural scale is 1 however close to 0 the mean falls).
    func assertClose(_ a: Double, _ b: Double, _ message: String, scale: Double = 1e-6, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(abs(a - b), 1e-5 * max(abs(a), abs(b), scale), "\(message): \(a) vs \(b)", file: file, line: line)
    }

    /// 1 shard against 4: the value and old-log-probability passes, one minibatch's losses and gradients, and the
    /// parameters after a whole update agree within 1e-5 relative.
    func testOneShardAgainstFour() {
        let (one, onePolicy) = makeUpdate(shards: 1)
        let (four, fourPolicy) = makeUpdate(shards: 4)
        XCTAssertEqual(four.shardCount, 4)
        let batch = makeBatch(policy: onePolicy, seed: 3)
        _ = one.prepare(batch: batch)
        _ = four.prepare(batch: batch)
        XCTAssertLessThan(relativeDifference(one.values, four.values), 1e-6, "values before the update")
        XCTAssertLessThan(relativeDifference(one.oldLogProbabilities, four.oldLogProbabilities), 1e-6, "old log-probabilities")
        XCTAssertLessThan(relativeDifference(one.advantages, four.advantages), 1e-5, "advantages")

        let pairs = batch.count * Self.settings.fineTunedSteps
        for update in [one, four] { update.random.permutation(&update.permutation, count: pairs) }
        XCTAssertEqual(one.permutation, four.permutation)
        let a = one.loss(batch: batch, pairs: 0..<450, includeActor: true)
        let b = four.loss(batch: batch, pairs: 0..<450, includeActor: true)
        assertClose(a.policyLoss, b.policyLoss, "policy loss", scale: 1)
        assertClose(a.valueLoss, b.valueLoss, "value loss")
        assertClose(a.approxKL, b.approxKL, "approx KL")
        assertClose(a.ratio, b.ratio, "ratio")
        assertClose(a.actorGradientNorm, b.actorGradientNorm, "actor gradient norm")
        assertClose(a.criticGradientNorm, b.criticGradientNorm, "critic gradient norm")
        XCTAssertEqual(a.clipFraction, b.clipFraction)
        XCTAssertGreaterThan(a.actorGradientNorm, 0)
        XCTAssertLessThan(relativeDifference(gradients(onePolicy.fineTuned.parameters), gradients(fourPolicy.fineTuned.parameters)), 1e-5)
        XCTAssertLessThan(relativeDifference(gradients(one.critic.parameters), gradients(four.critic.parameters)), 1e-5)

        let (freshOne, freshOnePolicy) = makeUpdate(shards: 1)
        let (freshFour, freshFourPolicy) = makeUpdate(shards: 4)
        let sa = freshOne.update(batch: batch, iteration: 0)
        let sb = freshFour.update(batch: batch, iteration: 0)
        XCTAssertEqual(sa.minibatches, sb.minibatches)
        assertClose(sa.losses.policyLoss, sb.losses.policyLoss, "mean policy loss of the update", scale: 1)
        assertClose(sa.losses.valueLoss, sb.losses.valueLoss, "mean value loss of the update")
        let after = Array(freshOnePolicy.fineTuned.parameters.valueBuffer)
        XCTAssertNotEqual(after, Array(onePolicy.fineTuned.parameters.valueBuffer), "the update moves the actor")
        XCTAssertLessThan(relativeDifference(after, Array(freshFourPolicy.fineTuned.parameters.valueBuffer)), 1e-5)
        XCTAssertLessThan(relativeDifference(Array(freshOne.critic.parameters.valueBuffer), Array(freshFour.critic.parameters.valueBuffer)), 1e-5)
    }

    /// The same seed and shard count, twice: bit-identical parameters, optimizer moments and statistics, with more shards
    /// than cores so that thread timing varies between the runs.
    func testSameShardCountIsBitIdentical() {
        func run() -> (actor: [Float], critic: [Float], moments: [Float], statistics: [PPOStatistics]) {
            let (update, policy) = makeUpdate(shards: 3) { $0.clipValueCoefficient = 0.2; $0.advantageUpperQuantile = 0.95 }
            var statistics: [PPOStatistics] = []
            for iteration in 0..<2 { statistics.append(update.update(batch: makeBatch(policy: policy, seed: 20 + UInt64(iteration)), iteration: iteration)) }
            return (Array(policy.fineTuned.parameters.valueBuffer), Array(update.critic.parameters.valueBuffer),
                    update.actorOptimizer.state().secondMoment, statistics)
        }
        let first = run(), second = run()
        XCTAssertTrue(first.actor.elementsEqual(second.actor) { $0.bitPattern == $1.bitPattern }, "actor parameters differ between runs")
        XCTAssertTrue(first.critic.elementsEqual(second.critic) { $0.bitPattern == $1.bitPattern }, "critic parameters differ between runs")
        XCTAssertTrue(first.moments.elementsEqual(second.moments) { $0.bitPattern == $1.bitPattern }, "Adam moments differ between runs")
        XCTAssertEqual(first.statistics, second.statistics)
    }

    /// `shouldStop` ends the update before the next minibatch, `abandoned`: asked before the first, nothing moves;
    /// asked after a few, exactly that many minibatches ran.
    func testAnUpdateStopsBeforeTheNextMinibatchWhenAsked() {
        let (update, policy) = makeUpdate(shards: 2) { $0.targetKL = nil; $0.updateEpochs = 3 }
        let batch = makeBatch(policy: policy, seed: 31)
        let before = Array(policy.fineTuned.parameters.valueBuffer)
        let stopped = update.update(batch: batch, iteration: 0, shouldStop: { true })
        XCTAssertTrue(stopped.abandoned)
        XCTAssertEqual(stopped.minibatches, 0)
        XCTAssertEqual(Array(policy.fineTuned.parameters.valueBuffer), before, "no minibatch ran")
        var asked = 0
        let partial = update.update(batch: batch, iteration: 0, shouldStop: { asked += 1; return asked > 2 })
        XCTAssertTrue(partial.abandoned)
        XCTAssertEqual(partial.minibatches, 2)
        let whole = update.update(batch: batch, iteration: 0)
        XCTAssertFalse(whole.abandoned)
        XCTAssertGreaterThan(whole.minibatches, 2)
    }

    /// Async mode: old log-probabilities under several behaviour snapshots agree between 1 and 3 shards, and the
    /// current weights are back in place afterwards.
    func testBehaviourLogProbabilitiesAcrossShards() {
        let (one, onePolicy) = makeUpdate(shards: 1)
        let (three, threePolicy) = makeUpdate(shards: 3)
        let batch = makeBatch(policy: onePolicy, seed: 8)
        var older = Array(onePolicy.fineTuned.parameters.valueBuffer)
        for index in older.indices where index % 5 == 0 { older[index] *= 0.9 }
        let behaviour = BehaviourPolicies(snapshots: [older], rowSnapshots: (0..<batch.count).map { $0 % 3 == 0 ? 0 : -1 })
        _ = one.prepare(batch: batch, behaviour: behaviour)
        _ = three.prepare(batch: batch, behaviour: behaviour)
        XCTAssertLessThan(relativeDifference(one.oldLogProbabilities, three.oldLogProbabilities), 1e-6)
        XCTAssertEqual(Array(onePolicy.fineTuned.parameters.valueBuffer), Array(threePolicy.fineTuned.parameters.valueBuffer))
        let (plain, _) = makeUpdate(shards: 3)
        _ = plain.prepare(batch: batch)
        XCTAssertGreaterThan(relativeDifference(plain.oldLogProbabilities, three.oldLogProbabilities), 1e-4,
                             "rows of the older snapshot are scored with its weights")
    }

    /// The Gaussian baseline through the same sharded update.
    func testGaussianBaselineAcrossShards() {
        func make(shards: Int) -> (PPOUpdate, GaussianPolicy) {
            let policy = GaussianPolicy(shape: GaussianMLPShape(actionDim: 2, horizonSteps: 2, observationDim: 3, mlpDims: [32, 32, 32]))
            var random = Philox(seed: 4)
            policy.initialize(random: &random)
            let critic = CriticMLP(observationDim: 3, mlpDims: [16, 16, 16])
            critic.initialize(random: &random)
            var hyperparameters = PPOHyperparameters()
            hyperparameters.batchSize = 100
            hyperparameters.updateEpochs = 2
            hyperparameters.targetKL = nil
            return (PPOUpdate(actor: policy, critic: critic, hyperparameters: hyperparameters, streams: 4, seed: 9, shards: shards), policy)
        }
        let (one, onePolicy) = make(shards: 1)
        let (three, threePolicy) = make(shards: 3)
        let batch = RolloutBatch(streams: 4, steps: 50, observationWidth: 3, recordWidth: onePolicy.recordWidth)
        var random = Philox(seed: 12)
        random.fillUniform(batch.observations.data, count: batch.observations.count, low: -1, high: 1)
        onePolicy.sample(observations: batch.observations, mode: .exploration, random: &random, records: batch.records)
        for row in 0..<batch.count { batch.rewards[row] = batch.records[row, 0] - batch.observations[row, 1] }
        let a = one.update(batch: batch, iteration: 0), b = three.update(batch: batch, iteration: 0)
        assertClose(a.losses.policyLoss, b.losses.policyLoss, "Gaussian policy loss", scale: 1)
        assertClose(a.losses.actorGradientNorm, b.losses.actorGradientNorm, "Gaussian actor gradient norm")
        XCTAssertLessThan(relativeDifference(Array(onePolicy.network.parameters.valueBuffer), Array(threePolicy.network.parameters.valueBuffer)), 1e-5)
        XCTAssertEqual(Array(onePolicy.base.parameters.valueBuffer), Array(threePolicy.base.parameters.valueBuffer))
    }

    /// Behaviour cloning (diffusion and Gaussian): loss and gradients of one minibatch agree between 1 and 3 shards.
    func testBehaviourCloningAcrossShards() {
        let observations = Matrix(rows: 50, columns: 3), chunks = Matrix(rows: 50, columns: Self.settings.chunkWidth)
        var data = Philox(seed: 2)
        data.fillUniform(observations.data, count: observations.count, low: -1, high: 1)
        data.fillUniform(chunks.data, count: chunks.count, low: -1, high: 1)

        func diffusion(shards: Int) -> (Double, [Float]) {
            let policy = DiffusionPolicy(settings: Self.settings, network: Self.shape)
            var random = Philox(seed: 6)
            policy.initialize(random: &random)
            let objective = DiffusionBehaviourCloning(policy: policy, shards: shards)
            var noise = Philox(seed: 1)
            let loss = objective.lossAndGradient(observations: observations, chunks: chunks, random: &noise)
            return (loss, gradients(policy.base.parameters))
        }
        let (l1, g1) = diffusion(shards: 1), (l3, g3) = diffusion(shards: 3)
        assertClose(l1, l3, "diffusion BC loss")
        XCTAssertLessThan(relativeDifference(g1, g3), 1e-5)
        XCTAssertGreaterThan(g1.map { abs($0) }.max() ?? 0, 0)

        func gaussian(shards: Int) -> (Double, [Float]) {
            let policy = GaussianPolicy(shape: GaussianMLPShape(actionDim: 2, horizonSteps: 2, observationDim: 3, mlpDims: [32, 32, 32]))
            var random = Philox(seed: 6)
            policy.initialize(random: &random)
            var unused = Philox(seed: 1)
            let loss = GaussianBehaviourCloning(policy: policy, shards: shards).lossAndGradient(observations: observations, chunks: chunks, random: &unused)
            return (loss, gradients(policy.network.parameters))
        }
        let (m1, h1) = gaussian(shards: 1), (m3, h3) = gaussian(shards: 3)
        assertClose(m1, m3, "Gaussian BC loss")
        XCTAssertLessThan(relativeDifference(h1, h3), 1e-5)
    }

    /// Chain sampling on 3 workers (the learner's evaluation): the random stream ends where one worker leaves it, and
    /// every chain matches the one-worker chain (the same noise per row; only products of other shapes round otherwise).
    func testShardedSamplerMatchesOneWorker() {
        let policy = DiffusionPolicy(settings: Self.settings, network: Self.shape)
        var random = Philox(seed: 11)
        policy.initialize(random: &random)
        let observations = Matrix(rows: 10, columns: 3)
        random.fillUniform(observations.data, count: observations.count, low: -1, high: 1)
        for mode in [SamplingMode.exploration, .deterministic] {
            var one = Philox(seed: 5), three = Philox(seed: 5)
            let expected = Matrix(rows: 0, columns: Self.settings.chainWidth), sharded = Matrix(rows: 0, columns: Self.settings.chainWidth)
            policy.sampleChains(observations: observations, mode: mode, random: &one, chains: expected)
            ShardedDiffusionSampler(policy: policy, shards: 3).sample(observations: observations, mode: mode, random: &three, records: sharded)
            XCTAssertEqual(one, three, "the random stream advances as with one worker")
            XCTAssertEqual(sharded.rows, 10)
            XCTAssertLessThan(relativeDifference(expected.toArray(), sharded.toArray()), 1e-6, "\(mode)")
        }
    }
}
