import Foundation
import Algorithms
import Datasets
import Diffusion
import Networks
import Tensors

/// Policy checkpoints: one safetensors file holding the frozen pre-trained policy (`base.*`), the trained copy
/// (`ft.*`: DPPO's fine-tuned network, or the Gaussian's network) and, for fine-tuning checkpoints, the critic
/// (`critic.*`) and optimizer moments (`optimizer.<name>.m|v`); plus a JSON sidecar with what is not a tensor
/// (iteration, policy version, optimizer steps, reward-scaler state, the architecture, denoising settings and
/// the observation/action normalisation the policy was trained with). A fine-tuning checkpoint also holds what
/// `dppo learner --resume` needs to continue the run: the learner's random-number state, the learning-rate
/// schedules' positions, the evaluations so far, the run's wall time and its dropped-segment counts.
public struct CheckpointInfo: Codable, Sendable {
    public var kind: String                 // "pretrain" or "finetune"
    public var iteration: Int
    public var policyVersion: UInt64
    public var environmentSteps: Int
    public var policy: PolicyKind?          // absent in early checkpoints: diffusion
    public var network: DiffusionMLPShape?
    public var denoising: DenoisingSettings?
    public var gaussian: GaussianMLPShape?
    /// Normalisation to [−1, 1] of observations and actions; nil: the task's declared bounds.
    public var normalization: Normalization?
    public var actorOptimizerStep: Int?
    public var criticOptimizerStep: Int?
    public var rewardScaler: RunningRewardScaler?
    public var evalReturn: Double?
    /// The PPO update's generator (minibatch permutations); resuming continues at its next Philox block.
    public var learnerRandom: Philox?
    /// Learning-rate scheduler steps taken by the actor and the critic.
    public var actorScheduleSteps: Int?
    public var criticScheduleSteps: Int?
    /// The evaluation before the first update, and the latest one.
    public var initialEvaluation: EvaluationResult?
    public var lastEvaluation: EvaluationResult?
    /// Learner wall time of the run so far, across resumes.
    public var wallSeconds: Double?
    public var droppedSegments: [String: Int]?

    public init(kind: String, iteration: Int, policyVersion: UInt64, environmentSteps: Int, model: PolicyModel, normalization: Normalization?,
                actorOptimizerStep: Int? = nil, criticOptimizerStep: Int? = nil, rewardScaler: RunningRewardScaler? = nil, evalReturn: Double? = nil) {
        self.kind = kind
        self.iteration = iteration
        self.policyVersion = policyVersion
        self.environmentSteps = environmentSteps
        policy = model.kind
        switch model {
        case .diffusion(let diffusion): network = diffusion.base.shape; denoising = diffusion.settings
        case .gaussian(let gaussian): self.gaussian = gaussian.shape
        }
        self.normalization = normalization
        self.actorOptimizerStep = actorOptimizerStep
        self.criticOptimizerStep = criticOptimizerStep
        self.rewardScaler = rewardScaler
        self.evalReturn = evalReturn
    }
}

public enum Checkpoint {
    public static func sidecarURL(for url: URL) -> URL { url.deletingPathExtension().appendingPathExtension("json") }

    public static func save(model: PolicyModel, update: PPOUpdate?, info: CheckpointInfo, to url: URL) throws {
        try encode(model: model, update: update, info: info).write(to: url)
    }

    /// A checkpoint's two files, encoded in memory: what `save` writes, or a copy of the state kept to be written
    /// later (the learner's state before an update it may abandon on a signal).
    public struct Encoded: Sendable {
        public let tensors: Data
        public let sidecar: Data

        /// Writes the tensors, then the sidecar, each atomically: a checkpoint whose sidecar exists is complete.
        public func write(to url: URL) throws {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try tensors.write(to: url, options: .atomic)
            try sidecar.write(to: sidecarURL(for: url), options: .atomic)
        }
    }

    public static func encode(model: PolicyModel, update: PPOUpdate?, info: CheckpointInfo) throws -> Encoded {
        var tensors = model.baseParameters.namedTensors(prefix: "base.") + model.trainableParameters.namedTensors(prefix: "ft.")
        if let update {
            tensors += update.critic.parameters.namedTensors(prefix: "critic.")
            tensors += update.actorOptimizer.momentTensors(name: "actor") + update.criticOptimizer.momentTensors(name: "critic")
        }
        return Encoded(tensors: try Safetensors.encode(tensors, metadata: ["format": "dppo-swift-checkpoint", "kind": info.kind]),
                       sidecar: try SidecarCoding.encoder().encode(info))
    }

    /// The fine-tuning checkpoint of `run` with the most iterations (`itr-N` or `final`): where `--resume` continues.
    public static func latest(in run: RunDirectory) throws -> URL {
        let files = (try? FileManager.default.contentsOfDirectory(at: run.checkpoints, includingPropertiesForKeys: nil)) ?? []
        // The sidecar is written after the weights, atomically: a checkpoint whose sidecar exists is complete.
        let candidates = files.filter { $0.pathExtension == "safetensors" && FileManager.default.fileExists(atPath: sidecarURL(for: $0).path) }
            .compactMap { url in (try? readInfo(from: url)).flatMap { $0.kind == "finetune" ? (url, $0.iteration) : nil } }
        guard let newest = candidates.max(by: { $0.1 < $1.1 }) else {
            throw CheckpointError.missing("no fine-tuning checkpoint in \(run.checkpoints.path) to resume from (checkpoints are written every train.save_model_freq iterations)")
        }
        return newest.0
    }

    /// Restores the learner's training state from a fine-tuning checkpoint whose policy `load` already read:
    /// critic weights, both AdamW states (moments and step counts), the running reward scaler, the update's random
    /// generator and the learning-rate schedules' positions.
    public static func restoreTraining(_ update: PPOUpdate, info: CheckpointInfo, from url: URL) throws {
        let name = url.lastPathComponent
        guard info.kind == "finetune" else { throw CheckpointError.incompatible("checkpoint \(name) is a \(info.kind) checkpoint; only fine-tuning checkpoints resume a run") }
        guard let random = info.learnerRandom, let actorScheduleSteps = info.actorScheduleSteps, let criticScheduleSteps = info.criticScheduleSteps,
              info.initialEvaluation != nil else {
            throw CheckpointError.incompatible("checkpoint \(name) predates resumable checkpoints (its sidecar lacks the learner's random state, schedules and evaluations)")
        }
        let (tensors, _) = try Safetensors.read(from: url)
        try update.critic.parameters.load(tensors, prefix: "critic.")
        for (optimizerName, optimizer, step) in [("actor", update.actorOptimizer, info.actorOptimizerStep), ("critic", update.criticOptimizer, info.criticOptimizerStep)]
        where !optimizer.restoreMoments(name: optimizerName, step: step, from: tensors) {
            throw CheckpointError.incompatible("checkpoint \(name) lacks a complete \(optimizerName) optimizer state")
        }
        if update.rewardScaler != nil {
            guard let scaler = info.rewardScaler, scaler.runningReturns.count == update.rewardScaler?.runningReturns.count else {
                throw CheckpointError.incompatible("checkpoint \(name) holds no reward scaler for \(update.rewardScaler?.runningReturns.count ?? 0) streams (cluster.actors × env.n_envs must match the run's)")
            }
            update.rewardScaler = scaler
        }
        update.random = random
        update.actorScheduleSteps = actorScheduleSteps
        update.criticScheduleSteps = criticScheduleSteps
    }

    public static func readInfo(from url: URL) throws -> CheckpointInfo {
        let sidecar = sidecarURL(for: url)
        guard FileManager.default.fileExists(atPath: url.path) else {
            // Name what is there: after the last iteration a run writes `final`, not `itr-N`.
            let folder = url.deletingLastPathComponent()
            let present = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
                .filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(".safetensors".count)) }
                .sorted { $0.localizedStandardCompare($1) == .orderedAscending }
            throw CheckpointError.missing("no checkpoint \(url.path)" + (present.isEmpty ? " (its folder holds none)"
                : "; \(folder.path) holds \(present.joined(separator: ", ")) (a run's last iteration is saved as final)"))
        }
        guard let data = try? Data(contentsOf: sidecar) else {
            throw CheckpointError.missing("checkpoint sidecar \(sidecar.path) is missing: a checkpoint is the .safetensors file plus its .json")
        }
        do { return try SidecarCoding.decoder().decode(CheckpointInfo.self, from: data) } catch {
            throw CheckpointError.invalid("checkpoint sidecar \(sidecar.path) is not valid: \(error)")
        }
    }

    /// Loads both copies of the policy after checking that the checkpoint's architecture is the one `model` has.
    /// A pre-training checkpoint's EMA weights are base and trained copy alike.
    @discardableResult
    public static func load(_ model: PolicyModel, from url: URL) throws -> CheckpointInfo {
        let info = try readInfo(from: url)
        let name = url.lastPathComponent
        switch model {
        case .diffusion(let policy):
            guard (info.policy ?? .diffusion) == .diffusion, let network = info.network, let denoising = info.denoising else {
                throw CheckpointError.incompatible("checkpoint \(name) holds a \(info.policy?.rawValue ?? "?") policy; the config asks for model.policy: diffusion")
            }
            guard network == policy.base.shape else {
                throw CheckpointError.incompatible("checkpoint \(name) has network \(network), the config asks for \(policy.base.shape)")
            }
            guard denoising.denoisingSteps == policy.settings.denoisingSteps, denoising.horizonSteps == policy.settings.horizonSteps else {
                throw CheckpointError.incompatible("checkpoint \(name) was trained with K=\(denoising.denoisingSteps), Tp=\(denoising.horizonSteps); the config has K=\(policy.settings.denoisingSteps), Tp=\(policy.settings.horizonSteps)")
            }
        case .gaussian(let policy):
            guard info.policy == .gaussian, let shape = info.gaussian else {
                throw CheckpointError.incompatible("checkpoint \(name) holds a \((info.policy ?? .diffusion).rawValue) policy; the config asks for model.policy: gaussian")
            }
            guard shape.mlpDims == policy.shape.mlpDims, shape.chunkWidth == policy.shape.chunkWidth, shape.observationDim == policy.shape.observationDim else {
                throw CheckpointError.incompatible("checkpoint \(name) has Gaussian network \(shape), the config asks for \(policy.shape)")
            }
        }
        let (tensors, _) = try Safetensors.read(from: url)
        try model.baseParameters.load(tensors, prefix: "base.")
        try model.trainableParameters.load(tensors, prefix: "ft.")
        return info
    }
}

extension Adam {
    /// `optimizer.<name>.m` and `optimizer.<name>.v`: the moments a checkpoint stores (its JSON holds the step count).
    func momentTensors(name: String) -> [NamedTensor] {
        let state = state()
        return [NamedTensor(name: "optimizer.\(name).m", shape: [state.firstMoment.count], values: state.firstMoment),
                NamedTensor(name: "optimizer.\(name).v", shape: [state.secondMoment.count], values: state.secondMoment)]
    }

    /// Restores what `momentTensors(name:)` wrote, at `step`; false (and nothing changed) when a part is missing or
    /// does not fit these parameters.
    func restoreMoments(name: String, step: Int?, from tensors: [String: NamedTensor]) -> Bool {
        guard let m = tensors["optimizer.\(name).m"], let v = tensors["optimizer.\(name).v"], let step, step >= 0,
              m.values.count == parameters.count, v.values.count == parameters.count else { return false }
        restore(step: step, firstMoment: m.values, secondMoment: v.values)
        return true
    }
}
