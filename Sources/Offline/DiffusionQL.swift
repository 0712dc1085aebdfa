import Diffusion
import Foundation
import Networks
import Tensors

/// Diffusion-QL hyperparameters (docs/offline-algorithms.md §2); defaults are the official code's locomotion values.
/// The discount lives in the dataset (`OfflineDataset`'s γ^Tp per transition).
public struct DiffusionQLSettings: Sendable, Equatable, Codable {
    /// η, the weight of the normalised Q term L_q (§2.2; per task in §2.6: 1.0 locomotion, 0.5–4.5 antmaze, 0.005 kitchen).
    public var eta = 1.0
    /// No actor update at all (critic warm-up against a fixed, e.g. behaviour-cloned, actor).
    public var freezeActor = false
    /// Actor Adam learning rate (§2.6: 3e-4, pen 3e-5, antmaze-medium-play 1e-3).
    public var actorLearningRate = 3e-4
    /// Critic Adam learning rate, 3e-4 for every task in the code (§2.4).
    public var criticLearningRate = 3e-4
    /// Global gradient-norm clip of each network (`gn` of §2.6, e.g. 9 hopper-medium, 1 walker2d-medium); nil or ≤ 0: off.
    public var gradientNormClip: Double? = 5
    /// τ of the critic targets' Polyak update every step (§2.3).
    public var targetUpdateRate = 0.005
    /// The EMA actor that supplies next actions to the TD targets (§2.3): 0.995 every 5 steps from step 1000.
    public var targetActor = TargetActorSchedule()
    /// Max-Q backup with `maxQSamples` next actions per state (§2.2; on for antmaze except umaze).
    public var maxQBackup = false
    public var maxQSamples = 10
    /// Cosine decay of both learning rates to 0 over this many steps (§2.4); nil keeps them constant, which is
    /// what the code's per-50-epoch scheduler amounts to (≈ 0.1 % decay).
    public var learningRateDecaySteps: Int? = nil
    /// Evaluation (§2.7): N candidates from the online actor scored by min of the target critics, one drawn by `selection`.
    public var evaluationCandidates = 50
    public var selection = CandidateRule.softmax(temperature: 1)

    public init() {}
}

/// Diffusion-QL (§2) on a DPPO diffusion policy: the actor is `policy.base` (trained in place; `policy.fineTuned` is
/// left alone — copy the actor into it with `copyActor` before handing the policy to DPPO), the EMA actor is the base
/// network of `targetPolicy`.
///
/// One `trainStep` is §2.5: critic update with targets from the EMA actor; actor update with
/// L = L_diff + η·L_q, L_q = −mean Q_j(s, â)/sg(mean |Q_other(s, â)|), â a differentiable sample of the whole chain
/// and j drawn by one coin flip, against the critics just updated; EMA actor update; critic target update.
public final class DiffusionQLTrainer {
    public let policy: DiffusionPolicy
    public let targetPolicy: DiffusionPolicy
    public let critic: TwinQCritic
    public var settings: DiffusionQLSettings
    public let actorOptimizer: Adam
    public let criticOptimizer: Adam
    /// Gradient steps taken; set it (with `random`) when resuming from a checkpoint.
    public var step = 0
    public var random: Philox
    let sampler: ChunkSampler
    let chain: DifferentiableChain
    let approximation: ActionApproximation
    let targets: SampledTargets
    let selector: CandidateSelector
    let gradient1: Matrix, gradient2: Matrix, actionGradient: Matrix

    /// - policy: the actor, already initialised or pre-trained (its base network is trained).
    /// - critic: the twin-critic architecture; by default 256×3 Mish on the policy's observation and chunk widths.
    /// - sampler: draws next actions from the EMA actor and evaluation candidates (DDPM by default).
    public init(policy: DiffusionPolicy, settings: DiffusionQLSettings = DiffusionQLSettings(), critic criticShape: CriticShape? = nil,
                sampler: ChunkSampler = DDPMChunkSampler(), seed: UInt64) {
        let shape = CriticShape.resolved(criticShape, for: policy)
        self.policy = policy
        self.settings = settings
        self.sampler = sampler
        random = Philox(seed: seed, stream: 0xD0)
        targetPolicy = targetCopy(of: policy)
        critic = TwinQCritic(shape: shape)
        critic.initialize(random: &random)
        let clip = settings.gradientNormClip.flatMap { $0 > 0 ? Float($0) : nil }
        actorOptimizer = Adam(parameters: policy.base.parameters, learningRate: Float(settings.actorLearningRate), maxGradientNorm: clip)
        criticOptimizer = Adam(parameters: critic.parameters, learningRate: Float(settings.criticLearningRate), maxGradientNorm: clip)
        chain = DifferentiableChain(policy: policy)
        approximation = ActionApproximation(policy: policy)
        targets = SampledTargets(observationDim: shape.observationDim, actionDim: shape.actionDim)
        selector = CandidateSelector(candidates: settings.evaluationCandidates, rule: settings.selection, criticCopy: .target,
                                     sampler: sampler, observationDim: shape.observationDim, actionDim: shape.actionDim)
        gradient1 = Matrix(rows: 0, columns: 1)
        gradient2 = Matrix(rows: 0, columns: 1)
        actionGradient = Matrix(rows: 0, columns: shape.actionDim)
    }

    /// One gradient step of critic and actor on `batch` (§2.5).
    @discardableResult
    public func trainStep(batch: OfflineBatch) -> OfflineStatistics {
        var statistics = OfflineStatistics()
        statistics.step = step
        let size = batch.count
        actorOptimizer.learningRate = cosineDecayed(settings.actorLearningRate, step: step, steps: settings.learningRateDecaySteps)
        criticOptimizer.learningRate = cosineDecayed(settings.criticLearningRate, step: step, steps: settings.learningRateDecaySteps)
        statistics.actorLearningRate = Double(actorOptimizer.learningRate)

        // Critic: y from the EMA actor and the target critics; L_Q; step.
        let y = targets.compute(batch: batch, targetPolicy: targetPolicy, sampler: sampler, critic: critic,
                                samplesPerState: settings.maxQBackup ? settings.maxQSamples : 1, random: &random)
        statistics.targetMean = mean(y)
        let regression = criticRegression(critic: critic, batch: batch, targets: y, gradient1: gradient1, gradient2: gradient2)
        statistics.criticLoss = regression.loss
        statistics.datasetQ = regression.q1Mean
        statistics.criticGradientNorm = criticOptimizer.update()

        // Actor: L_diff on the batch, then η·L_q through the whole chain, against the updated critics. With η = 0 the
        // chain's gradient is exactly zero, so the chain is neither sampled nor differentiated.
        if settings.freezeActor {
            finishStep()
            return statistics
        }
        policy.base.parameters.zeroGradients()
        statistics.diffusionLoss = approximation.forward(observations: batch.observations, actions: batch.actions, random: &random)
        approximation.backward(diffusionWeight: 1, denoisedGradient: nil)
        guard settings.eta != 0 else {
            statistics.actorLoss = statistics.diffusionLoss
            statistics.actorGradientNorm = actorOptimizer.update()
            finishStep()
            return statistics
        }
        let action = chain.sample(observations: batch.observations, random: &random)
        let (q1, q2) = critic.forward(observations: batch.observations, actions: action)
        let useFirst = random.uniform() < 0.5
        let (chosen, other) = useFirst ? (q1, q2) : (q2, q1)
        let normaliser = max(meanAbsolute(other), 1e-8)
        statistics.policyQ = mean(chosen)
        statistics.guideLoss = -settings.eta * statistics.policyQ / normaliser
        statistics.actorLoss = statistics.diffusionLoss + statistics.guideLoss
        let gradient = useFirst ? gradient1 : gradient2
        gradient.resize(rows: size)
        gradient.fill(Float(-settings.eta / (normaliser * Double(size))))
        critic.backward(q1Gradient: useFirst ? gradient : nil, q2Gradient: useFirst ? nil : gradient, actionGradient: actionGradient)
        chain.backward(actionGradient: actionGradient)
        statistics.actorGradientNorm = actorOptimizer.update()
        finishStep()
        return statistics
    }

    /// One step of Monte Carlo critic pre-training (`monteCarloCriticStep`); the actor and the step counter are untouched.
    @discardableResult
    public func pretrainCriticStep(batch: OfflineBatch) -> OfflineStatistics {
        var statistics = OfflineStatistics()
        statistics.step = step
        monteCarloCriticStep(critic: critic, optimizer: criticOptimizer, batch: batch, gradient1: gradient1, gradient2: gradient2, statistics: &statistics)
        return statistics
    }

    /// Target networks and the step counter, after the updates of a step.
    func finishStep() {
        if settings.targetActor.applies(atStep: step) {
            polyakUpdate(target: targetPolicy.base.parameters, source: policy.base.parameters, rate: Float(1 - settings.targetActor.decay))
        }
        critic.updateTarget(rate: Float(settings.targetUpdateRate))
        step += 1
    }

    /// Evaluation actions (§2.7): one chunk per observation row into `actions`.
    public func selectActions(observations: Matrix, actions: Matrix) {
        selector.select(policy: policy, critic: critic, observations: observations, actions: actions, random: &random)
    }

    /// The weights of one actor copy (see `copyActor`).
    public func actor(_ copy: ActorCopy) -> Parameters { copy == .online ? policy.base.parameters : targetPolicy.base.parameters }

    /// The parameter sets a checkpoint holds, by name.
    public var parameterSets: [String: Parameters] {
        ["actor": policy.base.parameters, "actor_ema": targetPolicy.base.parameters, "critic": critic.parameters, "critic_target": critic.target]
    }

    /// The optimizers a checkpoint holds, by the name of the parameter set they update.
    public var optimizers: [String: Adam] { ["actor": actorOptimizer, "critic": criticOptimizer] }
}

/// Which actor copy a trained offline policy exports.
public enum ActorCopy: String, Sendable, Codable, CaseIterable {
    /// The trained actor (what Diffusion-QL evaluates).
    case online
    /// The EMA / target actor (what DPPO's loader prefers when an "ema" entry exists, §5.4).
    case ema
}

/// Copies `parameters` into both networks of `destination`, so that DPPO starts with base = fine-tuned copy.
public func copyActor(_ parameters: Parameters, into destination: DiffusionPolicy) {
    destination.base.parameters.copy(from: parameters)
    destination.fineTuned.parameters.copy(from: parameters)
}

func mean(_ matrix: Matrix) -> Double {
    var sum = 0.0
    for index in 0..<matrix.count { sum += Double(matrix.data[index]) }
    return sum / Double(max(matrix.count, 1))
}

func meanAbsolute(_ matrix: Matrix) -> Double {
    var sum = 0.0
    for index in 0..<matrix.count { sum += Double(abs(matrix.data[index])) }
    return sum / Double(max(matrix.count, 1))
}
