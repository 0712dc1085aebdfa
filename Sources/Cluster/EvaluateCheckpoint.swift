import Foundation
import Diffusion
import Networks
import Offline
import Tensors

/// Loads a checkpoint into the policy `config` describes and evaluates it over `episodes` episodes,
/// with the normalisation stored in the checkpoint.
public func evaluateCheckpoint(config: RunConfig, checkpoint: URL, episodes: Int, mode: SamplingMode = .deterministic) throws -> EvaluationResult {
    let model = PolicyModel(config: config)
    let info = try Checkpoint.load(model, from: checkpoint)
    BLAS.setThreads(1) // the chains are split over `threads` workers instead
    return try evaluatePolicy(model.rollout(shards: config.workerThreads(for: .pretrain)), config: config, normalization: info.normalization,
                              episodes: episodes, seed: config.seed &+ 7777, mode: mode)
}

/// Evaluates an offline checkpoint as its method evaluates it: N candidate chunks per state from the actor, one
/// picked by the critics `dppo offline` saved next to it (`<name>-critics.safetensors`): the online critics for EDP's
/// energy-based selection, the target critics for Diffusion-QL, each with its method's softmax rule.
public func evaluateCheckpointWithCritics(config: RunConfig, checkpoint: URL, critics: URL, candidates: Int, episodes: Int) throws -> EvaluationResult {
    let model = PolicyModel(config: config)
    let info = try Checkpoint.load(model, from: checkpoint)
    guard case .diffusion(let policy) = model else { throw ConfigError("critic-guided evaluation needs a diffusion policy (model.policy: diffusion)") }
    guard candidates >= 1 else { throw ConfigError("--candidates must be at least 1") }
    let (tensors, method) = try OfflineCriticsFile.read(critics)
    let critic = TwinQCritic(shape: CriticShape(observationDim: policy.base.shape.observationDim, actionDim: policy.settings.chunkWidth))
    try critic.parameters.load(tensors, prefix: "critic.")
    try critic.target.load(tensors, prefix: "critic_target.")
    let isDiffusionQL = method == "Diffusion-QL"
    let selector = CandidateSelector(candidates: candidates, rule: isDiffusionQL ? DiffusionQLSettings().selection : EDPSettings().selection,
                                     criticCopy: isDiffusionQL ? .target : .online, sampler: DDPMChunkSampler(),
                                     observationDim: critic.shape.observationDim, actionDim: critic.shape.actionDim)
    let selected = CriticSelectedPolicy(policy: policy) { observations, actions, random in
        selector.select(policy: policy, critic: critic, observations: observations, actions: actions, random: &random)
    }
    return try evaluatePolicy(selected, config: config, normalization: info.normalization, episodes: episodes, seed: config.seed &+ 7777)
}
