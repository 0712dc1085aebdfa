import Foundation
import Algorithms
import Datasets
import Diffusion
import Tensors

/// `dppo pretrain`: behaviour cloning of the configured policy (diffusion or Gaussian) on the configured dataset,
/// with progress and an ETA; writes a checkpoint whose EMA weights fine-tuning starts from, together with the
/// dataset's normalisation (which actors and evaluation apply).
public func runPretraining(config: RunConfig, output: URL, log: (String) -> Void = Cluster.log) throws -> URL {
    // Parallelism comes from the objective's shards, each with single-threaded BLAS (docs/learner-scaling.md).
    BLAS.setThreads(1)
    try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
    let lock = try RunDirectory.lock(output, job: "pretrain")
    defer { withExtendedLifetime(lock) {} }
    let started = Date()
    if config.pretrain.settings.epochs == 0 && config.pretrain.dataset.isEmpty {
        return try writeInitialPolicy(config: config, output: output, log: log)
    }
    let data = try loadPretrainingData(config: config)
    try RunManifest.make(job: "pretrain", config: config,
                         inputs: ["dataset": config.pretrain.dataset, "normalization": config.pretrain.normalizationPath],
                         threads: config.workerThreads(for: .pretrain)).write(to: output)
    let normalization = try data.normalization ?? Normalization(dataset: data)
    let dataset = try data.chunkDataset(conditionSteps: config.environment.conditionSteps, horizonSteps: config.environment.horizonSteps,
                                        normalization: normalization)
    let summary = data.summary()
    log(String(format: "pretrain: %d (observation, chunk) windows from %d episodes (%@), episode return %@; %d threads",
               dataset.count, summary.episodeCount, data.metadata["source"] ?? config.pretrain.dataset,
               summary.episodeReturn.map { String(format: "%.1f", $0.mean) } ?? "n/a", config.workerThreads(for: .pretrain)))
    let model = PolicyModel(config: config)
    var random = Philox(seed: config.seed, stream: 0x1417)
    model.initialize(random: &random)
    let objective: BehaviourCloningObjective
    let shards = config.workerThreads(for: .pretrain)
    switch model {
    case .diffusion(let policy): objective = DiffusionBehaviourCloning(policy: policy, shards: shards)
    case .gaussian(let policy): objective = GaussianBehaviourCloning(policy: policy, shards: shards)
    }
    let trainer = Pretrainer(objective: objective, settings: config.pretrain.settings, seed: config.seed)
    let epochs = config.pretrain.settings.epochs
    var lastReport = Date.distantPast
    // One record per epoch in OUTPUT/metrics.jsonl and OUTPUT/tb/.
    let metrics = try MetricsWriter(url: output.appendingPathComponent("metrics.jsonl"), tensorBoard: output.appendingPathComponent("tb"))
    for epoch in 0..<epochs {
        if let signal = StopRequest.requestedSignal {
            // SIGTERM/SIGINT (`dppo pretrain`): the weights so far, under a name no pipeline mistakes for the result.
            trainer.finish(into: [model.baseParameters, model.trainableParameters])
            let url = output.appendingPathComponent("pretrained-epoch-\(epoch).safetensors")
            let info = CheckpointInfo(kind: "pretrain", iteration: epoch, policyVersion: 0, environmentSteps: 0, model: model,
                                      normalization: normalization, actorOptimizerStep: trainer.optimizer.step)
            try Checkpoint.save(model: model, update: nil, info: info, to: url)
            throw StoppedEarly(message: "pretrain: \(StopRequest.name(of: signal)): stopped after epoch \(epoch) of \(epochs); "
                               + "the weights so far are in \(url.path) (pretraining does not resume: run it again)", signal: signal)
        }
        let loss = trainer.trainEpoch(dataset, epoch: epoch)
        guard loss.isFinite else { throw OfflineError.diverged("pretrain: the loss became \(loss) in epoch \(epoch + 1); lower pretrain.learning_rate") }
        metrics.write(["epoch": epoch + 1, "train/loss": loss, "train/learning_rate": Double(trainer.optimizer.learningRate),
                       "perf/elapsed_seconds": Date().timeIntervalSince(started)])
        if Date().timeIntervalSince(lastReport) > 5 || epoch + 1 == epochs {
            lastReport = Date()
            let elapsed = Date().timeIntervalSince(started)
            let eta = elapsed / Double(epoch + 1) * Double(epochs - epoch - 1)
            log(String(format: "pretrain: epoch %d/%d loss %.4f lr %.1e | %.0fs elapsed, ETA %.0fs", epoch + 1, epochs, loss,
                       Double(trainer.optimizer.learningRate), elapsed, eta))
        }
    }
    trainer.finish(into: [model.baseParameters, model.trainableParameters])
    let url = output.appendingPathComponent("pretrained.safetensors")
    let info = CheckpointInfo(kind: "pretrain", iteration: epochs, policyVersion: 0, environmentSteps: 0, model: model, normalization: normalization,
                              actorOptimizerStep: trainer.optimizer.step)
    try Checkpoint.save(model: model, update: nil, info: info, to: url)
    // Beside the checkpoint: the resolved config, and summary.json with what produced it.
    try config.resolvedYAML.write(to: output.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
    let record: [String: Any] = ["dppo": Build.description, "dataset": config.pretrain.dataset.isEmpty ? "scripted demonstrations" : config.pretrain.dataset,
                                 "normalization_path": config.pretrain.normalizationPath, "windows": dataset.count, "epochs": epochs,
                                 "wall_seconds": Date().timeIntervalSince(started), "checkpoint": url.path, "state": "finished"]
    try JSONSerialization.data(withJSONObject: record, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        .write(to: output.appendingPathComponent("summary.json"))
    log(String(format: "pretrain: wrote %@ in %.0f s", url.path, Date().timeIntervalSince(started)))
    return url
}

/// `pretrain.n_epochs: 0` with no `pretrain.dataset`: freshly initialised weights, for PPO from scratch (the expert stage
/// of a pipeline). The checkpoint carries no dataset normalisation, so actors and evaluation use the task's bounds.
func writeInitialPolicy(config: RunConfig, output: URL, log: (String) -> Void) throws -> URL {
    let model = PolicyModel(config: config)
    var random = Philox(seed: config.seed, stream: 0x1417)
    model.initialize(random: &random)
    let url = output.appendingPathComponent("pretrained.safetensors")
    let info = CheckpointInfo(kind: "initial", iteration: 0, policyVersion: 0, environmentSteps: 0, model: model, normalization: nil,
                              actorOptimizerStep: 0)
    try Checkpoint.save(model: model, update: nil, info: info, to: url)
    log("pretrain: n_epochs 0 and no dataset: wrote freshly initialised \(model.kind.rawValue) weights to \(url.path) (training from scratch)")
    return url
}
