import Foundation
import Algorithms
import Datasets

/// The learner's evaluations of its policy: `train.eval_episodes` episodes with deterministic sampling from the same
/// initial states every time, before the first iteration, every `train.val_freq` iterations and after the last. Its
/// chains are sampled on the update's workers (`ShardedDiffusionSampler`); the episodes' environments step on one.
struct PolicyEvaluator {
    let config: RunConfig
    let normalization: Normalization?
    let policy: RolloutPolicy

    /// Whether the iteration that just completed (1-based `iteration`) ends with an evaluation.
    func isDue(afterIteration iteration: Int) -> Bool {
        iteration == config.train.iterations || (config.train.evalEvery > 0 && iteration % config.train.evalEvery == 0)
    }

    func evaluate() throws -> EvaluationResult {
        try evaluatePolicy(policy, config: config, normalization: normalization, episodes: config.train.evalEpisodes,
                           seed: config.seed &+ 7777)
    }
}
