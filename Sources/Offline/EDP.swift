import Diffusion
import Foundation
import Networks
import Tensors

/// The policy-improvement method EDP plugs action approximation into (§3.3, §3.5, §3.6).
public enum EDPVariant: String, Sendable, Codable, CaseIterable {
    /// Q maximisation on â⁰ plus the denoising loss (TD3+BC style).
    case td3
    /// Weighted regression with exp(advantage) weights, the baseline from Gaussian draws around â⁰.
    case crr
    /// Weighted regression with expectile V, Q regressed on V(s′); samples no actions while training.
    case iql
}

/// EDP hyperparameters (docs/offline-algorithms.md §3); defaults are the paper's locomotion values where the paper
/// states one, the code's otherwise. The discount lives in the dataset (`OfflineDataset`'s γ^Tp per transition).
public struct EDPSettings: Sendable, Equatable, Codable {
    public var variant = EDPVariant.td3
    /// Adam learning rate of the actor, and of the critics and V unless `criticLearningRate` (§3.9: 3e-4, adroit 3e-5).
    public var learningRate = 3e-4
    /// The critics' and V's rate where it differs from `learningRate` (the paper uses one); nil: `learningRate`.
    public var criticLearningRate: Double? = nil
    /// Global gradient-norm clip of each network (§3.9 paper: 5; the code reuses Diffusion-QL's per-task table); nil or ≤ 0: off.
    public var gradientNormClip: Double? = 5
    /// τ of the critic targets' Polyak update every step.
    public var targetUpdateRate = 0.005
    /// The target policy (§3.10): soft update with τ every 5 steps after step 1000.
    public var targetActor = TargetActorSchedule()
    /// Weight of L_diff in the policy loss (`diff_coef`, §3.4).
    public var diffusionCoefficient = 1.0
    /// Weight of the policy-improvement term (`guide_coef`; the paper's "loss weight": 1.0 locomotion/antmaze, 0.1 adroit, 0.005 kitchen).
    public var guideCoefficient = 1.0
    /// No actor update at all (critic warm-up against a fixed, e.g. behaviour-cloned, actor).
    public var freezeActor = false
    /// TD3's α in λ = α/sg(mean |Q_j(s, â⁰)|) (§3.3, code default 2.0).
    public var td3Alpha = 2.0
    /// Max-Q backup with `maxQSamples` next actions per state (TD3 and CRR critics, §3.3).
    public var maxQBackup = false
    public var maxQSamples = 10
    /// CRR (§3.5): N Gaussian draws around â⁰ for the baseline, temperature β, weight cap (code only).
    public var crrSamples = 10
    public var crrTemperature = 1.0
    public var crrWeightCap = 20.0
    /// IQL (§3.6): expectile τ (0.9 for antmaze), inverse temperature of the weight (code 3.0) and its cap.
    public var iqlExpectile = 0.7
    public var iqlInverseTemperature = 3.0
    public var iqlWeightCap = 100.0
    /// Cosine decay of the policy learning rate to 0 over this many steps (code, policy only); nil: constant.
    public var learningRateDecaySteps: Int? = nil
    /// Energy-based action selection (§3.8): N candidates (paper 10, code 50), softmax of min(Q1, Q2) of the online critics.
    public var selectionCandidates = 50
    public var selection = CandidateRule.softmax(temperature: 1)

    public init(variant: EDPVariant = .td3) { self.variant = variant }
}

/// EDP (§3) on a DPPO diffusion policy: the actor is `policy.base`, the target policy is the base network of
/// `targetPolicy`. Policy improvement sees the dataset action's one-pass approximation â⁰ (`ActionApproximation`)
/// instead of a sampled chain, so a step costs one ε-network pass whatever K is.
///
/// Update order (§3.10, §3.6): TD3 and CRR compute critic and policy gradients from the parameters before the step,
/// then apply both; IQL updates V, then the policy, then Q.
public final class EDPTrainer {
    public let policy: DiffusionPolicy
    public let targetPolicy: DiffusionPolicy
    public let critic: TwinQCritic
    /// V(s), trained by the IQL variant only.
    public let value: ValueNetwork
    public var settings: EDPSettings
    public let actorOptimizer: Adam
    public let criticOptimizer: Adam
    public let valueOptimizer: Adam
    /// Gradient steps taken; set it (with `random`) when resuming from a checkpoint.
    public var step = 0
    public var random: Philox
    let sampler: ChunkSampler
    let approximation: ActionApproximation
    let targets: SampledTargets
    let selector: CandidateSelector
    let gradient1: Matrix, gradient2: Matrix, actionGradient: Matrix, denoisedGradient: Matrix
    let repeatedObservations: Matrix, perturbedActions: Matrix
    let weights: Matrix, valueGradient: Matrix, valueTargets: Matrix
    var baselines: [Float] = []

    /// - policy: the actor, already initialised or pre-trained (its base network is trained).
    /// - critic: the critic architecture (Q1, Q2 and V); by default 256×3 Mish on the policy's widths.
    /// - sampler: draws TD-target next actions and selection candidates (DDPM here; EDP's paper uses DPM-Solver).
    public init(policy: DiffusionPolicy, settings: EDPSettings = EDPSettings(), critic criticShape: CriticShape? = nil,
                sampler: ChunkSampler = DDPMChunkSampler(), seed: UInt64) {
        let shape = CriticShape.resolved(criticShape, for: policy)
        self.policy = policy
        self.settings = settings
        self.sampler = sampler
        random = Philox(seed: seed, stream: 0xED)
        targetPolicy = targetCopy(of: policy)
        critic = TwinQCritic(shape: shape)
        critic.initialize(random: &random)
        value = ValueNetwork(shape: shape)
        value.initialize(random: &random)
        let clip = settings.gradientNormClip.flatMap { $0 > 0 ? Float($0) : nil }
        let rate = Float(settings.learningRate)
        actorOptimizer = Adam(parameters: policy.base.parameters, learningRate: rate, maxGradientNorm: clip)
        let criticRate = Float(settings.criticLearningRate ?? settings.learningRate)
        criticOptimizer = Adam(parameters: critic.parameters, learningRate: criticRate, maxGradientNorm: clip)
        valueOptimizer = Adam(parameters: value.parameters, learningRate: criticRate, maxGradientNorm: clip)
        approximation = ActionApproximation(policy: policy)
        targets = SampledTargets(observationDim: shape.observationDim, actionDim: shape.actionDim)
        selector = CandidateSelector(candidates: settings.selectionCandidates, rule: settings.selection, criticCopy: .online,
                                     sampler: sampler, observationDim: shape.observationDim, actionDim: shape.actionDim)
        gradient1 = Matrix(rows: 0, columns: 1)
        gradient2 = Matrix(rows: 0, columns: 1)
        actionGradient = Matrix(rows: 0, columns: shape.actionDim)
        denoisedGradient = Matrix(rows: 0, columns: shape.actionDim)
        repeatedObservations = Matrix(rows: 0, columns: shape.observationDim)
        perturbedActions = Matrix(rows: 0, columns: shape.actionDim)
        weights = Matrix(rows: 0, columns: 1)
        valueGradient = Matrix(rows: 0, columns: 1)
        valueTargets = Matrix(rows: 0, columns: 1)
    }

    /// One gradient step on `batch`.
    @discardableResult
    public func trainStep(batch: OfflineBatch) -> OfflineStatistics {
        var statistics = OfflineStatistics()
        statistics.step = step
        actorOptimizer.learningRate = cosineDecayed(settings.learningRate, step: step, steps: settings.learningRateDecaySteps)
        statistics.actorLearningRate = Double(actorOptimizer.learningRate)
        switch settings.variant {
        case _ where settings.freezeActor:
            if settings.variant == .iql { valueStep(batch: batch, statistics: &statistics) }
            criticStep(batch: batch, statistics: &statistics)
            statistics.criticGradientNorm = criticOptimizer.update()
        case .td3, .crr:
            // The policy term runs the critic's backward for dL/dâ⁰, so it goes first and the critic's gradients are
            // zeroed by the regression after it; both see the parameters before this step.
            policyStep(batch: batch, statistics: &statistics)
            criticStep(batch: batch, statistics: &statistics)
            statistics.actorGradientNorm = actorOptimizer.update()
            statistics.criticGradientNorm = criticOptimizer.update()
        case .iql:
            valueStep(batch: batch, statistics: &statistics)
            policyStep(batch: batch, statistics: &statistics)
            statistics.actorGradientNorm = actorOptimizer.update()
            criticStep(batch: batch, statistics: &statistics)
            statistics.criticGradientNorm = criticOptimizer.update()
        }
        critic.updateTarget(rate: Float(settings.targetUpdateRate))
        if settings.targetActor.applies(atStep: step) {
            polyakUpdate(target: targetPolicy.base.parameters, source: policy.base.parameters, rate: Float(1 - settings.targetActor.decay))
        }
        step += 1
        return statistics
    }

    /// Accumulates the policy gradient: diff_coef·L_diff + guide_coef·(the variant's term on â⁰).
    func policyStep(batch: OfflineBatch, statistics: inout OfflineStatistics) {
        let size = batch.count
        policy.base.parameters.zeroGradients()
        statistics.diffusionLoss = approximation.forward(observations: batch.observations, actions: batch.actions, random: &random)
        let denoised = approximation.denoised
        let guide = settings.guideCoefficient
        denoisedGradient.resize(rows: size)
        switch settings.variant {
        case .td3:
            // L = −λ·mean Q_j(s, â⁰), λ = α/sg(mean |Q_j(s, â⁰)|) with the same critic j (§3.3).
            let (q1, q2) = critic.forward(observations: batch.observations, actions: denoised)
            let useFirst = random.uniform() < 0.5
            let chosen = useFirst ? q1 : q2
            let lambda = settings.td3Alpha / max(meanAbsolute(chosen), 1e-8)
            statistics.policyQ = mean(chosen)
            statistics.guideLoss = -guide * lambda * statistics.policyQ
            let gradient = useFirst ? gradient1 : gradient2
            gradient.resize(rows: size)
            gradient.fill(Float(-guide * lambda / Double(size)))
            critic.backward(q1Gradient: useFirst ? gradient : nil, q2Gradient: useFirst ? nil : gradient, actionGradient: denoisedGradient)
        case .crr:
            crrWeights(batch: batch, statistics: &statistics)
            statistics.guideLoss = guide * weightedRegression(batch: batch, scale: guide)
        case .iql:
            iqlWeights(batch: batch, statistics: &statistics)
            statistics.guideLoss = guide * weightedRegression(batch: batch, scale: guide)
        }
        statistics.actorLoss = settings.diffusionCoefficient * statistics.diffusionLoss + statistics.guideLoss
        approximation.backward(diffusionWeight: Float(settings.diffusionCoefficient), denoisedGradient: denoisedGradient)
    }

    /// −mean f·log N(a; â⁰, I) with f = `weights` (§3.4 variant 2); writes scale·d/dâ⁰ into `denoisedGradient`.
    func weightedRegression(batch: OfflineBatch, scale: Double) -> Double {
        let size = batch.count, width = policy.settings.chunkWidth
        let denoised = approximation.denoised
        var loss = 0.0
        for row in 0..<size {
            let f = weights.data[row]
            for element in 0..<width {
                let flat = row * width + element
                denoisedGradient.data[flat] = Float(scale) * f * (denoised.data[flat] - batch.actions.data[flat]) / Float(size)
            }
            loss -= Double(f) * ActionApproximation.surrogateLogProbability(actions: batch.actions.row(row), denoised: denoised.row(row), count: width)
        }
        return loss / Double(size)
    }

    /// CRR weights f = min(cap, exp(A/β)), A = min(Q1, Q2)(s, a) − mean_j min(Q1, Q2)(s, ã_j), ã_j ~ N(â⁰, I) unclipped,
    /// online critics (§3.5).
    func crrWeights(batch: OfflineBatch, statistics: inout OfflineStatistics) {
        let size = batch.count, n = settings.crrSamples
        repeatRows(batch.observations, times: n, into: repeatedObservations)
        repeatRows(approximation.denoised, times: n, into: perturbedActions)
        for index in 0..<perturbedActions.count { perturbedActions.data[index] += random.normal() }
        let (p1, p2) = critic.forward(observations: repeatedObservations, actions: perturbedActions)
        if baselines.count != size { baselines = [Float](repeating: 0, count: size) }
        for row in 0..<size {
            var sum: Float = 0
            for j in 0..<n { sum += min(p1.data[row * n + j], p2.data[row * n + j]) }
            baselines[row] = sum / Float(n)
        }
        let (q1, q2) = critic.forward(observations: batch.observations, actions: batch.actions)
        weights.resize(rows: size)
        let logCap = Float(log(settings.crrWeightCap)), inverseTemperature = Float(1 / settings.crrTemperature)
        var policyQ = 0.0
        for row in 0..<size {
            let advantage = min(q1.data[row], q2.data[row]) - baselines[row]
            weights.data[row] = expf(min(advantage * inverseTemperature, logCap))
            policyQ += Double(baselines[row])
        }
        statistics.policyQ = policyQ / Double(size)
        statistics.weightMean = mean(weights)
    }

    /// IQL weights f = min(cap, exp(β⁻¹·(min(Q1′, Q2′)(s, a) − V(s)))) with target critics and V after its update (§3.6).
    func iqlWeights(batch: OfflineBatch, statistics: inout OfflineStatistics) {
        let size = batch.count
        let (q1, q2) = critic.forward(observations: batch.observations, actions: batch.actions, copy: .target)
        let values = value.forward(batch.observations)
        weights.resize(rows: size)
        let logCap = Float(log(settings.iqlWeightCap)), inverseTemperature = Float(settings.iqlInverseTemperature)
        for row in 0..<size {
            weights.data[row] = expf(min(inverseTemperature * (min(q1.data[row], q2.data[row]) - values.data[row]), logCap))
        }
        statistics.weightMean = mean(weights)
    }

    /// V step (§3.6): expectile regression of V(s) on min(Q1′, Q2′)(s, a); applies the V update.
    func valueStep(batch: OfflineBatch, statistics: inout OfflineStatistics) {
        let size = batch.count
        let (q1, q2) = critic.forward(observations: batch.observations, actions: batch.actions, copy: .target)
        valueTargets.resize(rows: size)
        for row in 0..<size { valueTargets.data[row] = min(q1.data[row], q2.data[row]) }
        value.parameters.zeroGradients()
        let values = value.forward(batch.observations)
        valueGradient.resize(rows: size)
        statistics.valueLoss = expectileLoss(targets: valueTargets.data, values: values.data, count: size,
                                             expectile: Float(settings.iqlExpectile), valueGradient: valueGradient.data)
        value.backward(observations: batch.observations, valueGradient: valueGradient)
        statistics.valueGradientNorm = valueOptimizer.update()
    }

    /// Accumulates the critic gradient: targets from the target policy (TD3, CRR) or from V(s′) (IQL), then L_Q.
    func criticStep(batch: OfflineBatch, statistics: inout OfflineStatistics) {
        let y: Matrix
        if settings.variant == .iql {
            let nextValues = value.forward(batch.nextObservations)
            valueTargets.resize(rows: batch.count)
            for row in 0..<batch.count { valueTargets.data[row] = batch.rewards.data[row] + batch.discounts.data[row] * nextValues.data[row] }
            y = valueTargets
        } else {
            y = targets.compute(batch: batch, targetPolicy: targetPolicy, sampler: sampler, critic: critic,
                                samplesPerState: settings.maxQBackup ? settings.maxQSamples : 1, random: &random)
        }
        statistics.targetMean = mean(y)
        let regression = criticRegression(critic: critic, batch: batch, targets: y, gradient1: gradient1, gradient2: gradient2)
        statistics.criticLoss = regression.loss
        statistics.datasetQ = regression.q1Mean
    }

    /// One step of Monte Carlo critic pre-training (`monteCarloCriticStep`); the IQL variant also regresses V(s) on the
    /// returns (the behaviour policy's state value). The actor and the step counter are untouched.
    @discardableResult
    public func pretrainCriticStep(batch: OfflineBatch) -> OfflineStatistics {
        var statistics = OfflineStatistics()
        statistics.step = step
        monteCarloCriticStep(critic: critic, optimizer: criticOptimizer, batch: batch, gradient1: gradient1, gradient2: gradient2, statistics: &statistics)
        guard settings.variant == .iql else { return statistics }
        value.parameters.zeroGradients()
        let values = value.forward(batch.observations)
        valueGradient.resize(rows: batch.count)
        statistics.valueLoss = expectileLoss(targets: batch.returns.data, values: values.data, count: batch.count, expectile: 0.5,
                                             valueGradient: valueGradient.data)
        value.backward(observations: batch.observations, valueGradient: valueGradient)
        statistics.valueGradientNorm = valueOptimizer.update()
        return statistics
    }

    /// Energy-based action selection (§3.8): one chunk per observation row into `actions`.
    public func selectActions(observations: Matrix, actions: Matrix) {
        selector.select(policy: policy, critic: critic, observations: observations, actions: actions, random: &random)
    }

    /// The weights of one actor copy (see `copyActor`).
    public func actor(_ copy: ActorCopy) -> Parameters { copy == .online ? policy.base.parameters : targetPolicy.base.parameters }

    /// The parameter sets a checkpoint holds, by name (V only for the IQL variant).
    public var parameterSets: [String: Parameters] {
        var sets = ["actor": policy.base.parameters, "actor_target": targetPolicy.base.parameters,
                    "critic": critic.parameters, "critic_target": critic.target]
        if settings.variant == .iql { sets["value"] = value.parameters }
        return sets
    }

    /// The optimizers a checkpoint holds, by the name of the parameter set they update.
    public var optimizers: [String: Adam] {
        var optimizers = ["actor": actorOptimizer, "critic": criticOptimizer]
        if settings.variant == .iql { optimizers["value"] = valueOptimizer }
        return optimizers
    }
}
