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
    /// `shouldStop` said yes before the last minibatch: the parameters are part-way through the update, and the
    /// caller discards them (the learner writes the state it kept from before the update).
    public var abandoned = false
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
    /// Timers of the last `update` (or of the minibatches trained since the last `update` began).
    public internal(set) var timing = UpdateTiming()

    // Per-iteration buffers (sized on first use, reused afterwards).
    var values: [Float] = [], nextValues: [Float] = [], advantages: [Float] = [], returns: [Float] = []
    var oldLogProbabilities: [Float] = []
    var permutation: [Int] = []
    /// The workers' shares of every pass (docs/learner-scaling.md); shard 0 holds `actor` and `critic` themselves.
    let shards: [PPOShard]
    var shardDecisions: [ShardDecisions]
    /// Per batch row: its slot among the current minibatch's distinct decisions while that list is built, else −1.
    var decisionSlots: [Int] = []
    var decisionList: [(pair: Int, multiplicity: Float)] = []
    var quantileScratch: [Float] = []
    let teacherObservations: Matrix
    /// The learner processes this update is split across (nil: this one alone), and the buffers their sums gather into.
    public let group: RankGroup?
    let actorGradients: Matrix, criticGradients: Matrix

    /// DPPO: PPO over the fine-tuned denoising steps of `policy`.
    public convenience init(policy: DiffusionPolicy, critic: CriticMLP, hyperparameters: PPOHyperparameters, streams: Int, seed: UInt64,
                            shards: Int = 1, group: RankGroup? = nil) {
        self.init(actor: DiffusionPPOActor(policy: policy), critic: critic, hyperparameters: hyperparameters, streams: streams, seed: seed,
                  shards: shards, group: group)
    }

    /// `shards`: the workers every pass over the batch is split across in this process (the `threads` key); `group`:
    /// the processes (MPI ranks) that split it further, each with `shards` workers and the same batch. For given counts
    /// the update is bit-identical from run to run; different counts agree to float rounding.
    public init(actor: PPOActor, critic: CriticMLP, hyperparameters: PPOHyperparameters, streams: Int, seed: UInt64, shards: Int = 1,
                group: RankGroup? = nil) {
        precondition(shards >= 1, "an update needs at least one shard")
        self.group = group
        actorGradients = Matrix(rows: 0, columns: actor.trainableParameters.count)
        criticGradients = Matrix(rows: 0, columns: critic.parameters.count)
        self.actor = actor
        self.critic = critic
        self.hyperparameters = hyperparameters
        actorOptimizer = Adam(parameters: actor.trainableParameters, learningRate: Float(hyperparameters.actorLearningRate),
                              weightDecay: Float(hyperparameters.actorWeightDecay), maxGradientNorm: hyperparameters.maxGradientNorm.map(Float.init))
        criticOptimizer = Adam(parameters: critic.parameters, learningRate: Float(hyperparameters.criticLearningRate),
                               weightDecay: Float(hyperparameters.criticWeightDecay))
        rewardScaler = hyperparameters.rewardScaleRunning ? RunningRewardScaler(streams: streams) : nil
        random = Philox(seed: seed, stream: 0xD990)
        self.shards = [PPOShard(actor: actor, critic: critic)]
            + (1..<shards).map { _ in PPOShard(actor: actor.makeReplica(), critic: critic.replica()) }
        shardDecisions = Array(repeating: ShardDecisions(), count: shards)
        teacherObservations = Matrix(rows: 0, columns: critic.observationDim)
    }

    /// Starts the timers afresh (benchmarks timing `trainOneMinibatch`).
    public func resetTiming() { timing = UpdateTiming() }

    /// The number of workers each pass is split across in this process.
    public var shardCount: Int { shards.count }


    /// Shard 0's rows of the last minibatch (all of them with one shard).
    public var minibatch: PPOMinibatch { shards[0].minibatch }

    /// Runs the whole update for one iteration's batch. `iteration` gates the critic warm-up.
    /// `behaviour`: the weights that sampled the decisions when some were sampled by older weights (the cluster's
    /// async mode); nil: every decision was sampled by the current weights, which then give the old log-probabilities.
    /// `shouldStop` is asked before every minibatch; when it says yes the update returns at once, `abandoned`.
    public func update(batch: RolloutBatch, iteration: Int, behaviour: BehaviourPolicies? = nil,
                       shouldStop: () -> Bool = { false }) -> PPOStatistics {
        timing = UpdateTiming()
        let prepareStart = UpdateTiming.now()
        var statistics = prepare(batch: batch, behaviour: behaviour)
        timing.prepareSeconds = UpdateTiming.seconds(since: prepareStart)
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
                if shouldStop() {
                    statistics.abandoned = true
                    return statistics
                }
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
        Parallel.forEach(shards.count) { index in
            let part = owned(globalShard(index), total: pairs)
            shardLogProbabilities(shards[index], batch: batch, count: part.count) { part.lowerBound + $0 }
        }
        collectShardResults(into: &oldLogProbabilities, total: pairs)

        return statistics
    }

    /// Step 4 when decisions came from several versions: each snapshot's decisions are evaluated with that snapshot's
    /// weights loaded into the actor, then the current weights are put back.
    /// The shards share the actor's parameter values, so loading a snapshot into it loads it into every shard.
    func behaviourLogProbabilities(batch: RolloutBatch, behaviour: BehaviourPolicies) {
        precondition(ranks == 1, "behaviour weights (async mode) need a single learner rank")
        let parameters = actor.trainableParameters
        let current = Array(parameters.valueBuffer)
        defer { parameters.values.update(from: current, count: parameters.count) }
        let termCount = actor.termsPerDecision, count = shards.count
        for snapshot in -1..<behaviour.snapshots.count {
            let rows = (0..<batch.count).filter { behaviour.rowSnapshots[$0] == snapshot }
            guard !rows.isEmpty else { continue }
            let weights = snapshot < 0 ? current : behaviour.snapshots[snapshot]
            precondition(weights.count == parameters.count, "behaviour weights do not match the actor's parameters")
            parameters.values.update(from: weights, count: parameters.count)
            let pairs = rows.flatMap { row in (0..<termCount).map { row * termCount + $0 } }
            Parallel.forEach(count) { index in
                let owned = Parallel.range(shard: index, of: count, total: pairs.count)
                shardLogProbabilities(shards[index], batch: batch, count: owned.count) { pairs[owned.lowerBound + $0] }
            }
            for (index, shard) in shards.enumerated() {
                let owned = Parallel.range(shard: index, of: count, total: pairs.count)
                for (slot, pair) in pairs[owned].enumerated() { oldLogProbabilities[pair] = shard.results[slot] }
            }
        }
    }

    /// Log-probabilities of `count` pairs (pair `pairAt(i)` for i in 0..<count) under the actor's current values, into
    /// `shard.results[0..<count]`, at most `logprob_batch_size` rows per forward pass. Each shard writes only its own
    /// results, which the caller then copies into place.
    func shardLogProbabilities(_ shard: PPOShard, batch: RolloutBatch, count: Int, pairAt: (Int) -> Int) {
        if shard.results.count < count { shard.results = [Float](repeating: 0, count: count) }
        let chunk = hyperparameters.logProbabilityBatchSize
        var start = 0
        while start < count {
            let end = min(count, start + chunk)
            gather(batch: batch, count: end - start, into: shard.minibatch, oldLogProbabilities: false) { pairAt(start + $0) }
            shard.results.withUnsafeMutableBufferPointer { shard.actor.logProbabilities(shard.minibatch, into: $0.baseAddress! + start) }
            start = end
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
        let terms = loss(batch: batch, pairs: range, includeActor: stepActor)
        let stepStart = UpdateTiming.now()
        if stepActor { actorOptimizer.update() }
        criticOptimizer.update()
        timing.serialSeconds += UpdateTiming.seconds(since: stepStart)
        return terms
    }

    /// The loss of the minibatch of pairs `permutation[range]` (pair p → decision p / terms, term p % terms).
    func loss(batch: RolloutBatch, pairs range: Range<Int>, includeActor: Bool) -> PPOLossTerms {
        let planStart = UpdateTiming.now()
        let termCount = actor.termsPerDecision, first = range.lowerBound
        // The distinct decisions in order of first appearance, with how many pairs share each.
        if decisionSlots.count != batch.count { decisionSlots = [Int](repeating: -1, count: batch.count) }
        decisionList.removeAll(keepingCapacity: true)
        for slot in 0..<range.count {
            let sample = permutation[first + slot] / termCount
            if decisionSlots[sample] >= 0 {
                decisionList[decisionSlots[sample]].multiplicity += 1
            } else {
                decisionSlots[sample] = decisionList.count
                decisionList.append((slot, 1))
            }
        }
        for decision in decisionList { decisionSlots[permutation[first + decision.pair] / termCount] = -1 }
        timing.serialSeconds += UpdateTiming.seconds(since: planStart)
        return shardedLoss(size: range.count, includeActor: includeActor, fill: { shard, slots in
            gather(batch: batch, count: slots.count, into: shard.minibatch, oldLogProbabilities: true) { permutation[first + slots.lowerBound + $0] }
        }, advantageAt: { advantages[permutation[first + $0] / termCount] }, decisions: decisionList, decisionAt: { slot in
            let sample = permutation[first + slot] / termCount
            return (UnsafePointer(batch.observations.row(sample)), returns[sample], values[sample])
        })
    }

    /// The DPPO loss of `minibatch` and its gradients (docs/algorithms.md §4.6 steps 1–9):
    /// L = L_pg + vf_coef·L_v (+ bc_coef·L_bc). Leaves ∂L/∂θ in the fine-tuned network's gradients (when
    /// `includeActor`) and ∂L/∂φ in the critic's; steps no optimizer. The rows are split over the shards like the update's.
    public func computeLoss(_ minibatch: PPOMinibatch, includeActor: Bool = true) -> PPOLossTerms {
        let width = critic.observationDim
        return shardedLoss(size: minibatch.count, includeActor: includeActor, fill: { shard, slots in
            let rows = shard.minibatch
            rows.resize(slots.count)
            for (slot, source) in slots.enumerated() {
                rows.observations.row(slot).update(from: minibatch.observations.row(source), count: width)
                rows.inputs.row(slot).update(from: minibatch.inputs.row(source), count: minibatch.inputs.columns)
                rows.outputs.row(slot).update(from: minibatch.outputs.row(source), count: minibatch.outputs.columns)
                rows.terms.append(minibatch.terms[source])
                rows.decisions.append(minibatch.decisions[source])
                rows.returns.append(minibatch.returns[source])
                rows.oldValues.append(minibatch.oldValues[source])
                rows.advantages.append(minibatch.advantages[source])
                rows.oldLogProbabilities.append(minibatch.oldLogProbabilities[source])
            }
        }, advantageAt: { minibatch.advantages[$0] }, decisions: minibatch.distinctDecisions(), decisionAt: { pair in
            (UnsafePointer(minibatch.observations.row(pair)), minibatch.returns[pair], minibatch.oldValues[pair])
        })
    }

    /// Fills `minibatch` with `count` pairs, pair `pairAt(slot)` in row `slot` (p → decision p / terms, term p % terms).
    /// `oldLogProbabilities: false` leaves their column at 0 (while they are being computed).
    func gather(batch: RolloutBatch, count: Int, into minibatch: PPOMinibatch, oldLogProbabilities withOld: Bool, pairAt: (Int) -> Int) {
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
            minibatch.oldLogProbabilities.append(withOld ? oldLogProbabilities[pair] : 0)
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

    /// Critic values for every row of `observations`: each shard takes a contiguous part, in chunks.
    public func evaluateValues(_ observations: Matrix, into result: inout [Float]) {
        if result.count != observations.rows { result = [Float](repeating: 0, count: observations.rows) }
        let chunk = hyperparameters.logProbabilityBatchSize
        Parallel.forEach(shards.count) { index in
            shards[index].values(observations, rows: owned(globalShard(index), total: observations.rows), chunk: chunk)
        }
        collectShardResults(into: &result, total: observations.rows)
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
