import Cluster
import Foundation
import Tensors

/// `dppo bench iteration`: one whole fine-tuning iteration at the DPPO reference's Hopper sizes, learner and actors as
/// separate processes on this machine: DiffusionMLP 512×3, critic 256×3, 2 actors × 20 environments × 500 decisions ×
/// Ta 4 = 80,000 environment steps, minibatches of 50,000 (decision, denoising step) pairs, every epoch run (no KL stop,
/// no critic warm-up), from freshly initialised weights. Two iterations run and the second is reported: the first's
/// rollout also holds the actors' connection set-up (they start with the learner and retry hello with back-off).
public struct IterationBenchmarkReport: Codable, Sendable {
    public struct Run: Codable, Sendable {
        public var threads: Int
        public var rollout_seconds: Double
        /// The values and old log-probabilities of the whole batch (inside `update_seconds`).
        public var value_pass_seconds: Double
        public var update_seconds: Double
        public var iteration_seconds: Double
        public var update_serial_fraction: Double
    }
    public var epochs: Int
    public var environment_steps: Int
    public var cpu_cores: Int
    public var runs: [Run]
}

extension Benchmarks {
    /// Runs the iteration once per entry of `threads` (the learner's `threads` key; the actors use one core each).
    public static func iteration(binary: String, configPath: String = "configs/hopper/finetune.yaml", epochs: Int, threads: [Int],
                                 log: (String) -> Void = Cluster.log) throws -> IterationBenchmarkReport {
        let settings = ["env.n_envs=20", "cluster.actors=2", "model.mlp_dims=[512,512,512]", "train.n_steps=500", "train.batch_size=50000",
                        "train.update_epochs=\(epochs)", "train.n_train_itr=2", "train.eval_episodes=1", "train.val_freq=0",
                        "train.save_model_freq=0", "train.target_kl=null", "train.n_critic_warmup_itr=0", "cluster.segment_steps=50",
                        "cluster.batch_timeout_s=1200"]
        let config = try RunConfig.load(path: configPath, overrides: settings)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-bench-iteration-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = try freshPolicy(config: config, in: directory)
        let steps = config.train.stepsPerIteration * config.streams * config.environment.actSteps
        log("iteration bench: Hopper, \(steps) environment steps, \(epochs) epochs, 2 actor processes, \(ProcessInfo.processInfo.activeProcessorCount) cores")
        var runs: [IterationBenchmarkReport.Run] = []
        for (index, count) in threads.enumerated() {
            let port = 28_555 + 10 * index
            let arguments = ["--config", configPath] + (settings + ["threads=\(count)", "cluster.base_port=\(port)"]).flatMap { ["--set", $0] }
            let run = directory.appendingPathComponent("run-\(count)")
            let learner = try BenchmarkChild(binary: binary, arguments: ["learner"] + arguments + ["--run-dir", run.path, "--base-policy", start.path],
                                             log: directory.appendingPathComponent("learner-\(count).log"))
            let actors = try (0..<config.cluster.actors).map { actor in
                try BenchmarkChild(binary: binary, arguments: ["actor"] + arguments + ["--index", String(actor)],
                                   log: directory.appendingPathComponent("actor-\(count)-\(actor).log"))
            }
            learner.process.waitUntilExit()
            for actor in actors { actor.stop(after: 20) }
            guard learner.process.terminationStatus == 0 else { throw ConfigError("the learner failed:\n\(learner.output())") }
            let records = try metricsRecords(of: run)
            guard let record = records.first(where: { ($0["iteration"] as? Int) == 2 }),
                  let rollout = record["perf/rollout_seconds"] as? Double, let update = record["perf/update_seconds"] as? Double,
                  let valuePass = record["perf/value_pass_seconds"] as? Double else {
                throw ConfigError("the learner wrote no timings for its iteration in \(run.path)")
            }
            let entry = IterationBenchmarkReport.Run(threads: count, rollout_seconds: rollout, value_pass_seconds: valuePass, update_seconds: update,
                                                     iteration_seconds: rollout + update,
                                                     update_serial_fraction: record["perf/update_serial_fraction"] as? Double ?? .nan)
            log(String(format: "  threads %2d: rollout %.1f s, update %.1f s (value pass %.1f s, serial %.1f%%), iteration %.1f s",
                       count, rollout, update, valuePass, 100 * entry.update_serial_fraction, entry.iteration_seconds))
            runs.append(entry)
        }
        return IterationBenchmarkReport(epochs: epochs, environment_steps: steps, cpu_cores: ProcessInfo.processInfo.activeProcessorCount, runs: runs)
    }
}
