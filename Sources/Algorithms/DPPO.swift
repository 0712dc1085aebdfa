import Foundation
import Diffusion
import Networks
import Tensors

/// DPPO hyperparameters (dppo.md §4.6, §4.10). Defaults are the reference's Gym fine-tuning values.
public struct DPPOHyperparameters: Sendable, Equatable, Codable {
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
    /// Rows per forward pass when computing values and old log-probabilities.
    public var logProbabilityBatchSize: Int = 10_000

    public init() {}

    /// ε_j for chain index j (dppo.md §4.6 step 5); constant ε when K′ = 1.
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

/// Diagnostics of one DPPO update, named as the reference logs them.
public struct DPPOStatistics: Sendable, Equatable, Codable {
    public var policyLoss = 0.0
    public var valueLoss = 0.0
    public var approxKL = 0.0
    public var clipFraction = 0.0
    public var ratio = 0.0
    public var explainedVariance = 0.0
    public var actorGradientNorm = 0.0
    public var criticGradientNorm = 0.0
    public var minibatches = 0
    public var stoppedEarly = false
    public var meanScaledReward = 0.0
    public var meanAdvantage = 0.0
    public init() {}
}

/// The DPPO learner's update (dppo.md §4.5–4.6): values, reward scaling, GAE, old log-probs,
/// then PPO epochs over (decision × fine-tuned denoising step) pairs.
public final class DPPOUpdate {
    public let policy: DiffusionPolicy
    public let critic: CriticMLP
    public var hyperparameters: DPPOHyperparameters
    public let actorOptimizer: Adam
    public let criticOptimizer: Adam
    public var rewardScaler: RunningRewardScaler?
    public var random: Philox

    // Per-iteration buffers (sized on first use, reused afterwards).
    var values: [Float] = [], nextValues: [Float] = [], advantages: [Float] = [], returns: [Float] = []
    var oldLogProbabilities: [Float] = []
    var permutation: [Int] = []
    // Per-minibatch buffers.
    let transitionInputs: Matrix, transitionOutputs: Matrix, transitionObservations: Matrix
    let criticObservations: Matrix, criticGradient: Matrix
    var transitionTimesteps: [Int] = [], transitionChainIndex: [Int] = [], transitionSample: [Int] = []
    var newLogProbabilities: [Float] = [], logProbabilityGradient: [Float] = [], minibatchAdvantages: [Float] = []
    var uniqueSamples: [Int] = [], sampleMultiplicity: [Float] = [], sampleStamp: [Int] = []
    var minibatchCounter = 0

    public init(policy: DiffusionPolicy, critic: CriticMLP, hyperparameters: DPPOHyperparameters, streams: Int, seed: UInt64) {
        self.policy = policy
        self.critic = critic
        self.hyperparameters = hyperparameters
        actorOptimizer = Adam(parameters: policy.fineTuned.parameters, learningRate: Float(hyperparameters.actorLearningRate),
                              weightDecay: Float(hyperparameters.actorWeightDecay), maxGradientNorm: hyperparameters.maxGradientNorm.map(Float.init))
        criticOptimizer = Adam(parameters: critic.parameters, learningRate: Float(hyperparameters.criticLearningRate),
                               weightDecay: Float(hyperparameters.criticWeightDecay))
        rewardScaler = hyperparameters.rewardScaleRunning ? RunningRewardScaler(streams: streams) : nil
        random = Philox(seed: seed, stream: 0xD990)
        let width = policy.settings.chunkWidth
        let observationWidth = critic.observationDim
        transitionInputs = Matrix(rows: 0, columns: width)
        transitionOutputs = Matrix(rows: 0, columns: width)
        transitionObservations = Matrix(rows: 0, columns: observationWidth)
        criticObservations = Matrix(rows: 0, columns: observationWidth)
        criticGradient = Matrix(rows: 0, columns: 1)
    }

    /// Runs the whole update for one iteration's batch. `iteration` gates the critic warm-up.
    public func update(batch: RolloutBatch, iteration: Int) -> DPPOStatistics {
        var statistics = prepare(batch: batch)
        let n = batch.count
        let kPrime = policy.settings.fineTunedSteps
        let pairs = n * kPrime
        // 5. PPO epochs over pairs.
        let minibatchSize = min(hyperparameters.batchSize, pairs)
        let minibatchCount = pairs / minibatchSize
        let actorSteps = iteration >= hyperparameters.criticWarmupIterations
        var clipFractionSum = 0.0, policyLossSum = 0.0, valueLossSum = 0.0
        epochs: for _ in 0..<hyperparameters.updateEpochs {
            random.permutation(&permutation, count: pairs)
            for minibatch in 0..<minibatchCount {
                let range = (minibatch * minibatchSize)..<((minibatch + 1) * minibatchSize)
                let result = updateMinibatch(batch: batch, range: range, stepActor: actorSteps)
                statistics.minibatches += 1
                clipFractionSum += result.clipFraction
                policyLossSum += result.policyLoss
                valueLossSum += result.valueLoss
                statistics.approxKL = result.approxKL
                statistics.ratio = result.ratio
                statistics.actorGradientNorm = result.actorGradientNorm
                statistics.criticGradientNorm = result.criticGradientNorm
                if let target = hyperparameters.targetKL, result.approxKL > target {
                    statistics.stoppedEarly = true
                    break epochs
                }
            }
        }
        let done = Double(max(statistics.minibatches, 1))
        statistics.clipFraction = clipFractionSum / done
        statistics.policyLoss = policyLossSum / done
        statistics.valueLoss = valueLossSum / done
        return statistics
    }

    /// Steps 1–4 of the update: values, reward scaling, GAE, and old log-probabilities of every transition.
    public func prepare(batch: RolloutBatch) -> DPPOStatistics {
        var statistics = DPPOStatistics()
        let n = batch.count
        let kPrime = policy.settings.fineTunedSteps
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
        let pairs = n * kPrime
        var start = 0
        while start < pairs {
            let end = min(pairs, start + hyperparameters.logProbabilityBatchSize)
            gatherTransitions(batch: batch, pairs: start..<end, fromPermutation: false)
            oldLogProbabilities.withUnsafeMutableBufferPointer {
                policy.transitionLogProbabilities(inputs: transitionInputs, outputs: transitionOutputs, timesteps: transitionTimesteps,
                                                  observations: transitionObservations, into: $0.baseAddress! + start)
            }
            start = end
        }

        return statistics
    }

    /// One minibatch of the first `batchSize` pairs in a fresh permutation (benchmarks use this).
    @discardableResult
    public func trainOneMinibatch(batch: RolloutBatch) -> Double {
        let pairs = batch.count * policy.settings.fineTunedSteps
        random.permutation(&permutation, count: pairs)
        return updateMinibatch(batch: batch, range: 0..<min(hyperparameters.batchSize, pairs), stepActor: true).approxKL
    }

    struct MinibatchResult {
        var policyLoss = 0.0, valueLoss = 0.0, approxKL = 0.0, clipFraction = 0.0, ratio = 0.0
        var actorGradientNorm = 0.0, criticGradientNorm = 0.0
    }

    func updateMinibatch(batch: RolloutBatch, range: Range<Int>, stepActor: Bool) -> MinibatchResult {
        var result = MinibatchResult()
        let size = range.count
        let kPrime = policy.settings.fineTunedSteps
        gatherTransitions(batch: batch, pairs: range, fromPermutation: true)

        // Advantages: normalised over the minibatch (unbiased std) before the denoising discount.
        var mean = 0.0
        for slot in 0..<size { mean += Double(advantages[transitionSample[slot]]) }
        mean /= Double(size)
        var variance = 0.0
        for slot in 0..<size { let d = Double(advantages[transitionSample[slot]]) - mean; variance += d * d }
        let std = (variance / Double(max(size - 1, 1))).squareRoot()
        for slot in 0..<size {
            minibatchAdvantages[slot] = Float((Double(advantages[transitionSample[slot]]) - mean) / (std + 1e-8))
        }
        clipAdvantagesToQuantiles(count: size)
        for slot in 0..<size {
            minibatchAdvantages[slot] *= Float(hyperparameters.denoisingDiscount(chainIndex: transitionChainIndex[slot], fineTunedSteps: kPrime))
        }

        // Policy loss: clipped surrogate on the ratio of mean transition log-likelihoods.
        policy.fineTuned.parameters.zeroGradients()
        newLogProbabilities.withUnsafeMutableBufferPointer {
            policy.transitionLogProbabilities(inputs: transitionInputs, outputs: transitionOutputs, timesteps: transitionTimesteps,
                                              observations: transitionObservations, into: $0.baseAddress!)
        }
        var klSum = 0.0, clipped = 0, ratioSum = 0.0, loss = 0.0
        for slot in 0..<size {
            let pair = permutation[range.lowerBound + slot]
            let logRatio = Double(newLogProbabilities[slot]) - Double(oldLogProbabilities[pair])
            let ratio = exp(logRatio)
            let epsilon = hyperparameters.clipCoefficient(chainIndex: transitionChainIndex[slot], fineTunedSteps: kPrime)
            let advantage = Double(minibatchAdvantages[slot])
            let unclipped = -advantage * ratio
            let clippedRatio = min(max(ratio, 1 - epsilon), 1 + epsilon)
            let clippedLoss = -advantage * clippedRatio
            loss += max(unclipped, clippedLoss)
            let inside = ratio >= 1 - epsilon && ratio <= 1 + epsilon
            // d/dℓ_new of max(−Âρ, −Â·clip(ρ)): −Âρ when the unclipped term is active, else 0.
            logProbabilityGradient[slot] = (inside || unclipped > clippedLoss) ? Float(-advantage * ratio / Double(size)) : 0
            klSum += (ratio - 1) - logRatio
            if abs(ratio - 1) > epsilon { clipped += 1 }
            ratioSum += ratio
        }
        result.policyLoss = loss / Double(size)
        result.approxKL = klSum / Double(size)
        result.clipFraction = Double(clipped) / Double(size)
        result.ratio = ratioSum / Double(size)
        if stepActor {
            logProbabilityGradient.withUnsafeBufferPointer { policy.backwardTransitionLogProbabilities(gradient: $0.baseAddress!) }
            result.actorGradientNorm = actorOptimizer.update()
        }

        // Value loss ½·mean over pairs of (V − R)², evaluated once per distinct decision with its multiplicity.
        uniqueSamples.removeAll(keepingCapacity: true)
        minibatchCounter += 1
        for slot in 0..<size {
            let sample = transitionSample[slot]
            if sampleStamp[sample] != minibatchCounter {
                sampleStamp[sample] = minibatchCounter
                sampleMultiplicity[sample] = 0
                uniqueSamples.append(sample)
            }
            sampleMultiplicity[sample] += 1
        }
        criticObservations.resize(rows: uniqueSamples.count)
        for (slot, sample) in uniqueSamples.enumerated() {
            criticObservations.row(slot).update(from: batch.observations.row(sample), count: critic.observationDim)
        }
        critic.parameters.zeroGradients()
        let predicted = critic.forward(criticObservations)
        criticGradient.resize(rows: uniqueSamples.count)
        var valueLoss = 0.0
        let scale = Float(hyperparameters.valueCoefficient) / Float(size)
        for (slot, sample) in uniqueSamples.enumerated() {
            let error = predicted.data[slot] - returns[sample]
            valueLoss += 0.5 * Double(sampleMultiplicity[sample]) * Double(error * error)
            criticGradient.data[slot] = scale * sampleMultiplicity[sample] * error
        }
        result.valueLoss = valueLoss / Double(size)
        critic.backward(input: criticObservations, outputGradient: criticGradient)
        result.criticGradientNorm = criticOptimizer.update()
        return result
    }

    /// Clamps the minibatch's normalised advantages to their [lower, upper] quantiles (linear interpolation, as torch.quantile).
    func clipAdvantagesToQuantiles(count: Int) {
        let lower = hyperparameters.advantageLowerQuantile, upper = hyperparameters.advantageUpperQuantile
        guard lower > 0 || upper < 1 else { return }
        let sorted = minibatchAdvantages[0..<count].sorted()
        func quantile(_ q: Double) -> Float {
            let position = q * Double(count - 1)
            let below = Int(position.rounded(.down)), above = min(below + 1, count - 1)
            let fraction = Float(position - Double(below))
            return sorted[below] + (sorted[above] - sorted[below]) * fraction
        }
        let low = quantile(lower), high = quantile(upper)
        for slot in 0..<count { minibatchAdvantages[slot] = min(max(minibatchAdvantages[slot], low), high) }
    }

    /// Fills the transition matrices for pairs p in `pairs` (p → decision p / K′, chain index p % K′),
    /// taken through the current permutation when `fromPermutation`.
    func gatherTransitions(batch: RolloutBatch, pairs: Range<Int>, fromPermutation: Bool) {
        let kPrime = policy.settings.fineTunedSteps
        let width = policy.settings.chunkWidth
        let observationWidth = critic.observationDim
        let size = pairs.count
        transitionInputs.resize(rows: size)
        transitionOutputs.resize(rows: size)
        transitionObservations.resize(rows: size)
        if newLogProbabilities.count < size {
            newLogProbabilities = [Float](repeating: 0, count: size)
            logProbabilityGradient = [Float](repeating: 0, count: size)
            minibatchAdvantages = [Float](repeating: 0, count: size)
            transitionChainIndex = [Int](repeating: 0, count: size)
            transitionSample = [Int](repeating: 0, count: size)
        }
        // The likelihood reads one timestep per transition row, so this array is exactly `size` long.
        transitionTimesteps.removeAll(keepingCapacity: true)
        for slot in 0..<size {
            let pair = fromPermutation ? permutation[pairs.lowerBound + slot] : pairs.lowerBound + slot
            let sample = pair / kPrime, j = pair % kPrime
            let chain = batch.chains.row(sample)
            transitionInputs.row(slot).update(from: chain + j * width, count: width)
            transitionOutputs.row(slot).update(from: chain + (j + 1) * width, count: width)
            transitionObservations.row(slot).update(from: batch.observations.row(sample), count: observationWidth)
            transitionTimesteps.append(kPrime - 1 - j)
            transitionChainIndex[slot] = j
            transitionSample[slot] = sample
        }
    }

    func prepareBuffers(count n: Int) {
        let pairs = n * policy.settings.fineTunedSteps
        if values.count != n {
            values = [Float](repeating: 0, count: n)
            nextValues = [Float](repeating: 0, count: n)
            advantages = [Float](repeating: 0, count: n)
            returns = [Float](repeating: 0, count: n)
            sampleMultiplicity = [Float](repeating: 0, count: n)
            sampleStamp = [Int](repeating: 0, count: n)
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
