import Foundation
import Networks
import Tensors

/// One worker's share of the PPO update (docs/learner-scaling.md): replicas of the actor and critic that read the
/// update's parameter values and accumulate into their own gradients (shard 0 holds the originals), and the rows
/// and buffers of its part of each minibatch. All buffers are sized on first use and reused afterwards.
final class PPOShard {
    let actor: PPOActor
    let critic: CriticMLP
    let minibatch: PPOMinibatch
    let criticObservations: Matrix, criticGradient: Matrix, valueSlice: Matrix
    var advantages: [Float] = [], newLogProbabilities: [Float] = [], logProbabilityGradient: [Float] = []
    /// This shard's part of a value or log-probability pass, copied into place by the caller.
    var results: [Float] = []
    /// Sums over this shard's rows of the last minibatch, added up over shards in shard order.
    var policyLoss = 0.0, klSum = 0.0, ratioSum = 0.0, clipped = 0, valueLoss = 0.0

    init(actor: PPOActor, critic: CriticMLP) {
        self.actor = actor
        self.critic = critic
        minibatch = PPOMinibatch(observationWidth: critic.observationDim, chunkWidth: actor.termWidth)
        criticObservations = Matrix(rows: 0, columns: critic.observationDim)
        criticGradient = Matrix(rows: 0, columns: 1)
        valueSlice = Matrix(rows: 0, columns: critic.observationDim)
    }

    func reserve(_ count: Int) {
        guard advantages.count < count else { return }
        advantages = [Float](repeating: 0, count: count)
        newLogProbabilities = [Float](repeating: 0, count: count)
        logProbabilityGradient = [Float](repeating: 0, count: count)
    }

    /// Steps 1–6 of docs/algorithms.md §4.6 on this shard's rows: the advantages normalised with the minibatch's
    /// `mean` and `std` (and clamped to its quantile `bounds`), the clipped surrogate, and, when `includeActor`,
    /// ∂L_pg/∂θ into this shard's gradients. `size` is the whole minibatch's pair count, which every mean divides by.
    func policyPass(mean: Double, std: Double, bounds: (low: Float, high: Float)?, size: Int, includeActor: Bool,
                    hyperparameters: PPOHyperparameters) {
        policyLoss = 0; klSum = 0; ratioSum = 0; clipped = 0
        actor.trainableParameters.zeroGradients()
        let rows = minibatch.count
        guard rows > 0 else { return }
        reserve(rows)
        for slot in 0..<rows {
            var advantage = Float((Double(minibatch.advantages[slot]) - mean) / (std + 1e-8))
            if let bounds { advantage = min(max(advantage, bounds.low), bounds.high) }
            advantages[slot] = advantage * Float(actor.advantageScale(term: minibatch.terms[slot], hyperparameters: hyperparameters))
        }
        newLogProbabilities.withUnsafeMutableBufferPointer { actor.logProbabilities(minibatch, into: $0.baseAddress!) }
        for slot in 0..<rows {
            let logRatio = Double(newLogProbabilities[slot]) - Double(minibatch.oldLogProbabilities[slot])
            let ratio = exp(logRatio)
            let epsilon = actor.clipCoefficient(term: minibatch.terms[slot], hyperparameters: hyperparameters)
            let advantage = Double(advantages[slot])
            let unclipped = -advantage * ratio
            let clippedLoss = -advantage * min(max(ratio, 1 - epsilon), 1 + epsilon)
            policyLoss += max(unclipped, clippedLoss)
            let inside = ratio >= 1 - epsilon && ratio <= 1 + epsilon
            // d/dℓ_new of max(−Âρ, −Â·clip(ρ)): −Âρ when the unclipped term is active (or both are), else 0.
            logProbabilityGradient[slot] = (inside || unclipped > clippedLoss) ? Float(-advantage * ratio / Double(size)) : 0
            klSum += (ratio - 1) - logRatio
            if abs(ratio - 1) > epsilon { clipped += 1 }
            ratioSum += ratio
        }
        if includeActor {
            logProbabilityGradient.withUnsafeBufferPointer { actor.backwardLogProbabilities(gradient: $0.baseAddress!) }
        }
    }

    /// Step 7 on this shard's distinct decisions: `criticObservations` rows, their `targets` (returns), `oldValues` and
    /// `multiplicities`; ∂(vf_coef·L_v)/∂φ into this shard's critic gradients.
    func valuePass(targets: [Float], oldValues: [Float], multiplicities: [Float], size: Int, hyperparameters: PPOHyperparameters) {
        valueLoss = 0
        critic.parameters.zeroGradients()
        let rows = criticObservations.rows
        guard rows > 0 else { return }
        let predicted = critic.forward(criticObservations)
        criticGradient.resize(rows: rows)
        let scale = Float(hyperparameters.valueCoefficient) / Float(size)
        for slot in 0..<rows {
            let value = predicted.data[slot], target = targets[slot]
            var error = value - target
            var squared = error * error
            if let limit = hyperparameters.clipValueCoefficient.map(Float.init) {
                let old = oldValues[slot]
                let clippedValue = old + min(max(value - old, -limit), limit)
                let clippedError = clippedValue - target
                if clippedError * clippedError > squared {
                    squared = clippedError * clippedError
                    error = abs(value - old) <= limit ? clippedError : 0
                }
            }
            valueLoss += 0.5 * Double(multiplicities[slot]) * Double(squared)
            criticGradient.data[slot] = scale * multiplicities[slot] * error
        }
        critic.backward(input: criticObservations, outputGradient: criticGradient)
    }

    /// Critic values of `rows` of `observations` into `results[0..<rows.count]`, at most `chunk` rows per forward pass.
    func values(_ observations: Matrix, rows: Range<Int>, chunk: Int) {
        if results.count < rows.count { results = [Float](repeating: 0, count: rows.count) }
        var start = rows.lowerBound
        while start < rows.upperBound {
            let end = min(rows.upperBound, start + chunk)
            valueSlice.resize(rows: end - start)
            valueSlice.data.update(from: observations.row(start), count: (end - start) * observations.columns)
            let output = critic.forward(valueSlice)
            for row in 0..<(end - start) { results[start - rows.lowerBound + row] = output.data[row] }
            start = end
        }
    }
}

/// A critic pass's inputs for the decisions one shard owns (gathered before the parallel part).
struct ShardDecisions {
    var targets: [Float] = [], oldValues: [Float] = [], multiplicities: [Float] = []
    mutating func removeAll() {
        targets.removeAll(keepingCapacity: true)
        oldValues.removeAll(keepingCapacity: true)
        multiplicities.removeAll(keepingCapacity: true)
    }
}

/// Where the last update's time went (docs/learner-scaling.md): the value and old-log-probability pass, and within the
/// minibatches the work split over the shards (the shards' passes and the gradient sum) against the work that is not
/// (advantage statistics, distinct decisions, gradient norms, the optimizer steps).
public struct UpdateTiming: Sendable, Equatable {
    public var prepareSeconds = 0.0
    public var parallelSeconds = 0.0
    public var serialSeconds = 0.0
    public init() {}
    /// The fraction of the minibatches' time that did not shard.
    public var serialFraction: Double { serialSeconds / max(serialSeconds + parallelSeconds, 1e-12) }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds &- start) / 1e9 }
}

extension PPOUpdate {
    /// This process's rank in `group` and the number of ranks.
    var rank: Int { group?.rank ?? 0 }
    var ranks: Int { group?.size ?? 1 }
    /// Shards over all ranks; local shard s of rank r is shard r·S + s of them.
    var globalShardCount: Int { ranks * shards.count }
    func globalShard(_ local: Int) -> Int { rank * shards.count + local }

    /// The part of 0..<total that global shard `global` owns.
    func owned(_ global: Int, total: Int) -> Range<Int> { Parallel.range(shard: global, of: globalShardCount, total: total) }

    /// The contiguous part of 0..<total that rank r's shards own together.
    func rankSpan(_ r: Int, total: Int) -> Range<Int> {
        owned(r * shards.count, total: total).lowerBound..<owned(r * shards.count + shards.count - 1, total: total).upperBound
    }

    /// Copies each shard's `results` into its part of `result` (`total` values), then, with several ranks, gathers the
    /// other ranks' parts: every rank ends with all of `result`.
    func collectShardResults(into result: inout [Float], total: Int) {
        for (index, shard) in shards.enumerated() {
            let part = owned(globalShard(index), total: total)
            result.replaceSubrange(part, with: shard.results[0..<part.count])
        }
        guard let group, group.size > 1 else { return }
        let spans = (0..<group.size).map { rankSpan($0, total: total) }
        let mine = Array(result[spans[rank]])
        result.withUnsafeMutableBufferPointer { output in
            mine.withUnsafeBufferPointer { group.allGather($0.baseAddress!, counts: spans.map(\.count), into: output.baseAddress!) }
        }
    }

    /// A checksum of the actor's and critic's parameter values (FNV-1a over their bits): ranks compare it each iteration.
    public func parameterChecksum() -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for parameters in [actor.trainableParameters, critic.parameters] {
            for index in 0..<parameters.count {
                hash = (hash ^ UInt64(parameters.values[index].bitPattern)) &* 0x100_0000_01b3
            }
        }
        return hash
    }
}

extension PPOUpdate {
    /// The DPPO loss of one minibatch and its gradients (docs/algorithms.md §4.6 steps 1–9), split over the shards:
    /// L = L_pg + vf_coef·L_v (+ bc_coef·L_bc). `fill(shard, slots)` puts the minibatch's pairs `slots` into that
    /// shard's `minibatch`; `advantageAt(slot)` is pair `slot`'s raw advantage; `decisions` lists the distinct decisions
    /// (first pair, multiplicity) and `decisionAt(pair)` gives that pair's observation, return and old value.
    /// Leaves ∂L/∂θ in the fine-tuned network's gradients (when `includeActor`) and ∂L/∂φ in the critic's; steps no optimizer.
    func shardedLoss(size: Int, includeActor: Bool, fill: (PPOShard, Range<Int>) -> Void, advantageAt: (Int) -> Float,
                     decisions: [(pair: Int, multiplicity: Float)],
                     decisionAt: (Int) -> (observation: UnsafePointer<Float>, target: Float, oldValue: Float)) -> PPOLossTerms {
        // 1–3 over the whole minibatch (serial, O(P)): mean and unbiased std of the advantages, and quantile bounds.
        let serialStart = UpdateTiming.now()
        var mean = 0.0
        for slot in 0..<size { mean += Double(advantageAt(slot)) }
        mean /= Double(size)
        var variance = 0.0
        for slot in 0..<size { let d = Double(advantageAt(slot)) - mean; variance += d * d }
        let std = (variance / Double(max(size - 1, 1))).squareRoot()
        let bounds = advantageQuantileBounds(size: size) { Float((Double(advantageAt($0)) - mean) / (std + 1e-8)) }

        // The critic's rows: each shard takes a contiguous part of the distinct decisions.
        let count = shards.count, width = critic.observationDim
        for (index, shard) in shards.enumerated() {
            let owned = self.owned(globalShard(index), total: decisions.count)
            shard.criticObservations.resize(rows: owned.count)
            shardDecisions[index].removeAll()
            for (slot, decision) in decisions[owned].enumerated() {
                let data = decisionAt(decision.pair)
                shard.criticObservations.row(slot).update(from: data.observation, count: width)
                shardDecisions[index].targets.append(data.target)
                shardDecisions[index].oldValues.append(data.oldValue)
                shardDecisions[index].multiplicities.append(decision.multiplicity)
            }
        }

        // 4–7 on every shard at once.
        let parallelStart = UpdateTiming.now()
        timing.serialSeconds += Double(parallelStart &- serialStart) / 1e9
        let hyperparameters = self.hyperparameters
        Parallel.forEach(count) { index in
            let shard = shards[index]
            fill(shard, owned(globalShard(index), total: size))
            shard.policyPass(mean: mean, std: std, bounds: bounds, size: size, includeActor: includeActor, hyperparameters: hyperparameters)
            let owned = shardDecisions[index]
            shard.valuePass(targets: owned.targets, oldValues: owned.oldValues, multiplicities: owned.multiplicities, size: size,
                            hyperparameters: hyperparameters)
        }

        // Shard sums in global shard order (over ranks too: the same bits however the shards are laid out), gradients
        // in a fixed tree (docs/learner-scaling.md).
        var terms = PPOLossTerms()
        var partials = shards.flatMap { [$0.policyLoss, $0.klSum, $0.ratioSum, Double($0.clipped), $0.valueLoss] }
        if let group, group.size > 1 { partials = group.allGather(partials) }
        var policyLoss = 0.0, klSum = 0.0, ratioSum = 0.0, clipped = 0, valueLoss = 0.0
        for shard in stride(from: 0, to: partials.count, by: 5) {
            policyLoss += partials[shard]; klSum += partials[shard + 1]; ratioSum += partials[shard + 2]
            clipped += Int(partials[shard + 3]); valueLoss += partials[shard + 4]
        }
        Parallel.treeSum(shards.map { $0.actor.trainableParameters.gradients }, count: actor.trainableParameters.count, workers: count)
        Parallel.treeSum(shards.map { $0.critic.parameters.gradients }, count: critic.parameters.count, workers: count)
        if let group, group.size > 1 {
            group.sum(actor.trainableParameters.gradients, count: actor.trainableParameters.count, scratch: actorGradients, workers: count)
            group.sum(critic.parameters.gradients, count: critic.parameters.count, scratch: criticGradients, workers: count)
        }
        let tailStart = UpdateTiming.now()
        timing.parallelSeconds += Double(tailStart &- parallelStart) / 1e9
        defer { timing.serialSeconds += UpdateTiming.seconds(since: tailStart) }
        terms.policyLoss = policyLoss / Double(size)
        terms.approxKL = klSum / Double(size)
        terms.clipFraction = Double(clipped) / Double(size)
        terms.ratio = ratioSum / Double(size)
        terms.valueLoss = valueLoss / Double(size)
        if includeActor {
            if hyperparameters.bcCoefficient > 0 {
                teacherObservations.resize(rows: decisions.count)
                for (slot, decision) in decisions.enumerated() {
                    teacherObservations.row(slot).update(from: decisionAt(decision.pair).observation, count: width)
                }
                terms.bcLoss = actor.accumulateBehaviourCloningLoss(observations: teacherObservations, weights: decisions.map { $0.multiplicity / Float(size) },
                                                                    coefficient: hyperparameters.bcCoefficient, random: &random)
            }
            terms.actorGradientNorm = actor.trainableParameters.gradientNorm()
        }
        terms.criticGradientNorm = critic.parameters.gradientNorm()
        return terms
    }

    /// The [lower, upper] quantiles (linear interpolation, as torch.quantile) of the minibatch's normalised advantages
    /// `normalized(slot)`, which they are clamped to; nil when the quantiles are 0 and 1 (no clipping).
    func advantageQuantileBounds(size: Int, normalized: (Int) -> Float) -> (low: Float, high: Float)? {
        let lower = hyperparameters.advantageLowerQuantile, upper = hyperparameters.advantageUpperQuantile
        guard lower > 0 || upper < 1 else { return nil }
        if quantileScratch.count != size { quantileScratch = [Float](repeating: 0, count: size) }
        for slot in 0..<size { quantileScratch[slot] = normalized(slot) }
        quantileScratch.sort()
        let sorted = quantileScratch
        func quantile(_ q: Double) -> Float {
            let position = q * Double(size - 1)
            let below = Int(position.rounded(.down)), above = min(below + 1, size - 1)
            let fraction = Float(position - Double(below))
            return sorted[below] + (sorted[above] - sorted[below]) * fraction
        }
        return (quantile(lower), quantile(upper))
    }
}
