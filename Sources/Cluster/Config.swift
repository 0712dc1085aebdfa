import Foundation
import Algorithms
import Diffusion
import Environments
import Networks
import Offline
import Yams

/// A configuration problem, with the key path and what to do about it.
public struct ConfigError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "config error: \(message)" }
}

/// Everything a run needs, read from one YAML file plus `key.path=value` overrides.
/// Keys follow the DPPO reference where it has one (`ft_denoising_steps`, `clip_ploss_coef`, …).
public struct RunConfig: Sendable {
    public var name = "dppo"
    public var seed: UInt64 = 42
    /// `threads`: the workers the learner's update, pretraining and offline training split their passes across;
    /// nil (`auto`) resolves per job with `workerThreads(for:)`.
    public var threads: Int?
    public var environment = EnvironmentConfig()
    public var model = ModelConfig()
    public var train = TrainConfig()
    public var pretrain = PretrainConfig()
    public var cluster = ClusterConfig()
    public var offline = OfflineConfig()
    /// The YAML of the resolved config, written to the run directory.
    public var resolvedYAML = ""
    /// Every key the config reads, with the value it resolved to (file, then `--set`, then the default), in reading
    /// order: what `dppo config get` and `dppo config show` print.
    public var resolvedValues: [(key: String, value: ConfigValue)] = []

    public struct EnvironmentConfig: Sendable {
        public var task = TaskName.pendulum
        /// The Gymnasium version whose rules (and Walker2d model) the MuJoCo tasks follow.
        public var version = GymnasiumVersion.v5
        /// The bridged environment when `task` is `gymnasium`.
        public var gymnasium = GymnasiumSettings(id: "")
        /// Sizes, episode limit and bounds of the configured task, resolved when the config is read.
        public var description = TaskDescription(Pendulum())
        public var spec: TaskSpec { TaskSpec(name: task, version: version, gymnasium: gymnasium) }
        /// Environments per actor.
        public var environmentsPerActor = 16
        public var conditionSteps = 1
        public var actSteps = 2
        public var horizonSteps = 2
    }

    public struct ModelConfig: Sendable {
        /// `diffusion` (DPPO) or `gaussian` (the Gaussian-MLP PPO baseline).
        public var policy = PolicyKind.diffusion
        public var denoisingSteps = 20
        public var fineTunedSteps = 10
        public var timeDim = 16
        public var mlpDims = [256, 256, 256]
        public var activation = Activation.relu
        public var criticDims = [256, 256, 256]
        public var minSamplingStd = 0.1
        public var minLogProbStd = 0.1
        public var randnClip = 3.0
        public var denoisedClip = 1.0
        public var useDDIM = false
        public var ddimSteps = 5
        public var eta = 1.0
        /// Gaussian policy: initial std, whether it is learned, and its clamp range.
        public var fixedStd = 0.1
        public var learnFixedStd = true
        public var stdMin = 0.01
        public var stdMax = 0.2
    }

    public struct TrainConfig: Sendable {
        public var iterations = 40
        /// Decisions per environment per iteration (N_step).
        public var stepsPerIteration = 100
        public var dppo = PPOHyperparameters()
        /// Learner-side evaluation every this many iterations (and always before the first and after the last).
        public var evalEvery = 10
        public var evalEpisodes = 32
        public var checkpointEvery = 10
    }

    public struct PretrainConfig: Sendable {
        /// Existing checkpoint to fine-tune from; empty means "pre-train one first".
        public var checkpoint = ""
        /// Behaviour-cloning data: our dataset file (.safetensors) or the reference's .npz; empty: scripted demonstrations.
        public var dataset = ""
        /// The reference's normalization.npz for a reference .npz dataset (its values are stored normalised).
        public var normalizationPath = ""
        public var demonstrationEpisodes = 64
        /// Torque gain of the scripted demonstrator (below 1: deliberately weak).
        public var demonstratorGain = 0.35
        public var demonstratorNoise = 0.1
        public var settings = PretrainingSettings()
    }

    /// `dppo offline`: Diffusion-QL or EDP on a dataset, in DPPO's parameterisation (the `model` section).
    public struct OfflineConfig: Sendable {
        /// `diffusion_ql` or `edp`.
        public var method = "edp"
        /// EDP's policy-improvement variant: `td3`, `crr` or `iql`.
        public var variant = EDPVariant.td3
        /// The transitions (our dataset format or the reference's .npz); empty: `pretrain.dataset`.
        public var dataset = ""
        /// A checkpoint whose weights start the actor (e.g. the behaviour-cloned one); empty: fresh weights.
        public var initCheckpoint = ""
        /// A critics file `dppo offline` saved (`<checkpoint>-critics.safetensors`) whose weights start the critics (and
        /// EDP-IQL's V), e.g. to train an actor against a critic trained earlier; empty: fresh (or pre-trained) critics.
        public var initCritics = ""
        public var steps = 10_000
        public var batchSize = 256
        public var gamma = 0.99
        public var rewardScale = 1.0
        /// IQL's locomotion reward normalisation r·1000/(max − min episode return) instead of `reward_scale`.
        public var iqlRewardNormalization = false
        public var actorLearningRate = 3e-4
        public var criticLearningRate = 3e-4
        /// Diffusion-QL's η (weight of the normalised Q term); EDP-TD3's α.
        public var eta = 1.0
        public var alpha = 2.0
        public var gradientClip = 5.0
        public var maxQBackup = false
        public var learningRateDecay = false
        /// `ddpm` (the policy's K-step chain) or `dpm` (DPM-Solver, `dpm_steps` model calls) for target and candidate actions.
        public var sampler = "ddpm"
        public var dpmSteps = 15
        /// Candidate actions per state for evaluation with the critic (Diffusion-QL argmax/softmax, EDP's energy-based selection).
        public var candidates = 50
        /// `online` or `ema`: which actor copy the checkpoint exports (and evaluation uses).
        public var exportActor = ActorCopy.online
        /// Steps of Monte Carlo critic pre-training (Q, and EDP-IQL's V, regressed on the data's discounted returns)
        /// before the first evaluation and TD step; not counted in `steps`.
        public var criticPretrainSteps = 0
        /// Steps in which only the critics (and the actor's behaviour-cloning loss) train.
        public var criticWarmupSteps = 0
        /// The actor during critic warm-up: `bc` (its behaviour-cloning loss only) or `frozen` (no update).
        public var warmupActor = "bc"
        /// EDP-IQL: the expectile τ of V's loss and the inverse temperature β of the weights exp(β·A).
        public var iqlExpectile = 0.7
        public var iqlInverseTemperature = 3.0
        public var evalEvery = 1_000
        public var evalEpisodes = 16
        public var logEvery = 100
    }

    public struct ClusterConfig: Sendable {
        public var actors = 2
        public var host = "127.0.0.1"
        public var basePort = 5555
        /// `strict`: every batch is the current version's; `async`: actors keep rolling out and the learner takes
        /// segments up to `maxPolicyLag` versions old (README, "Synchronisation").
        public var synchronization = "strict"
        public var maxPolicyLag = 1
        public var isAsync: Bool { synchronization == "async" }
        /// Decisions per trajectory segment message.
        public var segmentSteps = 50
        /// Seconds the learner waits for a batch before it reports missing actors.
        public var batchTimeoutSeconds = 120.0
        /// Strict mode: seconds without a segment from an actor that reports (in its heartbeats) having sent more of the
        /// current version than arrived, after which the learner asks it to roll the version again (lost segments).
        public var stallTimeoutSeconds = 10.0
        /// A file holding the cluster key (hex) that authenticates every message; empty: none.
        /// Not part of `compatibilityHash`: see `ClusterKey`.
        public var keyFile = ""
        /// Seconds without word from the learner (weights notice or heartbeat reply) after which an actor treats it
        /// as gone and starts saying hello again.
        public var learnerTimeoutSeconds = 10.0
        /// Seconds an actor keeps retrying hello, with backoff, before it gives up on a vanished learner.
        public var reconnectTimeoutSeconds = 600.0
        /// How segments carry the denoising chains (`ChainTransport`): `full` or `seeded`. The learner decides and tells
        /// its actors, so it is not part of `compatibilityHash`.
        public var chainTransport = ChainTransport.full
        /// Seeded transport: every n-th segment of an actor (its 1st, (n+1)-th, …) also carries its recorded chains for
        /// the learner to compare with the rebuilt ones; 0: never.
        public var chainCheckEvery = 10
        /// Seeded transport: the largest |recorded − rebuilt| chain element accepted by the start-up self-test and the
        /// sampled checks; above it the run falls back to full chains.
        public var chainTolerance = 1.0e-4
    }

    public init() {}

    public var denoising: DenoisingSettings {
        DenoisingSettings(denoisingSteps: model.denoisingSteps, fineTunedSteps: model.fineTunedSteps, horizonSteps: environment.horizonSteps,
                          actSteps: environment.actSteps, actionDim: environment.description.actionDim, minSamplingStd: model.minSamplingStd,
                          minLogProbStd: model.minLogProbStd, randnClip: model.randnClip, denoisedClip: model.denoisedClip,
                          useDDIM: model.useDDIM, ddimSteps: model.ddimSteps, eta: model.eta)
    }

    public var gaussianShape: GaussianMLPShape {
        let prototype = environment.description
        return GaussianMLPShape(actionDim: prototype.actionDim, horizonSteps: environment.horizonSteps,
                                observationDim: environment.conditionSteps * prototype.observationDim, mlpDims: model.mlpDims,
                                activation: model.activation, fixedStd: model.fixedStd, learnFixedStd: model.learnFixedStd,
                                stdMin: model.stdMin, stdMax: model.stdMax)
    }

    /// Floats per decision record an actor sends: the chain for DPPO, the action chunk for the Gaussian policy.
    public var recordWidth: Int {
        model.policy == .diffusion ? denoising.chainWidth : gaussianShape.chunkWidth
    }

    public var networkShape: DiffusionMLPShape {
        let prototype = environment.description
        return DiffusionMLPShape(actionDim: prototype.actionDim, horizonSteps: environment.horizonSteps,
                                 observationDim: environment.conditionSteps * prototype.observationDim,
                                 timeDim: model.timeDim, mlpDims: model.mlpDims, activation: model.activation)
    }

    /// Environment streams in one batch (all actors).
    public var streams: Int { cluster.actors * environment.environmentsPerActor }

    /// A stable hash of the sections actors and learner must agree on.
    public var compatibilityHash: UInt64 {
        let text = "\(model.policy.rawValue)|\(model.useDDIM)|\(model.ddimSteps)|\(model.eta)|\(model.fixedStd)|\(environment.spec.label)|\(environment.gymnasium.kwargsJSON)|\(environment.conditionSteps)|\(environment.actSteps)|\(environment.horizonSteps)|\(model.denoisingSteps)|\(model.fineTunedSteps)|\(model.timeDim)|\(model.mlpDims)|\(model.activation.rawValue)|\(model.minSamplingStd)|\(model.randnClip)|\(model.denoisedClip)|\(train.stepsPerIteration)|\(environment.environmentsPerActor)" + (cluster.isAsync ? "|async" : "")
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// Loads a YAML file, applies overrides (`train.n_train_itr=10`), validates.
    public static func load(path: String, overrides: [String] = []) throws -> RunConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError("cannot read \(path): check the path")
        }
        return try parse(yaml: text, overrides: overrides, source: path)
    }

    public static func parse(yaml text: String, overrides: [String] = [], source: String = "config") throws -> RunConfig {
        let loaded: Any?
        do { loaded = try Yams.load(yaml: text) } catch { throw ConfigError("\(source) is not valid YAML: \(error)") }
        guard var root = (loaded ?? [String: Any]()) as? [String: Any] else { throw ConfigError("\(source) must be a mapping at the top level") }
        for override in overrides { try apply(override: override, to: &root) }
        let reader = ConfigReader(root, path: "")
        var config = RunConfig()
        try config.read(reader)
        try reader.rejectUnknownKeys()
        try config.validate()
        config.resolvedValues = reader.resolved.entries
        config.resolvedYAML = (try? Yams.dump(object: root, sortKeys: true)) ?? text
        return config
    }

    static func apply(override: String, to root: inout [String: Any]) throws {
        guard let equals = override.firstIndex(of: "=") else { throw ConfigError("override '\(override)' must look like key.path=value") }
        let keys = override[..<equals].split(separator: ".").map(String.init)
        guard !keys.isEmpty else { throw ConfigError("override '\(override)' has an empty key") }
        let valueText = String(override[override.index(after: equals)...])
        let value = (try? Yams.load(yaml: valueText)).flatMap { $0 } ?? valueText
        func set(_ dictionary: inout [String: Any], _ path: ArraySlice<String>) {
            let key = path.first!
            if path.count == 1 { dictionary[key] = value; return }
            var child = dictionary[key] as? [String: Any] ?? [:]
            set(&child, path.dropFirst())
            dictionary[key] = child
        }
        set(&root, keys[...])
    }

    mutating func read(_ root: ConfigReader) throws {
        name = try root.string("name", default: name)
        seed = UInt64(try root.int("seed", default: Int(seed)))
        let threadsValue = try root.string("threads", default: "auto")
        if threadsValue == "auto" {
            threads = nil
        } else if let count = Int(threadsValue), count >= 1, count <= 1_024 {
            threads = count
        } else {
            throw ConfigError("threads '\(threadsValue)' must be auto or a whole number from 1 to 1024")
        }
        let env = try root.section("env")
        let taskName = try env.string("task", default: environment.task.rawValue)
        guard let task = TaskName(rawValue: taskName) else {
            throw ConfigError("env.task '\(taskName)' is not a known task; choose one of \(TaskName.allCases.map(\.rawValue))")
        }
        environment.task = task
        let versionName = try env.string("version", default: environment.version.rawValue)
        guard let version = GymnasiumVersion(rawValue: versionName) else {
            throw ConfigError("env.version '\(versionName)' must be one of \(GymnasiumVersion.allCases.map(\.rawValue))")
        }
        environment.version = version
        environment.gymnasium.id = try env.string("gym_id", default: environment.gymnasium.id)
        environment.gymnasium.python = try env.string("python", default: environment.gymnasium.python)
        environment.gymnasium.kwargsJSON = try env.json("gym_kwargs", default: environment.gymnasium.kwargsJSON)
        if task == .gymnasium && environment.gymnasium.id.isEmpty {
            throw ConfigError("env.task gymnasium needs env.gym_id, the id passed to gymnasium.make (e.g. Hopper-v5)")
        }
        do { environment.description = try environment.spec.describe() } catch {
            throw ConfigError("env.task \(environment.spec.label) cannot be set up: \(error)")
        }
        environment.environmentsPerActor = try env.int("n_envs", default: environment.environmentsPerActor)
        environment.conditionSteps = try env.int("cond_steps", default: environment.conditionSteps)
        environment.actSteps = try env.int("act_steps", default: environment.actSteps)
        environment.horizonSteps = try env.int("horizon_steps", default: environment.horizonSteps)

        let m = try root.section("model")
        let policyName = try m.string("policy", default: model.policy.rawValue)
        guard let policy = PolicyKind(rawValue: policyName) else { throw ConfigError("model.policy '\(policyName)' must be diffusion or gaussian") }
        model.policy = policy
        model.useDDIM = try m.bool("use_ddim", default: model.useDDIM)
        model.ddimSteps = try m.int("ddim_steps", default: model.ddimSteps)
        model.eta = try m.double("eta", default: model.eta)
        model.fixedStd = try m.double("fixed_std", default: model.fixedStd)
        model.learnFixedStd = try m.bool("learn_fixed_std", default: model.learnFixedStd)
        model.stdMin = try m.double("std_min", default: model.stdMin)
        model.stdMax = try m.double("std_max", default: model.stdMax)
        model.denoisingSteps = try m.int("denoising_steps", default: model.denoisingSteps)
        model.fineTunedSteps = try m.int("ft_denoising_steps", default: model.fineTunedSteps)
        model.timeDim = try m.int("time_dim", default: model.timeDim)
        model.mlpDims = try m.ints("mlp_dims", default: model.mlpDims)
        let activationName = try m.string("activation", default: model.activation.rawValue)
        guard let activation = Activation(rawValue: activationName) else { throw ConfigError("model.activation '\(activationName)' must be relu or mish") }
        model.activation = activation
        model.criticDims = try m.ints("critic_dims", default: model.criticDims)
        model.minSamplingStd = try m.double("min_sampling_denoising_std", default: model.minSamplingStd)
        model.minLogProbStd = try m.double("min_logprob_denoising_std", default: model.minLogProbStd)
        model.randnClip = try m.double("randn_clip_value", default: model.randnClip)
        model.denoisedClip = try m.double("denoised_clip_value", default: model.denoisedClip)

        let t = try root.section("train")
        train.iterations = try t.int("n_train_itr", default: train.iterations)
        train.stepsPerIteration = try t.int("n_steps", default: train.stepsPerIteration)
        train.evalEvery = try t.int("val_freq", default: train.evalEvery)
        train.evalEpisodes = try t.int("eval_episodes", default: train.evalEpisodes)
        train.checkpointEvery = try t.int("save_model_freq", default: train.checkpointEvery)
        var p = train.dppo
        p.gamma = try t.double("gamma", default: p.gamma)
        p.gaeLambda = try t.double("gae_lambda", default: p.gaeLambda)
        p.gammaDenoising = try t.double("gamma_denoising", default: p.gammaDenoising)
        p.clipCoefficient = try t.double("clip_ploss_coef", default: p.clipCoefficient)
        p.clipCoefficientBase = try t.double("clip_ploss_coef_base", default: p.clipCoefficientBase)
        p.clipCoefficientRate = try t.double("clip_ploss_coef_rate", default: p.clipCoefficientRate)
        p.valueCoefficient = try t.double("vf_coef", default: p.valueCoefficient)
        p.clipValueCoefficient = try t.optionalDouble("clip_vloss_coef", default: p.clipValueCoefficient)
        let useBehaviourCloning = try t.bool("use_bc_loss", default: false)
        let bcCoefficient = try t.double("bc_loss_coeff", default: 0)
        p.bcCoefficient = useBehaviourCloning ? bcCoefficient : 0
        p.actorSchedule = try t.learningRateSchedule("actor_lr_scheduler")
        p.criticSchedule = try t.learningRateSchedule("critic_lr_scheduler")
        p.targetKL = try t.optionalDouble("target_kl", default: p.targetKL)
        p.updateEpochs = try t.int("update_epochs", default: p.updateEpochs)
        p.batchSize = try t.int("batch_size", default: p.batchSize)
        p.actorLearningRate = try t.double("actor_lr", default: p.actorLearningRate)
        p.criticLearningRate = try t.double("critic_lr", default: p.criticLearningRate)
        p.actorWeightDecay = try t.double("actor_weight_decay", default: p.actorWeightDecay)
        p.criticWeightDecay = try t.double("critic_weight_decay", default: p.criticWeightDecay)
        p.maxGradientNorm = try t.optionalDouble("max_grad_norm", default: p.maxGradientNorm)
        p.rewardScaleRunning = try t.bool("reward_scale_running", default: p.rewardScaleRunning)
        p.rewardScaleConstant = try t.double("reward_scale_const", default: p.rewardScaleConstant)
        p.criticWarmupIterations = try t.int("n_critic_warmup_itr", default: p.criticWarmupIterations)
        let truncation = try t.string("truncation", default: p.truncation.rawValue)
        guard let handling = TruncationHandling(rawValue: truncation) else { throw ConfigError("train.truncation '\(truncation)' must be bootstrap or reference") }
        p.truncation = handling
        p.logProbabilityBatchSize = try t.int("logprob_batch_size", default: p.logProbabilityBatchSize)
        p.advantageLowerQuantile = try t.double("clip_advantage_lower_quantile", default: p.advantageLowerQuantile)
        p.advantageUpperQuantile = try t.double("clip_advantage_upper_quantile", default: p.advantageUpperQuantile)
        train.dppo = p

        let pre = try root.section("pretrain")
        pretrain.checkpoint = try pre.string("checkpoint", default: pretrain.checkpoint)
        pretrain.dataset = try pre.string("dataset", default: pretrain.dataset)
        pretrain.normalizationPath = try pre.string("normalization_path", default: pretrain.normalizationPath)
        pretrain.demonstrationEpisodes = try pre.int("demo_episodes", default: pretrain.demonstrationEpisodes)
        pretrain.demonstratorGain = try pre.double("demo_gain", default: pretrain.demonstratorGain)
        pretrain.demonstratorNoise = try pre.double("demo_noise", default: pretrain.demonstratorNoise)
        var s = pretrain.settings
        s.epochs = try pre.int("n_epochs", default: s.epochs)
        s.batchSize = try pre.int("batch_size", default: s.batchSize)
        s.learningRate = try pre.double("learning_rate", default: s.learningRate)
        s.minLearningRate = try pre.double("min_lr", default: s.minLearningRate)
        s.warmupEpochs = try pre.int("warmup_epochs", default: s.warmupEpochs)
        s.weightDecay = try pre.double("weight_decay", default: s.weightDecay)
        s.emaDecay = try pre.double("ema_decay", default: s.emaDecay)
        s.emaEvery = try pre.int("update_ema_freq", default: s.emaEvery)
        s.emaStartEpoch = try pre.int("epoch_start_ema", default: s.emaStartEpoch)
        pretrain.settings = s

        let o = try root.section("offline")
        offline.method = try o.string("method", default: offline.method)
        guard ["diffusion_ql", "edp"].contains(offline.method) else { throw ConfigError("offline.method '\(offline.method)' must be diffusion_ql or edp") }
        let variantName = try o.string("variant", default: offline.variant.rawValue)
        guard let variant = EDPVariant(rawValue: variantName) else {
            throw ConfigError("offline.variant '\(variantName)' must be one of \(EDPVariant.allCases.map(\.rawValue))")
        }
        offline.variant = variant
        offline.dataset = try o.string("dataset", default: offline.dataset)
        offline.initCheckpoint = try o.string("init_checkpoint", default: offline.initCheckpoint)
        offline.initCritics = try o.string("init_critics", default: offline.initCritics)
        offline.steps = try o.int("n_steps", default: offline.steps)
        offline.batchSize = try o.int("batch_size", default: offline.batchSize)
        offline.gamma = try o.double("gamma", default: offline.gamma)
        offline.rewardScale = try o.double("reward_scale", default: offline.rewardScale)
        offline.iqlRewardNormalization = try o.bool("iql_reward_normalization", default: offline.iqlRewardNormalization)
        offline.actorLearningRate = try o.double("actor_lr", default: offline.actorLearningRate)
        offline.criticLearningRate = try o.double("critic_lr", default: offline.criticLearningRate)
        offline.eta = try o.double("eta", default: offline.eta)
        offline.alpha = try o.double("alpha", default: offline.alpha)
        offline.gradientClip = try o.double("grad_clip", default: offline.gradientClip)
        offline.maxQBackup = try o.bool("max_q_backup", default: offline.maxQBackup)
        offline.learningRateDecay = try o.bool("lr_decay", default: offline.learningRateDecay)
        offline.sampler = try o.string("sampler", default: offline.sampler)
        guard ["ddpm", "dpm"].contains(offline.sampler) else { throw ConfigError("offline.sampler '\(offline.sampler)' must be ddpm or dpm") }
        offline.dpmSteps = try o.int("dpm_steps", default: offline.dpmSteps)
        offline.candidates = try o.int("candidates", default: offline.candidates)
        let exportName = try o.string("export_actor", default: offline.exportActor.rawValue)
        guard let export = ActorCopy(rawValue: exportName) else { throw ConfigError("offline.export_actor '\(exportName)' must be online or ema") }
        offline.exportActor = export
        offline.criticPretrainSteps = try o.int("critic_pretrain_steps", default: offline.criticPretrainSteps)
        offline.criticWarmupSteps = try o.int("critic_warmup_steps", default: offline.criticWarmupSteps)
        guard offline.criticPretrainSteps >= 0, offline.criticWarmupSteps >= 0 else {
            throw ConfigError("offline.critic_pretrain_steps and critic_warmup_steps must be ≥ 0")
        }
        offline.warmupActor = try o.string("warmup_actor", default: offline.warmupActor)
        guard ["bc", "frozen"].contains(offline.warmupActor) else { throw ConfigError("offline.warmup_actor '\(offline.warmupActor)' must be bc or frozen") }
        offline.iqlExpectile = try o.double("iql_expectile", default: offline.iqlExpectile)
        offline.iqlInverseTemperature = try o.double("iql_inverse_temperature", default: offline.iqlInverseTemperature)
        guard offline.iqlExpectile > 0, offline.iqlExpectile < 1, offline.iqlInverseTemperature >= 0 else {
            throw ConfigError("offline.iql_expectile must be in (0, 1) and iql_inverse_temperature ≥ 0")
        }
        offline.evalEvery = try o.int("eval_freq", default: offline.evalEvery)
        offline.evalEpisodes = try o.int("eval_episodes", default: offline.evalEpisodes)
        offline.logEvery = try o.int("log_freq", default: offline.logEvery)
        guard offline.steps >= 1, offline.batchSize >= 1, offline.evalEvery >= 1, offline.logEvery >= 1, offline.candidates >= 1, offline.dpmSteps >= 1 else {
            throw ConfigError("offline.n_steps, batch_size, eval_freq, log_freq, candidates and dpm_steps must be ≥ 1")
        }

        let c = try root.section("cluster")
        cluster.actors = try c.int("actors", default: cluster.actors)
        cluster.host = try c.string("host", default: cluster.host)
        cluster.basePort = try c.int("base_port", default: cluster.basePort)
        cluster.synchronization = try c.string("sync", default: cluster.synchronization)
        cluster.maxPolicyLag = try c.int("max_policy_lag", default: cluster.maxPolicyLag)
        cluster.segmentSteps = try c.int("segment_steps", default: cluster.segmentSteps)
        if c.raw("learner_threads") != nil {
            throw ConfigError("cluster.learner_threads is now the top-level key threads (auto or a count); see docs/learner-scaling.md")
        }
        cluster.batchTimeoutSeconds = try c.double("batch_timeout_s", default: cluster.batchTimeoutSeconds)
        cluster.stallTimeoutSeconds = try c.double("stall_timeout_s", default: cluster.stallTimeoutSeconds)
        cluster.keyFile = try c.string("key_file", default: cluster.keyFile)
        cluster.learnerTimeoutSeconds = try c.double("learner_timeout_s", default: cluster.learnerTimeoutSeconds)
        cluster.reconnectTimeoutSeconds = try c.double("reconnect_timeout_s", default: cluster.reconnectTimeoutSeconds)
        let transport = try c.string("chain_transport", default: cluster.chainTransport.rawValue)
        guard let chainTransport = ChainTransport(rawValue: transport) else {
            throw ConfigError("cluster.chain_transport '\(transport)': must be 'full' or 'seeded'")
        }
        cluster.chainTransport = chainTransport
        cluster.chainCheckEvery = try c.int("chain_check_every", default: cluster.chainCheckEvery)
        cluster.chainTolerance = try c.double("chain_tolerance", default: cluster.chainTolerance)
    }

    /// The jobs that split their passes across `threads` workers.
    public enum ThreadedJob: Sendable { case learner, pretrain, offline }

    /// The worker count `job` uses: `threads` when set, else (`auto`) every core for pretraining and offline training;
    /// for the learner every core in strict mode, whose actors wait for the new weights while it updates, and in async
    /// mode, whose local actors keep rolling out, the cores they leave (at least one). A learner started as several
    /// MPI ranks on one host (`localRanks`, Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE) shares the cores among them.
    /// docs/learner-scaling.md.
    public func workerThreads(for job: ThreadedJob, cores allCores: Int = ProcessInfo.processInfo.activeProcessorCount,
                              localRanks: Int = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? "") ?? 1) -> Int {
        if let threads { return threads }
        let cores = job == .learner ? max(1, allCores / max(localRanks, 1)) : allCores
        switch job {
        case .learner where cluster.isAsync: return max(1, cores - cluster.actors)
        case .learner, .pretrain, .offline: return max(1, cores)
        }
    }

    func validate() throws {
        func require(_ condition: Bool, _ message: String) throws { if !condition { throw ConfigError(message) } }
        do { try denoising.validate() } catch { throw ConfigError("\(error)") }
        try require(model.policy == .diffusion || (model.fixedStd > 0 && model.stdMin > 0 && model.stdMin <= model.stdMax),
                    "model.fixed_std, std_min must be > 0 and std_min ≤ std_max for the Gaussian policy")
        try require(train.dppo.bcCoefficient >= 0, "train.bc_loss_coeff must be ≥ 0")
        try require(environment.environmentsPerActor >= 1, "env.n_envs must be ≥ 1")
        try require(environment.conditionSteps >= 1, "env.cond_steps must be ≥ 1")
        try require(model.mlpDims.count % 2 == 1 && Set(model.mlpDims).count == 1, "model.mlp_dims must be an odd number of equal widths, e.g. [512, 512, 512]")
        try require(model.criticDims.count % 2 == 1 && Set(model.criticDims).count == 1, "model.critic_dims must be an odd number of equal widths")
        try require(model.timeDim >= 4 && model.timeDim % 2 == 0, "model.time_dim must be even and ≥ 4")
        try require(train.iterations >= 1 && train.stepsPerIteration >= 1, "train.n_train_itr and train.n_steps must be ≥ 1")
        try require(train.dppo.updateEpochs >= 1 && train.dppo.batchSize >= 1, "train.update_epochs and train.batch_size must be ≥ 1")
        try require(train.evalEpisodes >= 1, "train.eval_episodes must be ≥ 1")
        try require(0 <= train.dppo.advantageLowerQuantile && train.dppo.advantageLowerQuantile < train.dppo.advantageUpperQuantile && train.dppo.advantageUpperQuantile <= 1,
                    "train.clip_advantage_lower_quantile and _upper_quantile must satisfy 0 ≤ lower < upper ≤ 1")
        try require(cluster.actors >= 1, "cluster.actors must be ≥ 1")
        try require((1024...65_533).contains(cluster.basePort), "cluster.base_port must be in 1024…65533")
        try require(["strict", "async"].contains(cluster.synchronization), "cluster.sync '\(cluster.synchronization)': must be 'strict' or 'async'")
        try require(cluster.maxPolicyLag >= 0, "cluster.max_policy_lag must be ≥ 0")
        try require(cluster.segmentSteps >= 1, "cluster.segment_steps must be ≥ 1")
        try require(cluster.learnerTimeoutSeconds > 0 && cluster.reconnectTimeoutSeconds > 0, "cluster.learner_timeout_s and reconnect_timeout_s must be > 0")
        try require(cluster.chainTransport == .full || model.policy == .diffusion,
                    "cluster.chain_transport: seeded rebuilds denoising chains; a Gaussian policy's records are already one action chunk, use full")
        try require(cluster.stallTimeoutSeconds > 0 && cluster.batchTimeoutSeconds > 0, "cluster.stall_timeout_s and batch_timeout_s must be > 0")
        try require(cluster.chainCheckEvery >= 0 && cluster.chainTolerance > 0, "cluster.chain_check_every must be ≥ 0 and chain_tolerance > 0")
    }
}

