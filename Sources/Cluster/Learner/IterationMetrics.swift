import Foundation
import Algorithms

/// One line of `metrics.jsonl` for one learner iteration, named as CleanRL names its metrics (`losses/approx_kl`,
/// `charts/episodic_return`) plus the health metrics Sample Factory shows an operator (throughput, policy lag, queue
/// depth, drops). README.md, "Run directory", says what each one means.
///
/// The groups are written side by side into one flat JSON object; a value that is not finite is written as null.
public struct IterationMetrics: Codable, Sendable {
    public var progress: Progress
    public var training: Training
    public var performance: Performance
    public var transport: TransportHealth
    /// The actors' own view, from their heartbeats of the last 10 s, by actor index.
    public var actors: [Int: ActorRates]
    /// Segments (or messages) dropped since the run began, by reason (`BatchAssembler`, `DropLedger`).
    public var dropped: [String: Int]
    /// Present on the iterations that evaluate.
    public var evaluation: Evaluation?

    public struct Progress: Codable, Sendable {
        public var iteration: Int
        public var environmentSteps: Int
        public var policyVersion: UInt64
        @FiniteOrNull public var wallSeconds: Double
        /// On the first iteration of a resumed run: the iteration its checkpoint held.
        public var resumedFromIteration: Int?

        enum CodingKeys: String, CodingKey {
            case iteration, environmentSteps = "env_steps", policyVersion = "policy_version", wallSeconds = "wall_seconds"
            case resumedFromIteration = "resumed_from_iteration"
        }
    }

    public struct Training: Codable, Sendable {
        /// Training episodes that finished in the batch, and their mean return (null when none did).
        public var episodes: Int
        @FiniteOrNull public var episodicReturn: Double
        @FiniteOrNull public var policyLoss: Double
        @FiniteOrNull public var valueLoss: Double
        @FiniteOrNull public var approxKL: Double
        @FiniteOrNull public var clipFraction: Double
        @FiniteOrNull public var ratio: Double
        @FiniteOrNull public var explainedVariance: Double
        @FiniteOrNull public var actorGradientNorm: Double
        @FiniteOrNull public var criticGradientNorm: Double
        public var minibatches: Int
        public var stoppedEarly: Bool
        @FiniteOrNull public var bcLoss: Double
        @FiniteOrNull public var actorLearningRate: Double
        @FiniteOrNull public var criticLearningRate: Double

        enum CodingKeys: String, CodingKey {
            case episodes = "charts/episodes", episodicReturn = "charts/episodic_return"
            case policyLoss = "losses/policy_loss", valueLoss = "losses/value_loss", approxKL = "losses/approx_kl"
            case clipFraction = "losses/clipfrac", ratio = "losses/ratio", explainedVariance = "losses/explained_variance"
            case actorGradientNorm = "losses/actor_grad_norm", criticGradientNorm = "losses/critic_grad_norm"
            case minibatches = "losses/minibatches", stoppedEarly = "losses/stopped_early", bcLoss = "losses/bc_loss"
            case actorLearningRate = "charts/actor_lr", criticLearningRate = "charts/critic_lr"
        }

        /// The update's statistics, with the batch's finished training episodes.
        init(statistics: PPOStatistics, episodeReturns: [Double]) {
            episodes = episodeReturns.count
            episodicReturn = episodeReturns.isEmpty ? .nan : episodeReturns.reduce(0, +) / Double(episodeReturns.count)
            let losses = statistics.losses
            policyLoss = losses.policyLoss
            valueLoss = losses.valueLoss
            approxKL = losses.approxKL
            clipFraction = losses.clipFraction
            ratio = losses.ratio
            explainedVariance = statistics.explainedVariance
            actorGradientNorm = losses.actorGradientNorm
            criticGradientNorm = losses.criticGradientNorm
            minibatches = statistics.minibatches
            stoppedEarly = statistics.stoppedEarly
            bcLoss = losses.bcLoss
            actorLearningRate = statistics.actorLearningRate
            criticLearningRate = statistics.criticLearningRate
        }
    }

    public struct Performance: Codable, Sendable {
        @FiniteOrNull public var rolloutSeconds: Double
        @FiniteOrNull public var updateSeconds: Double
        @FiniteOrNull public var environmentStepsPerSecond: Double
        /// Decisions used per second of batch collection.
        @FiniteOrNull public var samplesPerSecond: Double
        /// The sum of the actors' own rates.
        @FiniteOrNull public var actorsEnvironmentStepsPerSecond: Double
        /// Of the update: the value and old-log-probability pass, the workers it ran on, and the fraction of the
        /// minibatches' time that did not shard (docs/learner-scaling.md).
        @FiniteOrNull public var valuePassSeconds: Double
        public var updateThreads: Int
        @FiniteOrNull public var updateSerialFraction: Double

        enum CodingKeys: String, CodingKey {
            case valuePassSeconds = "perf/value_pass_seconds", updateThreads = "perf/update_threads"
            case updateSerialFraction = "perf/update_serial_fraction"
            case rolloutSeconds = "perf/rollout_seconds", updateSeconds = "perf/update_seconds"
            case environmentStepsPerSecond = "perf/env_steps_per_second", samplesPerSecond = "perf/samples_per_second"
            case actorsEnvironmentStepsPerSecond = "actors/env_steps_per_second"
        }
    }

    /// What arrived on `trajectories` (rates over the batch's collection time) and how the chains travelled.
    public struct TransportHealth: Codable, Sendable {
        /// Wire bytes and segments used since the learner started, and strict-mode redo requests.
        public var bytesReceived: Int
        public var segments: Int
        public var redoRequests: Int
        public var connectedActors: Int
        /// This batch: messages, those already queued when collection began, wire rate and compression ratio.
        public var messages: Int
        public var queueDepth: Int
        @FiniteOrNull public var bytesPerSecond: Double
        @FiniteOrNull public var compressionRatio: Double
        /// Segment messages judged for the batch by policy lag.
        public var policyLag0: Int
        public var policyLag1: Int
        public var policyLag2OrMore: Int
        @FiniteOrNull public var bytesPerEnvironmentStep: Double
        public var chainTransport: String
        public var chainRebuiltDecisions: Int
        @FiniteOrNull public var chainRebuildSeconds: Double
        public var chainChecks: Int
        @FiniteOrNull public var chainCheckMaxDifference: Double

        enum CodingKeys: String, CodingKey {
            case bytesReceived = "transport/bytes_received", segments = "transport/segments"
            case redoRequests = "transport/redo_requests", connectedActors = "transport/connected_actors"
            case messages = "transport/messages", queueDepth = "transport/queue_depth"
            case bytesPerSecond = "transport/bytes_per_second", compressionRatio = "transport/compression_ratio"
            case policyLag0 = "transport/policy_lag/0", policyLag1 = "transport/policy_lag/1"
            case policyLag2OrMore = "transport/policy_lag/2+", bytesPerEnvironmentStep = "transport/bytes_per_env_step"
            case chainTransport = "transport/chain_transport", chainRebuiltDecisions = "transport/chain_rebuilt_decisions"
            case chainRebuildSeconds = "transport/chain_rebuild_seconds", chainChecks = "transport/chain_checks"
            case chainCheckMaxDifference = "transport/chain_check_max_diff"
        }
    }

    public struct ActorRates: Codable, Sendable, Equatable {
        @FiniteOrNull public var environmentStepsPerSecond: Double
        public var environmentSteps: Int
        public var episodes: Int
    }

    public struct Evaluation: Codable, Sendable {
        @FiniteOrNull public var meanReturn: Double
        @FiniteOrNull public var returnStd: Double
        /// Tasks with a goal only (`EvaluationResult.successRate`); absent from the record otherwise.
        public var successRate: Double?

        enum CodingKeys: String, CodingKey { case meanReturn = "eval/return", returnStd = "eval/return_std", successRate = "eval/success_rate" }

        init(_ result: EvaluationResult) {
            meanReturn = result.meanReturn
            returnStd = result.stdReturn
            successRate = result.successRate
        }
    }

    public func encode(to encoder: Encoder) throws {
        try progress.encode(to: encoder)
        try training.encode(to: encoder)
        try performance.encode(to: encoder)
        try transport.encode(to: encoder)
        try evaluation?.encode(to: encoder)
        var container = encoder.container(keyedBy: StringKey.self)
        for (index, rates) in actors {
            try container.encode(FiniteOrNull(wrappedValue: rates.environmentStepsPerSecond),
                                 forKey: StringKey("actors/\(index)/env_steps_per_second"))
            try container.encode(rates.environmentSteps, forKey: StringKey("actors/\(index)/env_steps"))
            try container.encode(rates.episodes, forKey: StringKey("actors/\(index)/episodes"))
        }
        for (reason, count) in dropped { try container.encode(count, forKey: StringKey("transport/dropped/\(reason)")) }
    }

    public init(from decoder: Decoder) throws {
        progress = try Progress(from: decoder)
        training = try Training(from: decoder)
        performance = try Performance(from: decoder)
        transport = try TransportHealth(from: decoder)
        let container = try decoder.container(keyedBy: StringKey.self)
        evaluation = container.contains(StringKey("eval/return")) ? try Evaluation(from: decoder) : nil
        actors = [:]
        dropped = [:]
        for key in container.allKeys {
            let parts = key.stringValue.split(separator: "/")
            if parts.count == 3, parts[0] == "transport", parts[1] == "dropped" {
                dropped[String(parts[2])] = try container.decode(Int.self, forKey: key)
            } else if parts.count == 3, parts[0] == "actors", let index = Int(parts[1]), parts[2] == "env_steps" {
                actors[index] = ActorRates(
                    environmentStepsPerSecond: try container.decode(FiniteOrNull.self,
                                                                    forKey: StringKey("actors/\(index)/env_steps_per_second")).wrappedValue,
                    environmentSteps: try container.decode(Int.self, forKey: key),
                    episodes: try container.decode(Int.self, forKey: StringKey("actors/\(index)/episodes")))
            }
        }
    }

    init(progress: Progress, training: Training, performance: Performance, transport: TransportHealth,
         actors: [Int: ActorRates], dropped: [String: Int], evaluation: Evaluation?) {
        self.progress = progress
        self.training = training
        self.performance = performance
        self.transport = transport
        self.actors = actors
        self.dropped = dropped
        self.evaluation = evaluation
    }

    /// The console line of the iteration, out of `iterations`.
    /// `42s`, `7m05s`, `3h12m`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let whole = Int(seconds.rounded())
        if whole < 60 { return "\(whole)s" }
        if whole < 3_600 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
        return String(format: "%dh%02dm", whole / 3_600, whole % 3_600 / 60)
    }

    /// Collection times below this give no meaningful rate.
    static let shortestMeasurableSeconds = 0.001

    func consoleLine(iterations: Int) -> String {
        var line = String(format: "itr %3d/%d | steps %7d | %6.0f steps/s | return %8.1f (%3d ep) | v%-3d | pg %+.4f vf %.4f kl %.1e clip %.3f ev %.2f | rollout %.1fs update %.1fs",
                          progress.iteration, iterations, progress.environmentSteps, performance.environmentStepsPerSecond,
                          training.episodicReturn, training.episodes, Int(progress.policyVersion), training.policyLoss,
                          training.valueLoss, training.approxKL, training.clipFraction, training.explainedVariance,
                          performance.rolloutSeconds, performance.updateSeconds)
        // Health, compactly: actors heard from, samples/s in, queue depth at batch start, policy lag 0/1/2+,
        // wire MB/s and compression ratio, segments dropped so far.
        let samples = performance.samplesPerSecond.isFinite ? String(format: "%.0f", performance.samplesPerSecond) : "n/a"
        let megabytes = transport.bytesPerSecond.isFinite ? String(format: "%.2f", transport.bytesPerSecond / 1e6) : "n/a"
        line += String(format: " | %d act %@ smp/s q%d lag %d/%d/%d %@ MB/s x%.1f drop %d", transport.connectedActors,
                       samples, transport.queueDepth, transport.policyLag0, transport.policyLag1,
                       transport.policyLag2OrMore, megabytes, transport.compressionRatio,
                       dropped.values.reduce(0, +))
        if let evaluation {
            line += String(format: " | eval %.1f", evaluation.meanReturn)
            if let rate = evaluation.successRate { line += String(format: " success %.0f%%", 100 * rate) }
        }
        // Elapsed (the whole run's, across resumes) and the time left at the run's average pace so far.
        let remaining = progress.wallSeconds / Double(max(progress.iteration, 1)) * Double(max(iterations - progress.iteration, 0))
        line += " | " + IterationMetrics.duration(progress.wallSeconds) + " elapsed, ETA " + IterationMetrics.duration(remaining)
        return line
    }
}

/// The record of the starting policy's evaluation, iteration 0 of `metrics.jsonl`.
public struct InitialEvaluationRecord: Codable, Sendable {
    public var iteration = 0
    public var environmentSteps = 0
    public var policyVersion: UInt64
    public var evaluation: IterationMetrics.Evaluation

    enum CodingKeys: String, CodingKey { case iteration, environmentSteps = "env_steps", policyVersion = "policy_version" }

    init(policyVersion: UInt64, evaluation: EvaluationResult) {
        self.policyVersion = policyVersion
        self.evaluation = IterationMetrics.Evaluation(evaluation)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(iteration, forKey: .iteration)
        try container.encode(environmentSteps, forKey: .environmentSteps)
        try container.encode(policyVersion, forKey: .policyVersion)
        try evaluation.encode(to: encoder)
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        iteration = try container.decode(Int.self, forKey: .iteration)
        environmentSteps = try container.decode(Int.self, forKey: .environmentSteps)
        policyVersion = try container.decode(UInt64.self, forKey: .policyVersion)
        evaluation = try IterationMetrics.Evaluation(from: decoder)
    }
}

/// A metric written as a JSON number, or as null when it is not finite (JSON has no NaN or infinity); null reads
/// back as NaN.
@propertyWrapper
public struct FiniteOrNull: Codable, Sendable, Equatable {
    public var wrappedValue: Double

    public init(wrappedValue: Double) { self.wrappedValue = wrappedValue }

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? .nan : try container.decode(Double.self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        if wrappedValue.isFinite { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}
