import Cluster
import Datasets
import Foundation
import Tensors

/// `dppo bench cluster`: the environment-step rate of N actor processes with no learner attached, against the same
/// actors in a running cluster (learner and actors as separate processes on this machine, over loopback), in strict and
/// async mode.
public struct ClusterBenchmarkReport: Codable, Sendable {
    public struct Mode: Codable, Sendable {
        public var sync: String
        public var chain_transport: String
        public var iterations_measured: Int
        /// Environment steps per second while batches were collected (the learner receiving, validating and assembling
        /// segments; in strict mode this excludes the PPO update, during which actors wait).
        public var rollout_env_steps_per_second: Double
        /// Environment steps per second over whole iterations, updates included.
        public var end_to_end_env_steps_per_second: Double
        public var update_seconds_per_iteration: Double
        public var rollout_fraction_of_standalone: Double
        public var end_to_end_fraction_of_standalone: Double
    }
    public var config: String
    public var task: String
    public var actors: Int
    public var environments_per_actor: Int
    public var cpu_cores: Int
    /// The actors' loop (chain sampling + environment steps) in `actors` concurrent processes, no sockets: the sum.
    public var standalone_env_steps_per_second: Double
    public var modes: [Mode]
}

extension Benchmarks {
    /// One actor process's rollout rate with no learner: `SegmentRecorder.record` on `config`'s task and policy for
    /// `seconds`, as environment steps per second. `checkpoint` supplies the weights (optional).
    public static func standaloneActor(config: RunConfig, checkpoint: URL?, seconds: Double) throws -> Double {
        BLAS.setThreads(1)
        let model = PolicyModel(config: config)
        var random = Philox(seed: config.seed)
        model.initialize(random: &random)
        var normalization: Normalization?
        if let checkpoint { normalization = try Checkpoint.load(model, from: checkpoint).normalization }
        let e = config.environment.environmentsPerActor
        let environments = try config.makeEnvironments(count: e, seed: config.seed, normalization: normalization)
        try environments.resetAll()
        let records = Matrix(rows: e, columns: config.recordWidth)
        var firsts = [UInt8](repeating: 1, count: e)
        let steps = min(config.cluster.segmentSteps, config.train.stepsPerIteration)
        return try Timing.throughput(seconds: seconds) {
            _ = try SegmentRecorder.record(version: 1, index: 0, offset: 0, steps: steps, config: config, policy: model.rollout,
                                        environments: environments, records: records, firsts: &firsts, random: &random)
            return steps * e * config.environment.actSteps
        }
    }

    /// Runs the comparison with `binary` (this program): `actors` concurrent `bench standalone-actor` processes, then a
    /// learner and `actors` actor processes for `iterations` iterations per synchronisation mode. Rates skip the first
    /// iteration (connection set-up, first weights) and the last (final evaluation).
    public static func cluster(binary: String, configPath: String, overrides: [String], actors: Int, iterations: Int, seconds: Double,
                               modes: [String] = ["strict", "async"], chainTransports: [String] = ["full"],
                               log: (String) -> Void = Cluster.log) throws -> ClusterBenchmarkReport {
        let settings = overrides + ["cluster.actors=\(actors)", "train.n_train_itr=\(iterations)", "train.val_freq=0",
                                    "train.save_model_freq=0", "train.eval_episodes=1"]
        let config = try RunConfig.load(path: configPath, overrides: settings)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-bench-cluster-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = try freshPolicy(config: config, in: directory)
        let configArguments = ["--config", configPath] + settings.flatMap { ["--set", $0] }

        log("cluster bench: \(actors) actor processes, \(config.environment.task.rawValue), \(config.environment.environmentsPerActor) environments each, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        let standalone = try (0..<actors).map { index in
            try BenchmarkChild(binary: binary, arguments: ["bench", "standalone-actor", "--seconds", String(seconds), "--checkpoint", start.path] + configArguments,
                               log: directory.appendingPathComponent("standalone-\(index).log"))
        }
        var standaloneRate = 0.0
        for child in standalone {
            child.process.waitUntilExit()
            let text = child.output()
            guard child.process.terminationStatus == 0, let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
                  let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let rate = object["env_steps_per_second"] as? Double else {
                throw ConfigError("a standalone actor failed:\n\(text)")
            }
            standaloneRate += rate
        }
        log(String(format: "  no learner: %d actors × their loop = %.0f env steps/s", actors, standaloneRate))

        var results: [ClusterBenchmarkReport.Mode] = []
        var port = 27_555
        for sync in modes {
            for transport in chainTransports {
                port += 10
                let run = directory.appendingPathComponent("run-\(sync)-\(transport)")
                let extra = ["--set", "cluster.sync=\(sync)", "--set", "cluster.base_port=\(port)", "--set", "cluster.chain_transport=\(transport)"]
                let learner = try BenchmarkChild(binary: binary, arguments: ["learner"] + configArguments + extra + ["--run-dir", run.path, "--base-policy", start.path],
                                                 log: directory.appendingPathComponent("learner-\(sync)-\(transport).log"))
                let children = try (0..<actors).map { index in
                    try BenchmarkChild(binary: binary, arguments: ["actor"] + configArguments + extra + ["--index", String(index)],
                                       log: directory.appendingPathComponent("actor-\(sync)-\(transport)-\(index).log"))
                }
                learner.process.waitUntilExit()
                for child in children { child.stop(after: 20) }
                guard learner.process.terminationStatus == 0 else { throw ConfigError("the learner failed:\n\(learner.output())") }
                let records = try metricsRecords(of: run).filter { ($0["iteration"] as? Int ?? 0) > 0 }
                let measured = Array(records.dropFirst().dropLast())
                guard measured.count >= 1, let before = records.first?["wall_seconds"] as? Double,
                      let after = measured.last?["wall_seconds"] as? Double else { throw ConfigError("too few iterations to measure: raise --iterations") }
                let stepsPerIteration = Double(config.train.stepsPerIteration * config.streams * config.environment.actSteps)
                let rollout = measured.reduce(0.0) { $0 + ($1["perf/rollout_seconds"] as? Double ?? 0) }
                let update = measured.reduce(0.0) { $0 + ($1["perf/update_seconds"] as? Double ?? 0) }
                let total = stepsPerIteration * Double(measured.count)
                let mode = ClusterBenchmarkReport.Mode(sync: sync, chain_transport: transport, iterations_measured: measured.count,
                                                       rollout_env_steps_per_second: total / rollout, end_to_end_env_steps_per_second: total / (after - before),
                                                       update_seconds_per_iteration: update / Double(measured.count),
                                                       rollout_fraction_of_standalone: total / rollout / standaloneRate,
                                                       end_to_end_fraction_of_standalone: total / (after - before) / standaloneRate)
                // Async actors keep rolling out during updates, so their collection phase has no meaning of its own.
                let collecting = sync == "async" ? "while collecting n/a (actors roll out during updates)"
                    : String(format: "while collecting %.0f env steps/s (%.0f%%)", mode.rollout_env_steps_per_second, 100 * mode.rollout_fraction_of_standalone)
                log(String(format: "  %@ (%@ chains): %@, end to end %.0f (%.0f%%), update %.2f s per iteration",
                           sync.padding(toLength: 6, withPad: " ", startingAt: 0), transport, collecting,
                           mode.end_to_end_env_steps_per_second, 100 * mode.end_to_end_fraction_of_standalone, mode.update_seconds_per_iteration))
                results.append(mode)
            }
        }
        return ClusterBenchmarkReport(config: configPath, task: config.environment.task.rawValue, actors: actors,
                                      environments_per_actor: config.environment.environmentsPerActor,
                                      cpu_cores: ProcessInfo.processInfo.activeProcessorCount, standalone_env_steps_per_second: standaloneRate, modes: results)
    }
}

extension Benchmarks {
    /// A freshly initialised policy of `config`'s kind, saved as `start.safetensors` in `directory`: where the
    /// benchmarks' cluster runs start.
    static func freshPolicy(config: RunConfig, in directory: URL) throws -> URL {
        let model = PolicyModel(config: config)
        var random = Philox(seed: config.seed)
        model.initialize(random: &random)
        let start = directory.appendingPathComponent("start.safetensors")
        try Checkpoint.save(model: model, update: nil, info: CheckpointInfo(kind: "pretrain", iteration: 0, policyVersion: 0, environmentSteps: 0,
                                                                            model: model, normalization: nil), to: start)
        return start
    }

    /// The records of a run's metrics.jsonl.
    static func metricsRecords(of run: URL) throws -> [[String: Any]] {
        try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// A child process of the cluster benchmark, output to a log file; stopped by its own PID.
final class BenchmarkChild {
    let process = Process()
    let logURL: URL

    init(binary: String, arguments: [String], log: URL) throws {
        logURL = log
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    func output() -> String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` for the process to exit by itself, then kills it.
    func stop(after seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }
}
