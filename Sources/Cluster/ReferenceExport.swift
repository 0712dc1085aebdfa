import Foundation
import Networks

/// `dppo export --format reference`: a checkpoint's tensors under the DPPO reference's PyTorch names
/// (irom-princeton/dppo), so its `DiffusionMLP` and `CriticObs` load them with `strict=True`. The file holds the
/// reference fine-tuning model's three modules side by side, as its checkpoints' `model` dict does:
/// `actor.*` (the frozen base DiffusionMLP), `actor_ft.*` (the fine-tuned copy) and `critic.*` (CriticObs; a
/// pre-training checkpoint has none). docs/checkpoints.md.
public enum ReferenceExport {
    /// The reference name of one of our network tensor names (`mlp_mean.block0.a.weight` → `mlp_mean.layers.1.l1.weight`).
    /// `blocks`: the residual blocks of that MLP, which place its output layer at `layers.<blocks + 1>`.
    public static func referenceName(_ name: String, blocks: Int) throws -> String {
        var parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 3 else { throw ConfigError("no reference name for tensor \(name)") }
        if parts[0] == "time_embedding", let index = Int(parts[1]), index < 2 {
            // Sequential(SinusoidalPosEmb, Linear, Mish, Linear): our two Linears are its modules 1 and 3.
            parts[1] = String(2 * index + 1)
            return parts.joined(separator: ".")
        }
        guard ["mlp_mean", "Q1"].contains(parts[0]) else { throw ConfigError("no reference name for tensor \(name)") }
        let layer = parts[1]
        var mapped: [String]
        if layer == "input" {
            mapped = ["layers", "0"]
        } else if layer == "output" {
            mapped = ["layers", String(blocks + 1)]
        } else if layer.hasPrefix("block"), let block = Int(layer.dropFirst(5)), parts.count == 4, ["a", "b"].contains(parts[2]) {
            // TwoLayerPreActivationResNetLinear: l1 and l2.
            mapped = ["layers", String(block + 1), parts[2] == "a" ? "l1" : "l2"]
            parts.remove(at: 2)
        } else {
            throw ConfigError("no reference name for tensor \(name)")
        }
        return ([parts[0]] + mapped + parts[2...]).joined(separator: ".")
    }

    /// The reference state dict of the checkpoint at `url`; optimizer moments are left out.
    public static func stateDict(of url: URL) throws -> [NamedTensor] {
        let tensors = try Safetensors.read(from: url).tensors
        let info = try Checkpoint.readInfo(from: url)
        guard (info.policy ?? .diffusion) == .diffusion else {
            throw ConfigError("\(url.lastPathComponent) holds a \(info.policy!.rawValue) policy; the reference export covers diffusion policies (DiffusionMLP)")
        }
        var out: [NamedTensor] = []
        for (ours, theirs) in [("base.", "actor."), ("ft.", "actor_ft."), ("critic.", "critic.")] {
            let group = tensors.filter { $0.key.hasPrefix(ours) }
            let blocks = Set(group.keys.compactMap { key -> String? in
                key.split(separator: ".").first { $0.hasPrefix("block") }.map { "\(key.split(separator: ".")[1])/\($0)" }
            }).count
            for key in group.keys.sorted() {
                var tensor = group[key]!
                tensor.name = theirs + (try referenceName(String(key.dropFirst(ours.count)), blocks: blocks))
                out.append(tensor)
            }
        }
        guard !out.isEmpty else { throw ConfigError("\(url.lastPathComponent) holds no network tensors (base.*, ft.*, critic.*)") }
        return out
    }
}
