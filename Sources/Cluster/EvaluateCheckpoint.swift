import Foundation
import Diffusion

/// Loads a checkpoint into the policy `config` describes and evaluates it over `episodes` episodes,
/// with the normalisation stored in the checkpoint.
public func evaluateCheckpoint(config: RunConfig, checkpoint: URL, episodes: Int, mode: SamplingMode = .deterministic) throws -> EvaluationResult {
    let model = PolicyModel(config: config)
    let info = try Checkpoint.load(model, from: checkpoint)
    return try evaluatePolicy(model.rollout, config: config, normalization: info.normalization, episodes: episodes, seed: config.seed &+ 7777, mode: mode)
}
