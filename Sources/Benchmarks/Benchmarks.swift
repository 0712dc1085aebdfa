import Algorithms
import Cluster
import Datasets
import Diffusion
import Environments
import Foundation
import Networks
import Tensors
import Transport

/// `dppo bench`: throughput of chain sampling and of one learner minibatch for the Hopper-size
/// network of docs/algorithms.md, each next to its bound = FLOPs needed / single-thread sgemm GFLOP/s measured
/// here on the same shapes.
public struct BenchmarkReport: Codable, Sendable {
    public struct ChainSampling: Codable, Sendable {
        public var batch: Int
        public var threads: Int
        public var chains_per_second: Double
        public var bound_chains_per_second: Double
        public var sgemm_gflops: Double
    }
    public struct LearnerUpdate: Codable, Sendable {
        public var threads: Int
        public var env_step_samples_per_second: Double
        public var bound_env_step_samples_per_second: Double
        public var sgemm_gflops: Double
        public var gflop_per_minibatch: Double
    }
    /// Environment steps per second on one core, for a whole actor loop: chain sampling for a batch of
    /// environments, then executing the chunks.
    public struct ActorThroughput: Codable, Sendable {
        public var task: String
        public var environments: Int
        public var mlp_width: Int
        public var env_steps_per_second: Double
        public var sampling_seconds_fraction: Double
    }
    /// Gymnasium environments stepped through the bridge (one Python child), all instances per round trip.
    public struct BridgeStepping: Codable, Sendable {
        public var gym_id: String
        public var instances: Int
        public var env_steps_per_second: Double
    }
    /// The learner update of `learner_update` split over 1, 2, … shards (one worker thread each, single-threaded BLAS),
    /// each next to its bound: that many threads at the single-thread sgemm rate (docs/learner-scaling.md).
    public struct LearnerScaling: Codable, Sendable {
        public var threads: Int
        public var ranks: Int
        public var env_step_samples_per_second: Double
        public var bound_env_step_samples_per_second: Double
        /// Throughput over `threads × ranks` times the one-thread throughput.
        public var efficiency: Double
        /// Of the minibatches' time: the part that did not shard.
        public var serial_fraction: Double
    }
    public var sgemm_gflops_1t: Double
    public var chain_sampling: [ChainSampling]
    public var learner_update: LearnerUpdate
    public var learner_update_scaling: [LearnerScaling]
    public var environment_stepping: [LocomotionSteppingRate]
    public var bridge_stepping: [BridgeStepping]
    public var actor_throughput: [ActorThroughput]
}

public enum Benchmarks {
    /// The Hopper setting: DiffusionMLP 512×3 ReLU, time_dim 16, K 20, K′ 10, Ta = Tp = 4, Da 3, obs 11; critic 256×3 Mish.
    static let settings = DenoisingSettings(denoisingSteps: 20, fineTunedSteps: 10, horizonSteps: 4, actSteps: 4, actionDim: 3)
    static let network = DiffusionMLPShape(actionDim: 3, horizonSteps: 4, observationDim: 11, timeDim: 16, mlpDims: [512, 512, 512], activation: .relu)

    /// Single-thread sgemm GFLOP/s for y[rows, n] = x[rows, k]·W[n, k]ᵀ, the forward shape of every layer.
    static func sgemmGFLOPS(rows: Int, inner: Int = 512, outputs: Int = 512, seconds: Double) -> Double {
        let x = Matrix(rows: rows, columns: inner), w = Matrix(rows: outputs, columns: inner), y = Matrix(rows: rows, columns: outputs)
        var random = Philox(seed: 1)
        random.fillNormal(x.data, count: x.count)
        random.fillNormal(w.data, count: w.count)
        let perSecond = Timing.rate(seconds: seconds) {
            BLAS.gemm(transposeA: false, transposeB: true, m: rows, n: outputs, k: inner, a: x.data, lda: inner, b: w.data, ldb: inner, beta: 0, c: y.data, ldc: outputs)
        }
        return perSecond * 2 * Double(rows * inner * outputs) / 1e9
    }

    /// A prepared PPO update over the Hopper setting on one synthetic batch of `learnerSamples` decisions (40 streams),
    /// and the multiply–add FLOPs of one of its minibatches: forward + weight gradient + input gradient = 3× forward for
    /// the actor (its first layer's input gradient feeds the time embedding); the critic needs no input gradient at its
    /// first layer.
    static func hopperUpdate(policy: DiffusionPolicy, critic: CriticMLP, learnerSamples: Int, random: inout Philox, shards: Int = 1,
                             group: MPIGroup? = nil) -> (update: PPOUpdate, batch: RolloutBatch, minibatchFLOPs: Double) {
        var hyperparameters = PPOHyperparameters()
        hyperparameters.batchSize = learnerSamples * settings.fineTunedSteps
        hyperparameters.rewardScaleRunning = false
        let streams = 40, steps = (learnerSamples + streams - 1) / streams
        let update = PPOUpdate(policy: policy, critic: critic, hyperparameters: hyperparameters, streams: streams, seed: 3, shards: shards,
                               group: group)
        let batch = RolloutBatch(streams: streams, steps: steps, observationWidth: network.observationDim, recordWidth: settings.chainWidth)
        random.fillUniform(batch.observations.data, count: batch.observations.count, low: -1, high: 1)
        random.fillUniform(batch.bootstrapObservations.data, count: batch.bootstrapObservations.count, low: -1, high: 1)
        policy.sampleChains(observations: batch.observations, mode: .exploration, random: &random, chains: batch.records)
        for index in 0..<batch.count { batch.rewards[index] = random.normal() }
        _ = update.prepare(batch: batch)
        let criticFirst = 2 * Double(network.observationDim * 256)
        let minibatchFLOPs = Double(learnerSamples * settings.fineTunedSteps) * 3 * forwardFLOPsPerRow(policy.base.parameters)
            + Double(learnerSamples) * (3 * forwardFLOPsPerRow(critic.parameters) - criticFirst)
        return (update, batch, minibatchFLOPs)
    }

    /// Multiply–add FLOPs of one forward pass per row: 2·Σ(inputs·outputs) over the linear layers.
    static func forwardFLOPsPerRow(_ parameters: Parameters) -> Double {
        parameters.entries.filter { $0.shape.count == 2 }.reduce(0) { $0 + 2 * Double($1.shape[0] * $1.shape[1]) }
    }

    public static func run(seconds: Double = 2, batches: [Int] = [1, 8, 40, 256], learnerSamples: Int = 5_000, scalingThreads: [Int]? = nil,
                           log: (String) -> Void = Cluster.log) -> BenchmarkReport {
        BLAS.setThreads(1)
        let policy = DiffusionPolicy(settings: settings, network: network)
        var random = Philox(seed: 7)
        policy.initialize(random: &random)
        let actorFLOPs = forwardFLOPsPerRow(policy.base.parameters)

        var sampling: [BenchmarkReport.ChainSampling] = []
        var peak = 0.0
        for batch in batches {
            let gflops = sgemmGFLOPS(rows: batch, seconds: seconds / 2)
            peak = max(peak, gflops)
            let observations = Matrix(rows: batch, columns: network.observationDim)
            random.fillUniform(observations.data, count: observations.count, low: -1, high: 1)
            let chains = Matrix(rows: batch, columns: settings.chainWidth)
            let callsPerSecond = Timing.rate(seconds: seconds) {
                policy.sampleChains(observations: observations, mode: .exploration, random: &random, chains: chains)
            }
            let flopsPerChain = actorFLOPs * Double(settings.denoisingSteps)
            let entry = BenchmarkReport.ChainSampling(batch: batch, threads: 1, chains_per_second: callsPerSecond * Double(batch),
                                                      bound_chains_per_second: gflops * 1e9 / flopsPerChain, sgemm_gflops: gflops)
            log(String(format: "chain sampling  batch %4d: %9.0f chains/s  bound %9.0f (%.0f%%)  sgemm %.1f GFLOP/s",
                       batch, entry.chains_per_second, entry.bound_chains_per_second, 100 * entry.chains_per_second / entry.bound_chains_per_second, gflops))
            sampling.append(entry)
        }

        // One PPO minibatch: `learnerSamples` decisions × K′ transitions through the fine-tuned actor
        // (forward, backward, AdamW), and the critic on the distinct decisions.
        let critic = CriticMLP(observationDim: network.observationDim)
        critic.initialize(random: &random)
        let (update, batch, minibatchFLOPs) = hopperUpdate(policy: policy, critic: critic, learnerSamples: learnerSamples, random: &random)
        let gflops = sgemmGFLOPS(rows: 8_192, seconds: seconds / 2)
        let minibatchesPerSecond = Timing.rate(seconds: seconds * 2, minimumCalls: 2) { update.trainOneMinibatch(batch: batch) }
        let learner = BenchmarkReport.LearnerUpdate(threads: 1, env_step_samples_per_second: minibatchesPerSecond * Double(learnerSamples),
                                                    bound_env_step_samples_per_second: gflops * 1e9 / minibatchFLOPs * Double(learnerSamples),
                                                    sgemm_gflops: gflops, gflop_per_minibatch: minibatchFLOPs / 1e9)
        log(String(format: "learner update  %d samples × K′=%d: %7.0f env-step samples/s  bound %7.0f (%.0f%%)  %.1f GFLOP/minibatch, sgemm %.1f GFLOP/s",
                   learnerSamples, settings.fineTunedSteps, learner.env_step_samples_per_second, learner.bound_env_step_samples_per_second,
                   100 * learner.env_step_samples_per_second / learner.bound_env_step_samples_per_second, learner.gflop_per_minibatch, gflops))
        let scaling = learnerScaling(threads: scalingThreads ?? defaultScalingThreads(), learnerSamples: learnerSamples, seconds: seconds,
                                     sgemmGFLOPS: gflops, log: log)
        let environments = runEnvironments(seconds: seconds, log: log)
        return BenchmarkReport(sgemm_gflops_1t: max(peak, gflops), chain_sampling: sampling, learner_update: learner, learner_update_scaling: scaling,
                               environment_stepping: environments.stepping, bridge_stepping: environments.bridge, actor_throughput: environments.actor)
    }

    /// Native stepping of each MuJoCo task against raw `mj_step`, the same through the Gymnasium bridge (skipped when
    /// Python's gymnasium is missing), and whole-actor throughput on Hopper at two network widths.
    static func runEnvironments(seconds: Double, log: (String) -> Void)
        -> (stepping: [LocomotionSteppingRate], bridge: [BenchmarkReport.BridgeStepping], actor: [BenchmarkReport.ActorThroughput]) {
        let stepping = environmentStepping(seconds: seconds, log: log)
        var bridge: [BenchmarkReport.BridgeStepping] = []
        for id in ["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"] {
            do {
                let rate = try bridgeRate(id: id, instances: 8, seconds: seconds)
                log(String(format: "bridge        %@ %8.0f env steps/s   (8 instances, one Python process)",
                           id.padding(toLength: 14, withPad: " ", startingAt: 0), rate))
                bridge.append(.init(gym_id: id, instances: 8, env_steps_per_second: rate))
            } catch {
                log("bridge        \(id): skipped (\(error))")
                break
            }
        }
        var actor: [BenchmarkReport.ActorThroughput] = []
        for width in [512, 256] {
            guard let entry = try? actorThroughput(width: width, environments: 16, seconds: seconds) else { continue }
            log(String(format: "actor loop    hopper, 16 envs, MLP %d×3, K 20, Ta 4: %7.0f env steps/s (%.0f%% of the time sampling chains)",
                       width, entry.env_steps_per_second, 100 * entry.sampling_seconds_fraction))
            actor.append(entry)
        }
        return (stepping, bridge, actor)
    }

    /// Each native MuJoCo task's stepping rate on one core against bare `mj_step` with the same controls: the
    /// locomotion tasks (`LocomotionBenchmark`) and the tabletop tasks (`TabletopBenchmark`).
    public static func environmentStepping(seconds: Double, log: (String) -> Void) -> [LocomotionSteppingRate] {
        let locomotion = LocomotionTask.allCases.compactMap { try? LocomotionBenchmark.measure($0, seconds: seconds) }
        let tabletop = TabletopTask.allCases.compactMap { try? TabletopBenchmark.measure($0, seconds: seconds) }
        for rate in locomotion + tabletop {
            log(String(format: "env stepping  %@ %8.0f env steps/s   raw mj_step ×%d %8.0f (%.0f%%)",
                       rate.task.padding(toLength: 14, withPad: " ", startingAt: 0), rate.env_steps_per_second,
                       rate.frame_skip, rate.raw_mj_step_env_steps_per_second, 100 * rate.fraction_of_raw))
        }
        return locomotion + tabletop
    }

    static func bridgeRate(id: String, instances: Int, seconds: Double) throws -> Double {
        let batch = try GymnasiumBatch(settings: GymnasiumSettings(id: id), count: instances, seed: 1)
        defer { batch.close() }
        let task = batch.task
        var observations = [Float](repeating: 0, count: instances * task.observationDim)
        var actions = [Float](repeating: 0, count: instances * task.actionDim)
        var rewards = [Float](repeating: 0, count: instances), terminated = [Bool](repeating: false, count: instances)
        let active = [Bool](repeating: true, count: instances)
        var random = Philox(seed: 9)
        for i in 0..<instances { try observations.withUnsafeMutableBufferPointer { try batch.reset(i, observation: $0.baseAddress! + i * task.observationDim) } }
        return try Timing.throughput(seconds: seconds) {
            random.fillUniform(&actions, count: actions.count, low: -1, high: 1)
            try batch.step(actions: actions, active: active, observations: &observations, rewards: &rewards, terminated: &terminated)
            for i in 0..<instances where terminated[i] {
                try observations.withUnsafeMutableBufferPointer { try batch.reset(i, observation: $0.baseAddress! + i * task.observationDim) }
            }
            return instances
        }
    }

    static func actorThroughput(width: Int, environments count: Int, seconds: Double) throws -> BenchmarkReport.ActorThroughput {
        let settings = DenoisingSettings(denoisingSteps: 20, fineTunedSteps: 10, horizonSteps: 4, actSteps: 4, actionDim: 3)
        let network = DiffusionMLPShape(actionDim: 3, horizonSteps: 4, observationDim: 11, timeDim: 16, mlpDims: [width, width, width], activation: .relu)
        let policy = DiffusionPolicy(settings: settings, network: network)
        var random = Philox(seed: 11)
        policy.initialize(random: &random)
        let environments = try VectorEnvironment(task: .hopper, count: count, seed: 3, actSteps: 4, horizonSteps: 4)
        try environments.resetAll()
        let chains = Matrix(rows: count, columns: settings.chainWidth)
        var sampling = 0.0
        let start = Timing.now()
        let perSecond = try Timing.throughput(seconds: seconds) {
            sampling += Timing.seconds {
                policy.sampleChains(observations: environments.observations, mode: .exploration, random: &random, chains: chains)
            }
            try environments.step(chunks: chains, offset: settings.fineTunedSteps * settings.chunkWidth)
            return count * settings.actSteps
        }
        return .init(task: "hopper", environments: count, mlp_width: width, env_steps_per_second: perSecond,
                     sampling_seconds_fraction: sampling / Timing.seconds(since: start))
    }
}

/// `dppo bench wire`: what the wire path costs and what compression gains, field by field, on real segments.
public struct WireBenchmarkReport: Codable, Sendable {
    public struct Field: Codable, Sendable {
        public var name: String
        public var raw_bytes: Int
        /// raw bytes / LZ4 frame bytes, without and with the byte shuffle (by element width).
        public var lz4_ratio: Double
        public var shuffle_lz4_ratio: Double
    }
    public var task: String
    /// Where the policy's weights came from: a checkpoint path or "initialized".
    public var policy: String
    public var environments: Int
    public var segment_steps: Int
    public var segments: Int
    public var fields: [Field]
    /// One whole segment: raw tensor bytes, and wire bytes as the codec sends them (shuffle + LZ4 + HMAC).
    public var raw_bytes_per_segment: Double
    public var wire_bytes_per_segment: Double
    /// Rolling out one segment (chain sampling + environment steps), as an actor does.
    public var produce_seconds_per_segment: Double
    /// encode (shuffle, LZ4, HMAC) + decode (verify, decompress, unshuffle, parse) + `Segment` validation.
    public var wire_seconds_per_segment: Double
    public var wire_fraction_of_produce: Double
    /// Bytes on the wire per environment step (decision × act_steps) with full chains.
    public var full_wire_bytes_per_env_step: Double
    /// Seeded chain transport (diffusion policies): the same segments recorded with per-step seeds.
    public var seeded: SeededChains?

    public struct SeededChains: Codable, Sendable {
        /// Bytes per environment step with seeds only, and with every `check_every`-th segment also carrying its chains.
        public var wire_bytes_per_env_step: Double
        public var check_every: Int
        public var wire_bytes_per_env_step_with_checks: Double
        /// The learner's cost: rebuilding one segment in one batch of T·E rows, against the actor's time to produce it.
        public var rebuild_seconds_per_segment: Double
        public var rebuild_fraction_of_produce: Double
        /// Recorded (actor, one decision step per batch) against rebuilt (learner, one batch) chains of these segments:
        /// the largest element difference, and the largest difference of a transition's log-probability.
        public var max_chain_difference: Double
        public var max_log_probability_difference: Double
    }
}

extension Benchmarks {
    /// Rolls out the configured policy on `config`'s task, as an actor does, for `segments` segments of
    /// `cluster.segment_steps` × `env.n_envs` decisions, then measures each field's compression and the wire path's
    /// cost per segment against the time it took to produce one. `checkpoint` (optional) supplies trained weights.
    public static func wirePath(config: RunConfig, checkpoint: URL?, segments count: Int = 8, seconds: Double = 1,
                                log: (String) -> Void = Cluster.log) throws -> WireBenchmarkReport {
        BLAS.setThreads(1)
        let model = PolicyModel(config: config)
        var random = Philox(seed: 5)
        model.initialize(random: &random)
        var normalization: Normalization?
        var source = "initialized"
        if let checkpoint, FileManager.default.fileExists(atPath: checkpoint.path) {
            normalization = try Checkpoint.load(model, from: checkpoint).normalization
            source = checkpoint.path
        }
        let e = config.environment.environmentsPerActor, steps = config.cluster.segmentSteps
        let o = config.networkShape.observationDim, c = config.recordWidth
        let environments = try config.makeEnvironments(count: e, seed: 11, normalization: normalization)
        try environments.resetAll()
        let records = Matrix(rows: e, columns: c)
        var firsts = [UInt8](repeating: 1, count: e)
        var recorded: [Segment] = []
        let produceSeconds = try Timing.seconds {
            for _ in 0..<count {
                recorded.append(try SegmentRecorder.record(version: 1, index: 0, offset: 0, steps: steps, config: config, policy: model.rollout,
                                                        environments: environments, records: records, firsts: &firsts, random: &random))
            }
        } / Double(count)
        let messages = recorded.enumerated().map { $0.element.message(sequence: UInt64($0.offset + 1), observationWidth: o, chainWidth: c) }

        var raw: [String: Int] = [:], plain: [String: Int] = [:], shuffled: [String: Int] = [:], order: [String] = []
        for message in messages {
            for tensor in message.tensors where !tensor.bytes.isEmpty {
                if raw[tensor.name] == nil { order.append(tensor.name) }
                let sizes = try CompressionProbe.lz4Sizes(of: tensor)
                raw[tensor.name, default: 0] += tensor.bytes.count
                plain[tensor.name, default: 0] += sizes.plain
                shuffled[tensor.name, default: 0] += sizes.shuffled
            }
        }
        let fields = order.map { name in
            WireBenchmarkReport.Field(name: name, raw_bytes: raw[name]! / count, lz4_ratio: Double(raw[name]!) / Double(plain[name]!),
                                      shuffle_lz4_ratio: Double(raw[name]!) / Double(shuffled[name]!))
        }
        // The production codec: LZ4 level 0, float32 shuffle, HMAC-SHA256 with a 32-byte key.
        let codec = WireCodec(key: [UInt8](repeating: 0x5C, count: 32))
        let wire = try messages.map { try codec.encode($0) }
        var next = 0
        let perSecond = try Timing.rate(seconds: seconds) {
            let bytes = try codec.encode(messages[next % count])
            _ = try Segment(message: codec.decode(bytes), observationWidth: o, chainWidth: c, environments: e, maxSteps: steps)
            next += 1
        }
        let rawPerSegment = Double(messages.reduce(0) { $0 + $1.tensors.reduce(0) { $0 + $1.bytes.count } }) / Double(count)
        let envSteps = Double(steps * e * config.environment.actSteps)
        let fullPerStep = Double(wire.reduce(0) { $0 + $1.count }) / Double(count) / envSteps
        var seeded: WireBenchmarkReport.SeededChains?
        if case .diffusion(let policy) = model {
            seeded = try seededChains(config: config, policy: policy, normalization: normalization, count: count, produceSeconds: produceSeconds,
                                      codec: codec, fullPerStep: fullPerStep, seconds: seconds)
        }
        let report = WireBenchmarkReport(task: config.environment.task.rawValue, policy: source, environments: e, segment_steps: steps, segments: count,
                                         fields: fields, raw_bytes_per_segment: rawPerSegment,
                                         wire_bytes_per_segment: Double(wire.reduce(0) { $0 + $1.count }) / Double(count),
                                         produce_seconds_per_segment: produceSeconds, wire_seconds_per_segment: 1 / perSecond,
                                         wire_fraction_of_produce: 1 / perSecond / produceSeconds, full_wire_bytes_per_env_step: fullPerStep,
                                         seeded: seeded)
        log("wire path  \(report.task): \(e) envs × \(steps) steps per segment, policy \(source)")
        for field in fields {
            log(String(format: "  %@ %9d B   LZ4 ×%5.2f   shuffle+LZ4 ×%5.2f", field.name.padding(toLength: 20, withPad: " ", startingAt: 0),
                       field.raw_bytes, field.lz4_ratio, field.shuffle_lz4_ratio))
        }
        log(String(format: "  segment  %.0f B raw → %.0f B on the wire (×%.2f); wire path %.3f ms vs %.1f ms to produce it (%.2f%%)",
                   report.raw_bytes_per_segment, report.wire_bytes_per_segment, report.raw_bytes_per_segment / report.wire_bytes_per_segment,
                   report.wire_seconds_per_segment * 1e3, report.produce_seconds_per_segment * 1e3, 100 * report.wire_fraction_of_produce))
        if let seeded {
            log(String(format: "  bytes per env step: full chains %.1f, seeded %.1f (×%.1f less), seeded with a check every %d segments %.1f (×%.1f less)",
                       fullPerStep, seeded.wire_bytes_per_env_step, fullPerStep / seeded.wire_bytes_per_env_step, seeded.check_every,
                       seeded.wire_bytes_per_env_step_with_checks, fullPerStep / seeded.wire_bytes_per_env_step_with_checks))
            log(String(format: "  learner rebuild %.1f ms per segment (%.0f%% of the actor's time to produce it); recorded vs rebuilt: max |Δ chain| %.2e, max |Δ log-prob| %.2e",
                       seeded.rebuild_seconds_per_segment * 1e3, 100 * seeded.rebuild_fraction_of_produce, seeded.max_chain_difference, seeded.max_log_probability_difference))
        }
        return report
    }

    /// The seeded-chain half of `wirePath`: records `count` segments with per-step seeds, measures their bytes, rebuilds
    /// them as the learner does and compares the chains and their log-probabilities with the recorded ones.
    static func seededChains(config: RunConfig, policy: DiffusionPolicy, normalization: Normalization?, count: Int, produceSeconds: Double,
                             codec: WireCodec, fullPerStep: Double, seconds: Double) throws -> WireBenchmarkReport.SeededChains {
        let e = config.environment.environmentsPerActor, steps = config.cluster.segmentSteps
        let o = config.networkShape.observationDim, c = config.recordWidth
        let environments = try config.makeEnvironments(count: e, seed: 12, normalization: normalization)
        try environments.resetAll()
        let records = Matrix(rows: e, columns: c)
        var firsts = [UInt8](repeating: 1, count: e)
        var random = Philox(seed: 6)
        let sampler = SeededChainSampler(policy: policy)
        let recorded = try (0..<count).map { _ in
            try SegmentRecorder.record(version: 1, index: 0, offset: 0, steps: steps, config: config, policy: policy, environments: environments,
                                    records: records, firsts: &firsts, random: &random, seededSampler: sampler)
        }
        let envSteps = Double(steps * e * config.environment.actSteps)
        let seedsOnly = try recorded.enumerated().map { try codec.encode($0.element.message(sequence: UInt64($0.offset + 2), observationWidth: o, chainWidth: c, includeChains: false)) }
        let withChains = try recorded.enumerated().map { try codec.encode($0.element.message(sequence: UInt64($0.offset + 1), observationWidth: o, chainWidth: c, includeChains: true)) }
        let seededPerStep = Double(seedsOnly.reduce(0) { $0 + $1.count }) / Double(count) / envSteps
        let checkedPerStep = Double(withChains.reduce(0) { $0 + $1.count }) / Double(count) / envSteps
        let checkEvery = config.cluster.chainCheckEvery
        let mixed = checkEvery > 0 ? (Double(checkEvery - 1) * seededPerStep + checkedPerStep) / Double(checkEvery) : seededPerStep

        let rows = steps * e
        let observations = Matrix(rows: rows, columns: o), rebuilt = Matrix(rows: rows, columns: c), reference = Matrix(rows: rows, columns: c)
        var chainDifference: Float = 0, logDifference: Float = 0
        for segment in recorded {
            segment.observations.withUnsafeBufferPointer { observations.data.update(from: $0.baseAddress!, count: rows * o) }
            segment.chains.withUnsafeBufferPointer { reference.data.update(from: $0.baseAddress!, count: rows * c) }
            sampler.sample(observations: observations, seeds: segment.chainSeeds, environments: e, chains: rebuilt)
            chainDifference = max(chainDifference, SeededChainSampler.maxDifference(UnsafeBufferPointer(start: reference.data, count: rows * c),
                                                                                     UnsafeBufferPointer(start: rebuilt.data, count: rows * c)))
            let a = sampler.transitionLogProbabilities(chains: reference, observations: observations)
            let b = sampler.transitionLogProbabilities(chains: rebuilt, observations: observations)
            logDifference = max(logDifference, a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { SeededChainSampler.maxDifference(x, $0) } })
        }
        var next = 0
        let rebuildsPerSecond = Timing.rate(seconds: seconds) {
            let segment = recorded[next % count]
            segment.observations.withUnsafeBufferPointer { observations.data.update(from: $0.baseAddress!, count: rows * o) }
            sampler.sample(observations: observations, seeds: segment.chainSeeds, environments: e, chains: rebuilt)
            next += 1
        }
        return WireBenchmarkReport.SeededChains(wire_bytes_per_env_step: seededPerStep, check_every: checkEvery, wire_bytes_per_env_step_with_checks: mixed,
                                                rebuild_seconds_per_segment: 1 / rebuildsPerSecond, rebuild_fraction_of_produce: 1 / rebuildsPerSecond / produceSeconds,
                                                max_chain_difference: Double(chainDifference), max_log_probability_difference: Double(logDifference))
    }

}
