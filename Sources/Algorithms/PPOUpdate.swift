import Foundation
import Diffusion
import Networks
import Tensors

/// DPPO hyperparameters (docs/algorithms.md §4.6, §4.10). Defaults are the reference's Gym fine-tuning values.
public struct PPOHyperparameters: Sendable, Equatable, Codable {
    /// γ per decision (chunk) and GAE λ.
    public var gamma: Double = 0.99
    public var gaeLambda: Double = 0.95
    /// γ_d: the advantage at denoising step t is scaled by γ_d^t.
    public var gammaDenoising: Double = 0.99
    /// ε for the final denoising step, ε_base for the noisiest fine-tuned step, κ the exponential rate between them.
    public var clipCoefficient: Double = 0.01
    public var clipCoefficientBase: Double = 0.001
    public var clipCoefficientRate: Double = 3
    public var valueCoefficient: Double = 0.5
    /// Clip V_new to V_old ± this in the value loss (`clip_vloss_coef`; nil: the plain squared error).
    public var clipValueCoefficient: Double? = nil
    /// Weight of the behaviour-cloning regulariser of §4.7 (`bc_loss_coeff`; 0: off, as in every DPPO config).
    public var bcCoefficient: Double = 0
    /// Stop the update phase when approx_kl exceeds this (nil: never).
    public var targetKL: Double? = 1
    public var updateEpochs: Int = 5
    /// Minibatch size in (decision, denoising step) pairs.
    public var batchSize: Int = 50_000
    public var actorLearningRate: Double = 1e-4
    public var criticLearningRate: Double = 1e-3
    public var actorWeightDecay: Double = 0
    public var criticWeightDecay: Double = 0
    public var maxGradientNorm: Double? = nil
    public var rewardScaleRunning: Bool = true
    public var rewardScaleConstant: Double = 1
    /// The actor is not stepped during the first iterations, so the fresh critic can catch up.
    public var criticWarmupIterations: Int = 0
    public var truncation: TruncationHandling = .bootstrap
    /// Normalised advantages are clamped to these quantiles of the minibatch (0 and 1: no clipping).
    public var advantageLowerQuantile: Double = 0
    public var advantageUpperQuantile: Double = 1
    /// Cosine-with-warmup schedules of the actor and critic learning rates, stepped once per iteration
    /// (`actor_lr_scheduler`, `critic_lr_scheduler`; nil: constant, which is what every reference config amounts to).
    public var actorSchedule: LearningRateSchedule? = nil
    public var criticSchedule: LearningRateSchedule? = nil
    /// Rows per forward pass when computing values and old log-probabilities.
    public var logProbabilityBatchSize: Int = 10_000

    public init() {}

    /// ε_j for chain index j (docs/algorithms.md §4.6 step 5); constant ε when K′ = 1.
    public func clipCoefficient(chainIndex j: Int, fineTunedSteps: Int) -> Double {
        guard fineTunedSteps > 1 else { return clipCoefficient }
        let u = Double(j) / Double(fineTunedSteps - 1)
        return clipCoefficientBase + (clipCoefficient - clipCoefficientBase) * (exp(clipCoefficientRate * u) - 1) / (exp(clipCoefficientRate) - 1)
    }

    /// γ_d^t for chain index j, t = K′−1−j.
    public func denoisingDiscount(chainIndex j: Int, fineTunedSteps: Int) -> Double {
        pow(gammaDenoising, Double(fineTunedSteps - 1 - j))
    }
}

/// A `CosineAnnealingWarmupRestarts` schedule from the configured learning rate down to `minLearningRate` (docs/algorithms.md §4.9).
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public var firstCycleSteps: Int
    public var warmupSteps: Int
    public var minLearningRate: Double
    public init(firstCycleSteps: Int, warmupSteps: Int, minLearningRate: Double) {
        self.firstCycleSteps = firstCycleSteps
        self.warmupSteps = warmupSteps
        self.minLearningRate = minLearningRate
    }
    /// The learning rate after `step` scheduler steps when the peak is `maxLearningRate`.
    public func learningRate(step: Int, maxLearningRate: Double) -> Double {
        CosineWarmupSchedule(maxLearningRate: maxLearningRate, minLearningRate: minLearningRate,
                             firstCycleSteps: firstCycleSteps, warmupSteps: warmupSteps).learningRate(step: step)
    }
}

/// Diagnostics of one update, as the reference logs them.
public struct PPOStatistics: Sendable, Equatable {
    /// Policy, value and BC losses and the clip fraction averaged over the minibatches; approx_kl, the ratio
    /// and the gradient norms of the last minibatch.
    public var losses = PPOLossTerms()
    public var explainedVariance = 0.0
    public var minibatches = 0
    public var stoppedEarly = false
    public var actorLearningRate = 0.0
    public var criticLearningRate = 0.0
    public var meanScaledReward = 0.0
    public var meanAdvantage = 0.0
    public init() {}
}

/// The learner's PPO update (docs/algorithms.md §4.5–4.6): values, reward scaling, GAE, old log-probs, then PPO epochs over
/// (decision × likelihood term) pairs. With a diffusion policy the terms are its K′ fine-tuned denoising steps
/// (DPPO); with a Gaussian policy there is one per decision (the baseline of §6).
public final class PPOUpdate {
    public let actor: PPOActor
    public let critic: CriticMLP
    public var hyperparameters: PPOHyperparameters
    public let actorOptimizer: Adam
    public let criticOptimizer: Adam
    public var rewardScaler: RunningRewardScaler?
    public var random: Philox
    /// Scheduler steps taken so far; the actor's only count iterations after the critic warm-up (docs/algorithms.md §8.14).
    public var actorScheduleSteps = 0
    public var criticScheduleSteps = 0

    // Per-iteration buffers (sized on first use, reused afterwards).
    var values: [Float] = [], nextValues: [Float] = [], advantages: [Float] = [], returns: [Float] = []
    var oldLogProbabilities: [Float] = []
    var permutation: [Int] = []
    // Per-minibatch buffers.
    public let minibatch: PPOMinibatch
    let criticObservations: Matrix, criticGradient: Matrix, teacherObservations: Matrix
    var newLogProbabilities: [Float] = [], logProbabilityGradient: [Float] = [], scratchAdvantages: [Float] = []

    /// DPPO: PPO over the fine-tuned denoising steps of `policy`.
    public convenience init(policy: DiffusionPolicy, critic: CriticMLP, hyperparameters: PPOHyperparameters, streams: Int, seed: UInt64) {
        self.init(actor: DiffusionPPOActor(policy: policy), critic: critic, hyperparameters: hyperparameters, streams: streams, seed: seed)
    }

    public init(actor: PPOActor, critic: CriticMLP, hyperparameters: PPOHyperparameters, streams: Int, seed: UInt64) {
        self.actor = actor
        self.critic = critic
        self.hyperparameters = hyperparameters
        actorOptimizer = Adam(parameters: actor.trainableParameters, learningRate: Float(hyperparameters.actorLearningRate),
                              weightDecay: Float(hyperparameters.actorWeightDecay), maxGradientNorm: hyperparameters.maxGradientNorm.map(Float.init))
        criticOptimizer = Adam(parameters: critic.parameters, learningRate: Float(hyperparameters.criticLearningRate),
                               weightDecay: Float(hyperparameters.criticWeightDecay))
        rewardScaler = hyperparameters.rewardScaleRunning ? RunningRewardScaler(streams: streams) : nil
        random = Philox(seed: seed, stream: 0xD990)
        let observationWidth = critic.observationDim
        minibatch = PPOMinibatch(observationWidth: observationWidth, chunkWidth: actor.termWidth)
        criticObservations = Matrix(rows: 0, columns: observationWidth)
        criticGradient = Matrix(rows: 0, columns: 1)
        teacherObservations = Matrix(rows: 0, columns: observationWidth)
    }

    /// Runs the whole update for one iteration's batch. `iteration` gates the critic warm-up.
    /// `behaviour`: the weights that sampled the decisions when some were sampled by older weights (the cluster's
    /// async mode); nil: every decision was sampled by the current weights, which then give the old log-probabilities.
    public func update(batch: RolloutBatch, iteration: Int, behaviour: BehaviourPolicies? = nil) -> PPOStatistics {
        var statistics = prepare(batch: batch, behaviour: behaviour)
        let n = batch.count
        let pairs = n * actor.termsPerDecision
        // 5. PPO epochs over pairs.
        let minibatchSize = min(hyperparameters.batchSize, pairs)
        let minibatchCount = pairs / minibatchSize
        let actorSteps = iteration >= hyperparameters.criticWarmupIterations
        applyLearningRateSchedules()
        statistics.actorLearningRate = Double(actorOptimizer.learningRate)
        statistics.criticLearningRate = Double(criticOptimizer.learningRate)
        var clipFractionSum = 0.0, policyLossSum = 0.0, valueLossSum = 0.0, bcLossSum = 0.0
        epochs: for _ in 0..<hyperparameters.updateEpochs {
            random.permutation(&permutation, count: pairs)
            for minibatch in 0..<minibatchCount {
                let range = (minibatch * minibatchSize)..<((minibatch + 1) * minibatchSize)
                let result = updateMinibatch(batch: batch, range: range, stepActor: actorSteps)
                statistics.minibatches += 1
                clipFractionSum += result.clipFraction
                policyLossSum += result.policyLoss
                valueLossSum += result.valueLoss
                bcLossSum += result.bcLoss
                statistics.losses.approxKL = result.approxKL
                statistics.losses.ratio = result.ratio
                statistics.losses.actorGradientNorm = result.actorGradientNorm
                statistics.losses.criticGradientNorm = result.criticGradientNorm
                if let target = hyperparameters.targetKL, result.approxKL > target {
                    statistics.stoppedEarly = true
                    break epochs
                }
            }
        }
        if actorSteps { actorScheduleSteps += 1 }
        criticScheduleSteps += 1
        let done = Double(max(statistics.minibatches, 1))
        statistics.losses.clipFraction = clipFractionSum / done
        statistics.losses.policyLoss = policyLossSum / done
        statistics.losses.valueLoss = valueLossSum / done
        statistics.losses.bcLoss = bcLossSum / done
        return statistics
    }

    func applyLearningRateSchedules() {
        if let schedule = hyperparameters.actorSchedule {
            actorOptimizer.learningRate = Float(schedule.learningRate(step: actorScheduleSteps, maxLearningRate: hyperparameters.actorLearningRate))
        }
        if let schedule = hyperparameters.criticSchedule {
            criticOptimizer.learningRate = Float(schedule.learningRate(step: criticScheduleSteps, maxLearningRate: hyperparameters.criticLearningRate))
        }
    }

    /// Steps 1–4 of the update: values, reward scaling, GAE, and old log-probabilities of every transition, taken with
    /// `behaviour`'s weights when given (see `update`).
    public func prepare(batch: RolloutBatch, behaviour: BehaviourPolicies? = nil) -> PPOStatistics {
        var statistics = PPOStatistics()
        let n = batch.count
        prepareBuffers(count: n)

        // 1. Values before the update, and the value of whatever follows each decision.
        evaluateValues(batch.observations, into: &values)
        var bootstrapValues: [Float] = []
        evaluateValues(batch.bootstrapObservations, into: &bootstrapValues)
        for stream in 0..<batch.streams {
            for step in 0..<batch.steps {
                let index = batch.row(stream: stream, step: step)
                nextValues[index] = step + 1 < batch.steps ? values[index + 1] : bootstrapValues[stream]
            }
        }
        if hyperparameters.truncation == .bootstrap {
            let truncatedRows = (0..<n).filter { batch.truncated[$0] != 0 && batch.terminated[$0] == 0 }
            if !truncatedRows.isEmpty {
                let finals = Matrix(rows: truncatedRows.count, columns: critic.observationDim)
                for (slot, row) in truncatedRows.enumerated() {
                    finals.row(slot).update(from: batch.finalObservations.row(row), count: critic.observationDim)
                }
                var finalValues: [Float] = []
                evaluateValues(finals, into: &finalValues)
                for (slot, row) in truncatedRows.enumerated() { nextValues[row] = finalValues[slot] }
            }
        }

        // 2. Reward scaling, then 3. GAE per stream.
        var rewards = batch.rewards
        if var scaler = rewardScaler {
            rewards.withUnsafeMutableBufferPointer { scaler.scale(rewards: $0.baseAddress!, firsts: batch.firsts, streams: batch.streams, steps: batch.steps) }
            rewardScaler = scaler
        }
        if hyperparameters.rewardScaleConstant != 1 {
            for index in 0..<n { rewards[index] *= Float(hyperparameters.rewardScaleConstant) }
        }
        statistics.meanScaledReward = rewards.reduce(0) { $0 + Double($1) } / Double(n)
        for stream in 0..<batch.streams {
            let start = stream * batch.steps
            rewards.withUnsafeBufferPointer { r in values.withUnsafeBufferPointer { v in nextValues.withUnsafeBufferPointer { nv in
            batch.terminated.withUnsafeBufferPointer { term in batch.truncated.withUnsafeBufferPointer { trunc in
            advantages.withUnsafeMutableBufferPointer { a in returns.withUnsafeMutableBufferPointer { ret in
                generalizedAdvantages(rewards: r.baseAddress! + start, values: v.baseAddress! + start, nextValues: nv.baseAddress! + start,
                                      terminated: term.baseAddress! + start, truncated: trunc.baseAddress! + start, count: batch.steps,
                                      gamma: Float(hyperparameters.gamma), lambda: Float(hyperparameters.gaeLambda), truncation: hyperparameters.truncation,
                                      advantages: a.baseAddress! + start, returns: ret.baseAddress! + start)
            } } } } } } }
        }
        statistics.meanAdvantage = advantages.prefix(n).reduce(0) { $0 + Double($1) } / Double(n)
        statistics.explainedVariance = explainedVariance(values: values, returns: returns, count: n)

        // 4. Old log-probabilities of every fine-tuned transition, with the weights that sampled them.
        let pairs = n * actor.termsPerDecision
        if let behaviour {
            behaviourLogProbabilities(batch: batch, behaviour: behaviour)
            return statistics
        }
        var start = 0
        while start < pairs {
            let end = min(pairs, start + hyperparameters.logProbabilityBatchSize)
            gatherMinibatch(batch: batch, pairs: start..<end, fromPermutation: false)
            oldLogProbabilities.withUnsafeMutableBufferPointer { actor.logProbabilities(minibatch, into: $0.baseAddress! + start) }
            start = end
        }

        return statistics
    }

    /// Step 4 when decisions came from several versions: each snapshot's decisions are evaluated with that snapshot's
    /// weights loaded into the actor, then the current weights are put back.
    func behaviourLogProbabilities(batch: RolloutBatch, behaviour: BehaviourPolicies) {
        let parameters = actor.trainableParameters
        let current = Array(parameters.valueBuffer)
        defer { parameters.values.update(from: current, count: parameters.count) }
        let termCount = actor.termsPerDecision
        var scratch: [Float] = []
        for snapshot in -1..<behaviour.snapshots.count {
            let rows = (0..<batch.count).filter { behaviour.rowSnapshots[$0] == snapshot }
            guard !rows.isEmpty else { continue }
            let weights = snapshot < 0 ? current : behaviour.snapshots[snapshot]
            precondition(weights.count == parameters.count, "behaviour weights do not match the actor's parameters")
            parameters.values.update(from: weights, count: parameters.count)
            let pairs = rows.flatMap { row in (0..<termCount).map { row * termCount + $0 } }
            var start = 0
            while start < pairs.count {
                let end = min(pairs.count, start + hyperparameters.logProbabilityBatchSize)
                gatherMinibatch(batch: batch, pairList: pairs[start..<end])
                if scratch.count < end - start { scratch = [Float](repeating: 0, count: end - start) }
                scratch.withUnsafeMutableBufferPointer { actor.logProbabilities(minibatch, into: $0.baseAddress!) }
                for (slot, pair) in pairs[start..<end].enumerated() { oldLogProbabilities[pair] = scratch[slot] }
                start = end
            }
        }
    }

    /// One minibatch of the first `batchSize` pairs in a fresh permutation (benchmarks use this).
    @discardableResult
    public func trainOneMinibatch(batch: RolloutBatch) -> Double {
        let pairs = batch.count * actor.termsPerDecision
        random.permutation(&permutation, count: pairs)
        return updateMinibatch(batch: batch, range: 0..<min(hyperparameters.batchSize, pairs), stepActor: true).approxKL
    }

    func updateMinibatch(batch: RolloutBatch, range: Range<Int>, stepActor: Bool) -> PPOLossTerms {
        gatherMinibatch(batch: batch, pairs: range)
        let terms = computeLoss(minibatch, includeActor: stepActor)
        if stepActor { actorOptimizer.update() }
        criticOptimizer.update()
        return terms
    }

    /// The DPPO loss of one minibatch and its gradients (docs/algorithms.md §4.6 steps 1–9):
    /// L = L_pg + vf_coef·L_v (+ bc_coef·L_bc). Leaves ∂L/∂θ in the fine-tuned network's gradients (when
    /// `includeActor`) and ∂L/∂φ in the critic's; steps no optimizer.
    public func computeLoss(_ minibatch: PPOMinibatch, includeActor: Bool = true) -> PPOLossTerms {
        var terms = PPOLossTerms()
        let size = minibatch.count
        let decisions = minibatch.distinctDecisions()
        if scratchAdvantages.count < size {
            scratchAdvantages = [Float](repeating: 0, count: size)
            newLogProbabilities = [Float](repeating: 0, count: size)
            logProbabilityGradient = [Float](repeating: 0, count: size)
        }

        // 1–3. Advantages: normalised over the minibatch (unbiased std), clipped to quantiles, then discounted by γ_d^t.
        var mean = 0.0
        for slot in 0..<size { mean += Double(minibatch.advantages[slot]) }
        mean /= Double(size)
        var variance = 0.0
        for slot in 0..<size { let d = Double(minibatch.advantages[slot]) - mean; variance += d * d }
        let std = (variance / Double(max(size - 1, 1))).squareRoot()
        for slot in 0..<size { scratchAdvantages[slot] = Float((Double(minibatch.advantages[slot]) - mean) / (std + 1e-8)) }
        clipAdvantagesToQuantiles(count: size)
        for slot in 0..<size {
            scratchAdvantages[slot] *= Float(actor.advantageScale(term: minibatch.terms[slot], hyperparameters: hyperparameters))
        }

        // 4–6. Clipped surrogate on the ratio of mean transition log-likelihoods.
        actor.trainableParameters.zeroGradients()
        newLogProbabilities.withUnsafeMutableBufferPointer { actor.logProbabilities(minibatch, into: $0.baseAddress!) }
        var klSum = 0.0, clipped = 0, ratioSum = 0.0, loss = 0.0
        for slot in 0..<size {
            let logRatio = Double(newLogProbabilities[slot]) - Double(minibatch.oldLogProbabilities[slot])
            let ratio = exp(logRatio)
            let epsilon = actor.clipCoefficient(term: minibatch.terms[slot], hyperparameters: hyperparameters)
            let advantage = Double(scratchAdvantages[slot])
            let unclipped = -advantage * ratio
            let clippedLoss = -advantage * min(max(ratio, 1 - epsilon), 1 + epsilon)
            loss += max(unclipped, clippedLoss)
            let inside = ratio >= 1 - epsilon && ratio <= 1 + epsilon
            // d/dℓ_new of max(−Âρ, −Â·clip(ρ)): −Âρ when the unclipped term is active (or both are), else 0.
            logProbabilityGradient[slot] = (inside || unclipped > clippedLoss) ? Float(-advantage * ratio / Double(size)) : 0
            klSum += (ratio - 1) - logRatio
            if abs(ratio - 1) > epsilon { clipped += 1 }
            ratioSum += ratio
        }
        terms.policyLoss = loss / Double(size)
        terms.approxKL = klSum / Double(size)
        terms.clipFraction = Double(clipped) / Double(size)
        terms.ratio = ratioSum / Double(size)
        if includeActor {
            logProbabilityGradient.withUnsafeBufferPointer { actor.backwardLogProbabilities(gradient: $0.baseAddress!) }
            if hyperparameters.bcCoefficient > 0 {
                teacherObservations.resize(rows: decisions.count)
                for (slot, first) in decisions.enumerated() {
                    teacherObservations.row(slot).update(from: minibatch.observations.row(first.pair), count: critic.observationDim)
                }
                terms.bcLoss = actor.accumulateBehaviourCloningLoss(observations: teacherObservations, weights: decisions.map { $0.multiplicity / Float(size) },
                                                                    coefficient: hyperparameters.bcCoefficient, random: &random)
            }
            terms.actorGradientNorm = actor.trainableParameters.gradientNorm()
        }

        // 7. Value loss ½·mean over pairs of (V − R)² (or its clipped form), evaluated once per distinct decision
        //    with that decision's multiplicity: the same value and gradient as the per-pair form, with K′× fewer rows.
        criticObservations.resize(rows: decisions.count)
        for (slot, first) in decisions.enumerated() {
            criticObservations.row(slot).update(from: minibatch.observations.row(first.pair), count: critic.observationDim)
        }
        critic.parameters.zeroGradients()
        let predicted = critic.forward(criticObservations)
        criticGradient.resize(rows: decisions.count)
        var valueLoss = 0.0
        let scale = Float(hyperparameters.valueCoefficient) / Float(size)
        for (slot, first) in decisions.enumerated() {
            let value = predicted.data[slot], target = minibatch.returns[first.pair]
            var error = value - target
            var squared = error * error
            if let limit = hyperparameters.clipValueCoefficient.map(Float.init) {
                let old = minibatch.oldValues[first.pair]
                let clippedValue = old + min(max(value - old, -limit), limit)
                let clippedError = clippedValue - target
                if clippedError * clippedError > squared {
                    squared = clippedError * clippedError
                    error = abs(value - old) <= limit ? clippedError : 0
                }
            }
            valueLoss += 0.5 * Double(first.multiplicity) * Double(squared)
            criticGradient.data[slot] = scale * first.multiplicity * error
        }
        terms.valueLoss = valueLoss / Double(size)
        critic.backward(input: criticObservations, outputGradient: criticGradient)
        terms.criticGradientNorm = critic.parameters.gradientNorm()
        return terms
    }

    /// Clamps the minibatch's normalised advantages to their [lower, upper] quantiles (linear interpolation, as torch.quantile).
    func clipAdvantagesToQuantiles(count: Int) {
        let lower = hyperparameters.advantageLowerQuantile, upper = hyperparameters.advantageUpperQuantile
        guard lower > 0 || upper < 1 else { return }
        let sorted = scratchAdvantages[0..<count].sorted()
        func quantile(_ q: Double) -> Float {
            let position = q * Double(count - 1)
            let below = Int(position.rounded(.down)), above = min(below + 1, count - 1)
            let fraction = Float(position - Double(below))
            return sorted[below] + (sorted[above] - sorted[below]) * fraction
        }
        let low = quantile(lower), high = quantile(upper)
        for slot in 0..<count { scratchAdvantages[slot] = min(max(scratchAdvantages[slot], low), high) }
    }

    /// Fills `minibatch` with pairs p in `pairs` (p → decision p / terms, term p % terms), taken through the
    /// current permutation when `fromPermutation`.
    func gatherMinibatch(batch: RolloutBatch, pairs: Range<Int>, fromPermutation: Bool = true) {
        gatherMinibatch(batch: batch, count: pairs.count) { fromPermutation ? permutation[pairs.lowerBound + $0] : pairs.lowerBound + $0 }
    }

    /// Fills `minibatch` with the listed pairs.
    func gatherMinibatch(batch: RolloutBatch, pairList: ArraySlice<Int>) {
        let first = pairList.startIndex
        gatherMinibatch(batch: batch, count: pairList.count) { pairList[first + $0] }
    }

    func gatherMinibatch(batch: RolloutBatch, count: Int, pairAt: (Int) -> Int) {
        let termCount = actor.termsPerDecision
        let observationWidth = critic.observationDim
        minibatch.resize(count)
        for slot in 0..<count {
            let pair = pairAt(slot)
            let sample = pair / termCount, j = pair % termCount
            actor.gather(record: batch.records.row(sample), term: j, slot: slot, into: minibatch)
            minibatch.observations.row(slot).update(from: batch.observations.row(sample), count: observationWidth)
            minibatch.terms.append(j)
            minibatch.decisions.append(sample)
            minibatch.returns.append(returns[sample])
            minibatch.oldValues.append(values[sample])
            minibatch.advantages.append(advantages[sample])
            minibatch.oldLogProbabilities.append(oldLogProbabilities.isEmpty ? 0 : oldLogProbabilities[pair])
        }
    }

    func prepareBuffers(count n: Int) {
        let pairs = n * actor.termsPerDecision
        if values.count != n {
            values = [Float](repeating: 0, count: n)
            nextValues = [Float](repeating: 0, count: n)
            advantages = [Float](repeating: 0, count: n)
            returns = [Float](repeating: 0, count: n)
        }
        if oldLogProbabilities.count != pairs { oldLogProbabilities = [Float](repeating: 0, count: pairs) }
    }

    /// Critic values for every row of `observations`, in chunks.
    public func evaluateValues(_ observations: Matrix, into result: inout [Float]) {
        if result.count != observations.rows { result = [Float](repeating: 0, count: observations.rows) }
        let chunk = hyperparameters.logProbabilityBatchSize
        let slice = Matrix(rows: 0, columns: observations.columns)
        var start = 0
        while start < observations.rows {
            let end = min(observations.rows, start + chunk)
            slice.resize(rows: end - start)
            slice.data.update(from: observations.row(start), count: (end - start) * observations.columns)
            let output = critic.forward(slice)
            for row in 0..<(end - start) { result[start + row] = output.data[row] }
            start = end
        }
    }

    func explainedVariance(values: [Float], returns: [Float], count: Int) -> Double {
        let meanReturn = returns.prefix(count).reduce(0) { $0 + Double($1) } / Double(count)
        let varianceReturn = returns.prefix(count).reduce(0) { $0 + (Double($1) - meanReturn) * (Double($1) - meanReturn) } / Double(count)
        let residuals = (0..<count).map { Double(returns[$0] - values[$0]) }
        let meanResidual = residuals.reduce(0, +) / Double(count)
        let varianceResidual = residuals.reduce(0) { $0 + ($1 - meanResidual) * ($1 - meanResidual) } / Double(count)
        return varianceReturn == 0 ? .nan : 1 - varianceResidual / varianceReturn
    }
}

/// Which weights sampled each decision of a batch: `snapshots` are copies of the actor's trainable parameter values
/// (older policy versions), and `rowSnapshots[row]` indexes them, or is −1 for the current weights.
public struct BehaviourPolicies {
    public var snapshots: [[Float]]
    public var rowSnapshots: [Int]
    public init(snapshots: [[Float]], rowSnapshots: [Int]) {
        self.snapshots = snapshots
        self.rowSnapshots = rowSnapshots
    }
}
