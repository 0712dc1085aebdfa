import Foundation
import Algorithms
import Diffusion
import Networks
import Tensors

/// The policy a run trains: DPPO's diffusion policy or the Gaussian-MLP baseline. Both hold a frozen
/// pre-trained copy (`baseParameters`) and the copy that is trained and broadcast (`trainableParameters`).
public enum PolicyModel {
    case diffusion(DiffusionPolicy)
    case gaussian(GaussianPolicy)

    /// The policy `config.model` describes, with uninitialised weights.
    public init(config: RunConfig) {
        switch config.model.policy {
        case .diffusion: self = .diffusion(DiffusionPolicy(settings: config.denoising, network: config.networkShape))
        case .gaussian: self = .gaussian(GaussianPolicy(shape: config.gaussianShape, randnClip: config.model.randnClip))
        }
    }

    public var rollout: RolloutPolicy {
        switch self { case .diffusion(let policy): return policy; case .gaussian(let policy): return policy }
    }

    /// The rollout policy with its chain sampling split over `shards` workers (the same noise per row; the Gaussian
    /// policy's one matrix product per decision is not worth splitting).
    public func rollout(shards: Int) -> RolloutPolicy {
        switch self {
        case .diffusion(let policy): return shards > 1 ? ShardedDiffusionSampler(policy: policy, shards: shards) : policy
        case .gaussian(let policy): return policy
        }
    }

    /// What the PPO update trains: the fine-tuned denoising steps, or the Gaussian's mean and std.
    public func makePPOActor() -> PPOActor {
        switch self { case .diffusion(let policy): return DiffusionPPOActor(policy: policy); case .gaussian(let policy): return policy }
    }

    public var baseParameters: Parameters {
        switch self { case .diffusion(let policy): return policy.base.parameters; case .gaussian(let policy): return policy.base.parameters }
    }

    public var trainableParameters: Parameters { rollout.broadcastParameters }

    public var kind: PolicyKind {
        switch self { case .diffusion: return .diffusion; case .gaussian: return .gaussian }
    }

    /// Fresh random weights, the same in both copies.
    public func initialize(random: inout Philox) {
        switch self { case .diffusion(let policy): policy.initialize(random: &random); case .gaussian(let policy): policy.initialize(random: &random) }
    }
}

/// `model.policy` in a config.
public enum PolicyKind: String, Sendable, Codable, CaseIterable {
    case diffusion
    case gaussian
}
