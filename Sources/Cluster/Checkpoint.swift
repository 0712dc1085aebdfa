import Foundation
import Algorithms
import Diffusion
import Networks

/// Policy checkpoints: one safetensors file holding the frozen base network (`base.*`), the fine-tuned
/// network (`ft.*`) and, for fine-tuning checkpoints, the critic (`critic.*`) and optimizer moments
/// (`optimizer.<name>.m|v`); plus a JSON sidecar with what is not a tensor (iteration, policy version,
/// optimizer steps, reward-scaler state, the network shape and denoising settings).
public struct CheckpointInfo: Codable, Sendable {
    public var kind: String                 // "pretrain" or "finetune"
    public var iteration: Int
    public var policyVersion: UInt64
    public var environmentSteps: Int
    public var network: DiffusionMLPShape
    public var denoising: DenoisingSettings
    public var actorOptimizerStep: Int?
    public var criticOptimizerStep: Int?
    public var rewardScaler: RunningRewardScaler?
    public var evalReturn: Double?
}

public enum Checkpoint {
    public static func sidecarURL(for url: URL) -> URL { url.deletingPathExtension().appendingPathExtension("json") }

    public static func save(policy: DiffusionPolicy, update: DPPOUpdate?, info: CheckpointInfo, to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var tensors = policy.base.parameters.namedTensors(prefix: "base.") + policy.fineTuned.parameters.namedTensors(prefix: "ft.")
        if let update {
            tensors += update.critic.parameters.namedTensors(prefix: "critic.")
            for (name, optimizer) in [("actor", update.actorOptimizer), ("critic", update.criticOptimizer)] {
                let state = optimizer.state()
                tensors.append(NamedTensor(name: "optimizer.\(name).m", shape: [state.firstMoment.count], values: state.firstMoment))
                tensors.append(NamedTensor(name: "optimizer.\(name).v", shape: [state.secondMoment.count], values: state.secondMoment))
            }
        }
        try Safetensors.write(tensors, metadata: ["format": "dppo-swift-checkpoint", "kind": info.kind], to: url)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(info).write(to: sidecarURL(for: url), options: .atomic)
    }

    public static func readInfo(from url: URL) throws -> CheckpointInfo {
        let sidecar = sidecarURL(for: url)
        guard let data = try? Data(contentsOf: sidecar) else {
            throw ConfigError("checkpoint sidecar \(sidecar.path) is missing: a checkpoint is the .safetensors file plus its .json")
        }
        return try JSONDecoder().decode(CheckpointInfo.self, from: data)
    }

    /// Loads both policy networks. A pre-training checkpoint's EMA weights become base and fine-tuned copy alike.
    public static func loadPolicy(_ policy: DiffusionPolicy, from url: URL) throws -> CheckpointInfo {
        let info = try readInfo(from: url)
        guard info.network == policy.base.shape else {
            throw ConfigError("checkpoint \(url.lastPathComponent) has network \(info.network), the config asks for \(policy.base.shape)")
        }
        guard info.denoising.denoisingSteps == policy.settings.denoisingSteps, info.denoising.horizonSteps == policy.settings.horizonSteps else {
            throw ConfigError("checkpoint \(url.lastPathComponent) was trained with K=\(info.denoising.denoisingSteps), Tp=\(info.denoising.horizonSteps); the config has K=\(policy.settings.denoisingSteps), Tp=\(policy.settings.horizonSteps)")
        }
        let (tensors, _) = try Safetensors.read(from: url)
        try policy.base.parameters.load(tensors, prefix: "base.")
        try policy.fineTuned.parameters.load(tensors, prefix: "ft.")
        return info
    }
}
