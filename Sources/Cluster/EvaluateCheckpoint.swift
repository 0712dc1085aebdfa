import Foundation
import Diffusion

/// Loads a checkpoint into a policy shaped by `config` and evaluates it deterministically.
public func evaluateCheckpoint(config: RunConfig, checkpoint: URL, episodes: Int) throws -> EvaluationResult {
    let policy = DiffusionPolicy(settings: config.denoising, network: config.networkShape)
    _ = try Checkpoint.loadPolicy(policy, from: checkpoint)
    return evaluatePolicy(policy, config: config, episodes: episodes, seed: config.seed &+ 7777)
}
