import Foundation
import Algorithms
import Diffusion
import Tensors

/// `dppo pretrain`: behaviour cloning of the diffusion policy on scripted demonstrations, with progress
/// and an ETA; writes a checkpoint whose EMA weights fine-tuning starts from.
public func runPretraining(config: RunConfig, output: URL, log: (String) -> Void = Cluster.log) throws -> URL {
    BLAS.setThreads(config.cluster.learnerThreads)
    let started = Date()
    let (dataset, demonstratorReturn) = try collectDemonstrations(config: config, seed: config.seed &+ 99)
    log(String(format: "pretrain: %d (observation, chunk) pairs from %d demonstrations, demonstrator return %.1f",
               dataset.count, config.pretrain.demonstrationEpisodes, demonstratorReturn))
    let policy = DiffusionPolicy(settings: config.denoising, network: config.networkShape)
    var random = Philox(seed: config.seed, stream: 0x1417)
    policy.initialize(random: &random)
    let trainer = DiffusionPretrainer(policy: policy, settings: config.pretrain.settings, seed: config.seed)
    let epochs = config.pretrain.settings.epochs
    var lastReport = Date.distantPast
    for epoch in 0..<epochs {
        let loss = trainer.trainEpoch(dataset, epoch: epoch)
        if Date().timeIntervalSince(lastReport) > 5 || epoch + 1 == epochs {
            lastReport = Date()
            let elapsed = Date().timeIntervalSince(started)
            let eta = elapsed / Double(epoch + 1) * Double(epochs - epoch - 1)
            log(String(format: "pretrain: epoch %d/%d loss %.4f lr %.1e | %.0fs elapsed, ETA %.0fs", epoch + 1, epochs, loss,
                       Double(trainer.optimizer.learningRate), elapsed, eta))
        }
    }
    trainer.finish()
    let url = output.appendingPathComponent("pretrained.safetensors")
    let info = CheckpointInfo(kind: "pretrain", iteration: epochs, policyVersion: 0, environmentSteps: 0, network: policy.base.shape,
                              denoising: policy.settings, actorOptimizerStep: trainer.optimizer.step, criticOptimizerStep: nil,
                              rewardScaler: nil, evalReturn: nil)
    try Checkpoint.save(policy: policy, update: nil, info: info, to: url)
    log(String(format: "pretrain: wrote %@ in %.0f s", url.path, Date().timeIntervalSince(started)))
    return url
}
