/// What one offline gradient step measured, for logging. Losses are the values before the step's updates.
public struct OfflineStatistics: Sendable, Equatable, Codable {
    /// Gradient steps taken before this one (0 for the first).
    public var step = 0
    /// L_Q, the sum of the two critics' MSEs.
    public var criticLoss = 0.0
    /// L_diff, the denoising (behaviour-cloning) loss.
    public var diffusionLoss = 0.0
    /// The policy-improvement term: η·L_q (Diffusion-QL), the TD3 guide term, or −mean f·log π̂ (CRR, IQL).
    public var guideLoss = 0.0
    /// The whole actor loss (weighted sum of the two above).
    public var actorLoss = 0.0
    /// IQL's expectile loss of V; 0 for the other methods.
    public var valueLoss = 0.0
    /// Batch mean of Q1(s, a) on dataset actions.
    public var datasetQ = 0.0
    /// Batch mean of the TD target y.
    public var targetMean = 0.0
    /// Batch mean of the chosen critic at the policy's actions (Diffusion-QL, EDP-TD3) or of min(Q1, Q2) at â⁰ (CRR).
    public var policyQ = 0.0
    /// Batch mean of the regression weight f (CRR, IQL).
    public var weightMean = 0.0
    /// Gradient norms before clipping.
    public var actorGradientNorm = 0.0
    public var criticGradientNorm = 0.0
    public var valueGradientNorm = 0.0
    public var actorLearningRate = 0.0

    public init() {}

    /// (name, value) pairs named like CleanRL's metrics.
    public var metrics: [(name: String, value: Double)] {
        [("losses/critic", criticLoss), ("losses/diffusion", diffusionLoss), ("losses/guide", guideLoss), ("losses/actor", actorLoss),
         ("losses/value", valueLoss), ("values/dataset_q", datasetQ), ("values/target", targetMean), ("values/policy_q", policyQ),
         ("values/weight", weightMean), ("grads/actor_norm", actorGradientNorm), ("grads/critic_norm", criticGradientNorm),
         ("grads/value_norm", valueGradientNorm), ("charts/actor_lr", actorLearningRate)]
    }
}
