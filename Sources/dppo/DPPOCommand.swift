import ArgumentParser
import Cluster
import Offline
import Datasets
import Foundation

@main
struct DPPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dppo",
        abstract: "Distributed fine-tuning of diffusion policies with DPPO.",
        discussion: """
        A run is one learner and N actors. `cluster/launch.sh CONFIG` starts them all on this machine;
        the subcommands below are what it runs, and what you run yourself to place actors on other hosts.
        """,
        version: DPPOCommand.versionText,
        subcommands: [Pretrain.self, Learner.self, LearnerRankCheck.self, Actor.self, OfflineTraining.self, Evaluate.self, Collect.self, DatasetCommand.self,
                      ConfigCommand.self, SweepCommand.self, RunsCommand.self, CompareCommand.self, ExportCommand.self, Bench.self])

    /// `dppo --version`: the version, the git commit it was built from and the build configuration.
    static var versionText: String { "dppo " + Build.description }

    /// Parses and runs a subcommand. A usage mistake (an unknown flag, a bad flag value) is answered by
    /// ArgumentParser with the usage; a config error or a refused value found while running is one line on stderr
    /// and exit 64 (EX_USAGE), with no usage dump and no backtrace.
    static func main() {
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        ProcessLog.bootstrap(label: logLabel(of: command))
        do {
            try command.run()
        } catch let error as ConfigError {
            refuse(error.description)
        } catch let error as ValidationError {
            refuse(error.message)
        } catch let error as StoppedEarly {
            FileHandle.standardError.write(Data((error.message + "\n").utf8))
            Foundation.exit(128 + error.signal)
        } catch {
            exit(withError: error)
        }
    }

    /// The process label of every log line: the subcommand, with the actor's index or the learner's MPI rank.
    static func logLabel(of command: ParsableCommand) -> String {
        var name = type(of: command).configuration.commandName ?? String(describing: type(of: command)).lowercased()
        if let actor = command as? Actor, let index = actor.index { name += "-\(index)" }
        if command is Learner, let rank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? ProcessInfo.processInfo.environment["PMIX_RANK"],
           rank != "0" {
            name += "-rank-\(rank)"
        }
        return name
    }

    static func refuse(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
        Foundation.exit(64)
    }
}

/// Options every command that reads a config shares.
/// Prints `value` as one line of JSON with sorted keys.
func printJSON<Value: Encodable>(_ value: Value) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config file (see configs/); with --resume, the run's own config.yaml when omitted.")
    var config: String?

    @Option(name: [.customLong("set")], help: "Override a config key, e.g. --set train.n_train_itr=10 (repeatable).")
    var overrides: [String] = []

    func load() throws -> RunConfig {
        guard let config else { throw ValidationError("--config CONFIG is required (a YAML file, see configs/)") }
        return try RunConfig.load(path: config, overrides: overrides)
    }

    /// The config of a run continued with `--resume RUN`: checked against RUN/config.yaml (`ConfigResume`); the job
    /// records the accepted changes once it has taken the run.
    func loadResuming(_ run: RunDirectory, allowChanges: Bool) throws -> ConfigResume.Resumed {
        try ConfigResume.load(run: run, config: config, overrides: overrides, allowChanges: allowChanges)
    }
}

extension DPPOCommand {
    struct Pretrain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Behaviour-clone the configured policy (model.policy: diffusion or gaussian) on pretrain.dataset.",
            discussion: "pretrain.dataset is our dataset file (see docs/datasets.md) or the DPPO reference's train.npz (with pretrain.normalization_path); without one, demonstrations of the task's scripted controller are collected first.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Directory for the checkpoint (default: a new run directory under runs/).")
        var output: String?

        func run() throws {
            StopRequest.install(log: Cluster.log)
            let config = try options.load()
            let directory = try output.map { URL(fileURLWithPath: $0) } ?? RunDirectory.create(root: "runs", name: config.name + "-pretrain", seed: config.seed).url
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            _ = try runPretraining(config: config, output: directory)
        }
    }

    struct OfflineTraining: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "offline",
            abstract: "Train a diffusion policy offline with Diffusion-QL or EDP (TD3, CRR, IQL) on a dataset (see docs/offline.md).",
            discussion: "offline.method picks the method, offline.dataset the transitions (with rewards, e.g. from dppo collect). The run directory gets metrics.jsonl, evaluations, checkpoints/final.safetensors (readable by dppo eval, and a DPPO starting point as pretrain.checkpoint) and the critics next to it.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Run directory (default: a new runs/<name>/<UTC time>-s<seed>).")
        var runDir: String?
        @Option(help: "Continue the run in this directory from its last evaluation (checkpoints/resume-state.safetensors); raise offline.n_steps to train on past its end.")
        var resume: String?
        @Flag(help: "With --resume: accept config changes that change the computation (learning rates, architecture, …), logged to config-history.yaml.")
        var allowChanges = false

        /// Checked first in `run`, so a refused flag value is one line and exit 64 (`DPPOCommand.main`).
        func checkFlags() throws {
            if resume != nil && runDir != nil { throw ValidationError("--resume continues a run in its own directory: drop --run-dir") }
        }

        func run() throws {
            try checkFlags()
            StopRequest.install(log: Cluster.log)
            if let resume {
                let run = try RunDirectory(url: URL(fileURLWithPath: resume))
                let resumed = try options.loadResuming(run, allowChanges: allowChanges)
                try runOffline(config: resumed.config, run: run, resume: true, changes: resumed.changes)
                return
            }
            let config = try options.load()
            let run = try runDir.map { try RunDirectory(url: URL(fileURLWithPath: $0)) } ?? RunDirectory.create(root: "runs", name: config.name, seed: config.seed)
            try runOffline(config: config, run: run)
        }
    }

    struct Learner: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the learner: receive segments, update with DPPO, publish weights.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Run directory (default: a new runs/<name>/<UTC time>-s<seed>).")
        var runDir: String?
        @Option(help: "Checkpoint to fine-tune from (default: pretrain.checkpoint of the config).")
        var basePolicy: String?
        @Option(help: "Continue the run in this directory from its latest checkpoint (actors reconnect by themselves).")
        var resume: String?
        @Flag(help: "With --resume: accept config changes that change the computation (learning rates, architecture, …), logged to config-history.yaml.")
        var allowChanges = false

        /// Checked first in `run`, so a refused flag value is one line and exit 64 (`DPPOCommand.main`).
        func checkFlags() throws {
            if resume != nil && (runDir != nil || basePolicy != nil) {
                throw ValidationError("--resume continues a run in its own directory from its own checkpoint: drop --run-dir and --base-policy")
            }
        }

        func run() throws {
            try checkFlags()
            StopRequest.install(log: Cluster.log)
            // Started by mpirun (or srun) as several ranks: rank 0 is the learner, the others share its updates.
            let launched = MPIGroup.launched()
            let resumed = try resume.map { try options.loadResuming(try RunDirectory(url: URL(fileURLWithPath: $0)), allowChanges: allowChanges) }
            let config = try resumed?.config ?? options.load()
            guard let group = launched else { return try runLearner(config: config, changes: resumed?.changes ?? [], group: nil) }
            do {
                if group.rank == 0 {
                    try runLearner(config: config, changes: resumed?.changes ?? [], group: group)
                } else {
                    try runLearnerRank(config: config, group: group)
                }
                group.finalize()
            } catch {
                FileHandle.standardError.write(Data("learner rank \(group.rank): \(error)\n".utf8))
                group.abort(code: 1)
            }
        }

        func runLearner(config: RunConfig, changes: [ConfigResume.Change], group: MPIGroup?) throws {
            if let resume {
                try Cluster.Learner(config: config, resuming: try RunDirectory(url: URL(fileURLWithPath: resume)), changes: changes, group: group).run()
                return
            }
            let run = try runDir.map { try RunDirectory(url: URL(fileURLWithPath: $0)) } ?? RunDirectory.create(root: "runs", name: config.name, seed: config.seed)
            let checkpoint = basePolicy ?? config.pretrain.checkpoint
            guard !checkpoint.isEmpty else { throw ValidationError("no policy to fine-tune: pass --base-policy or set pretrain.checkpoint") }
            let learner = try Cluster.Learner(config: config, run: run, basePolicy: URL(fileURLWithPath: checkpoint), group: group)
            try learner.run()
        }
    }

    /// Hidden: a fixed small update on `--threads` workers and (under mpirun) every rank; rank 0 writes the parameters.
    struct LearnerRankCheck: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "learner-rank-check", abstract: "Test support: a fixed update across ranks.",
                                                        shouldDisplay: false)
        @Option var threads: Int = 1
        @Option var output: String

        func run() throws {
            guard (1...64).contains(threads) else { throw ValidationError("--threads must be from 1 to 64") }
            let group = MPIGroup.launched()
            let result = runRankCheck(threads: threads, group: group)
            if (group?.rank ?? 0) == 0 {
                try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: output))
            }
            group?.finalize()
        }
    }

    struct Actor: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run an actor: sample with the diffusion policy, stream segments to the learner.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Host or address of the learner.")
        var learner: String = "127.0.0.1"
        @Option(help: "Preferred actor index (0-based); the learner assigns one when omitted.")
        var index: Int?

        /// Checked first in `run`, so a refused flag value is one line and exit 64 (`DPPOCommand.main`).
        func checkFlags() throws {
            if let index, !(0..<1_024).contains(index) { throw ValidationError("--index must be from 0 to 1023 (cluster.actors is at most 1024)") }
        }

        func run() throws {
            try checkFlags()
            let config = try options.load()
            try Cluster.Actor(config: config, learnerHost: learner, requestedIndex: index).run()
        }
    }

    struct Evaluate: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "eval", abstract: "Evaluate a checkpoint (pre-trained or fine-tuned) over N episodes.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Checkpoint (.safetensors with its .json sidecar).")
        var checkpoint: String
        @Option(help: "Number of episodes.")
        var episodes: Int = 32
        @Flag(help: "Sample as in training rollouts (exploration noise) instead of deterministically.")
        var stochastic = false
        @Option(help: "Critics file of dppo offline (<checkpoint>-critics.safetensors): evaluate with critic-guided selection among --candidates chunks, as the offline method does.")
        var critics: String?
        @Option(help: "Candidate chunks per state with --critics.")
        var candidates: Int = 10
        @Flag(help: "Print one JSON object.")
        var json = false

        /// Checked first in `run`, so a refused flag value is one line and exit 64 (`DPPOCommand.main`).
        func checkFlags() throws {
            guard (1...100_000).contains(episodes) else { throw ValidationError("--episodes must be from 1 to 100000") }
            guard (1...10_000).contains(candidates) else { throw ValidationError("--candidates must be from 1 to 10000") }
        }

        func run() throws {
            try checkFlags()
            let config = try options.load()
            let result = try critics.map {
                try evaluateCheckpointWithCritics(config: config, checkpoint: URL(fileURLWithPath: checkpoint), critics: URL(fileURLWithPath: $0),
                                                  candidates: candidates, episodes: episodes)
            } ?? evaluateCheckpoint(config: config, checkpoint: URL(fileURLWithPath: checkpoint), episodes: episodes,
                                    mode: stochastic ? .exploration : .deterministic)
            if json {
                try printJSON(result)
            } else {
                let how = critics != nil ? "critic-selected among \(candidates)" : stochastic ? "stochastic" : "deterministic"
                print(String(format: "eval (%@): return %.2f ± %.2f over %d episodes (min %.2f, max %.2f)", how,
                             result.meanReturn, result.stdReturn, result.episodes, result.minReturn, result.maxReturn)
                      + (result.successRate.map { String(format: ", success rate %.1f %%", 100 * $0) } ?? ""))
            }
        }
    }
}

extension DPPOCommand {
    struct Collect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Collect a dataset (docs/datasets.md) from a checkpoint's policy or the task's scripted controller.",
            discussion: "Episodes run to their end; states and actions are stored in environment units with rewards and terminals.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "Policy checkpoint to roll out (default: the task's scripted controller).")
        var checkpoint: String?
        @Option(help: "Episodes to collect.")
        var episodes: Int = 64
        @Option(help: "Gain of the scripted controller (1: its best).")
        var gain: Double = 1
        @Flag(help: "Roll the checkpoint out with exploration noise instead of deterministically.")
        var stochastic = false
        @Flag(help: "Store the policy's sampled actions as drawn; by default the executed controls, clipped to the action bounds, are stored.")
        var rawActions = false
        @Option(help: "Output dataset file (.safetensors).")
        var output: String

        /// Checked first in `run`, so a refused flag value is one line and exit 64 (`DPPOCommand.main`).
        func checkFlags() throws {
            guard (1...1_000_000).contains(episodes) else { throw ValidationError("--episodes must be from 1 to 1000000") }
            guard gain.isFinite, (0...100).contains(gain) else { throw ValidationError("--gain must be a number from 0 to 100") }
        }

        func run() throws {
            try checkFlags()
            let config = try options.load()
            let dataset: TrajectoryDataset
            if let checkpoint {
                dataset = try collectPolicyEpisodes(config: config, checkpoint: URL(fileURLWithPath: checkpoint), episodes: episodes,
                                                    mode: stochastic ? .exploration : .deterministic, rawActions: rawActions)
            } else {
                dataset = try collectDemonstrations(config: config, episodes: episodes, gain: gain, seed: config.seed &+ 99)
            }
            try dataset.save(to: URL(fileURLWithPath: output))
            let summary = dataset.summary()
            print(String(format: "collect: %d episodes, %d steps, return %.2f (min %.2f, max %.2f) → %@", summary.episodeCount, summary.stepCount,
                         summary.episodeReturn?.mean ?? .nan, summary.episodeReturn?.minimum ?? .nan, summary.episodeReturn?.maximum ?? .nan, output))
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure chain sampling and learner update throughput against their sgemm bound (build with -c release).",
            discussion: """
            With --compare-torch it also runs scripts/bench_torch.py (PyTorch on CPU, one thread) on the same network and shapes, side by side. \
            The learner update is also measured split over 1, 2, 4, … threads up to the core count (learner_update_scaling; \
            --scaling-threads to choose). `dppo bench iteration` times one whole iteration at the reference's Hopper sizes.
            """,
            subcommands: [Iteration.self])
        @Flag(help: "Print one JSON object instead of a table.")
        var json = false
        @Flag(help: "Also run the PyTorch baseline (needs `pip install torch==2.13.0+cpu`).")
        var compareTorch = false
        @Option(help: "Seconds per measurement.")
        var seconds: Double = 2
        @Option(help: "Thread counts of the learner-update scaling measurement, comma-separated (default: 1, 2, 4, … and the core count).")
        var scalingThreads: String?
        @Flag(help: "Measure only the learner-update scaling (under `mpirun -np N`, across N ranks).")
        var scaling = false
        @Flag(help: "Measure only native environment stepping (the MuJoCo locomotion and tabletop tasks) against bare mj_step with the same controls, on one core.")
        var environments = false
        @Flag(help: "Measure only the offline methods: training steps/s of Diffusion-QL, EDP without action approximation, EDP without DPM-Solver and EDP, and DDPM vs DPM-Solver sampling.")
        var offline = false
        @Flag(help: "Measure only the wire path on real recorded segments (Pendulum and Hopper): compression per field, plain LZ4 vs byte-shuffle + LZ4, encode + HMAC + decode + verify cost against the actor's time to produce a segment, and bytes per environment step with full vs seeded chains (with the learner's rebuild cost and the recorded-vs-rebuilt differences).")
        var wire = false
        @Option(help: "With --wire: the Hopper policy to roll out, used when the file exists (otherwise an initialized policy).")
        var hopperCheckpoint: String = "runs/hopper-pretrain/main/pretrained.safetensors"

        @Flag(help: "Measure the distribution overhead: the environment-step rate of --actors actor processes with no learner, against the same actors with a learner attached (strict and async; with --seeded-chains also seeded transport).")
        var cluster = false
        @Option(help: "With --cluster: the run's config (default: the embedded default run's, configs/pendulum/finetune.yaml).")
        var config: String = "configs/pendulum/finetune.yaml"
        @Option(name: [.customLong("set")], help: "With --cluster: override a config key (repeatable).")
        var overrides: [String] = []
        @Option(help: "With --cluster: actor processes.")
        var actors: Int = 4
        @Option(help: "With --cluster: iterations per cluster run (the first and last are not measured).")
        var iterations: Int = 6
        @Flag(help: "With --cluster: also measure each mode with cluster.chain_transport: seeded.")
        var seededChains = false
        @Flag(help: .hidden)
        var standaloneActor = false
        @Option(help: .hidden)
        var checkpoint: String?

        /// Checked first in `run`, so a refused flag value is one line and exit 64 (`DPPOCommand.main`).
        func checkFlags() throws {
            guard seconds.isFinite, seconds > 0, seconds <= 3_600 else { throw ValidationError("--seconds must be above 0 and at most 3600") }
            guard (1...256).contains(actors) else { throw ValidationError("--actors must be from 1 to 256") }
            guard (3...10_000).contains(iterations) else { throw ValidationError("--iterations must be from 3 to 10000 (the first and last are not measured)") }
        }

        func run() throws {
            try checkFlags()
            if standaloneActor {
                let config = try RunConfig.load(path: config, overrides: overrides)
                let rate = try Benchmarks.standaloneActor(config: config, checkpoint: checkpoint.map { URL(fileURLWithPath: $0) }, seconds: seconds)
                print("{\"env_steps_per_second\": \(rate)}")
                return
            }
            if cluster {
                let say: (String) -> Void = json ? { _ in } : { print($0) }
                let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
                let report = try Benchmarks.cluster(binary: binary, configPath: config, overrides: overrides, actors: actors, iterations: iterations,
                                                    seconds: seconds, chainTransports: seededChains ? ["full", "seeded"] : ["full"], log: say)
                if json {
                    try printJSON(report)
                }
                return
            }
            if wire {
                let say: (String) -> Void = json ? { _ in } : { print($0) }
                var reports: [WireBenchmarkReport] = []
                let tasks: [(config: String, checkpoint: String?)] = [("configs/pendulum/finetune.yaml", nil), ("configs/hopper/finetune.yaml", hopperCheckpoint)]
                for (path, checkpoint) in tasks {
                    let config = try RunConfig.load(path: path)
                    reports.append(try Benchmarks.wirePath(config: config, checkpoint: checkpoint.map { URL(fileURLWithPath: $0) }, seconds: seconds, log: say))
                }
                if json {
                    try printJSON(reports)
                }
                return
            }
            if environments {
                let say: (String) -> Void = json ? { _ in } : { print($0) }
                let rates = Benchmarks.environmentStepping(seconds: seconds, log: say)
                if json { try printJSON(rates) }
                return
            }
            if offline {
                let say: (String) -> Void = json ? { _ in } : { print($0) }
                let training = benchmarkOfflineTraining(seconds: seconds, log: say)
                let sampling = benchmarkSampling(denoisingSteps: [20, 100, 1000], batches: [1, 256], seconds: seconds, log: say)
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    let object: [String: Any] = ["offline_training": try JSONSerialization.jsonObject(with: encoder.encode(training)),
                                                 "sampling": try JSONSerialization.jsonObject(with: encoder.encode(sampling))]
                    print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
                }
                return
            }
            var threadCounts: [Int]?
            if let scalingThreads {
                let counts = scalingThreads.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1_024 }) else {
                    throw ValidationError("--scaling-threads '\(scalingThreads)': give thread counts from 1 to 1024, comma-separated, e.g. 1,2,4")
                }
                threadCounts = counts.compactMap { $0 }
            }
            if scaling {
                // Under mpirun every rank measures; rank 0 reports.
                let group = MPIGroup.launched()
                let report = Benchmarks.learnerScaling(threads: threadCounts ?? Benchmarks.defaultScalingThreads(), seconds: seconds, group: group,
                                                       log: json ? { _ in } : { print($0) })
                if json && (group?.rank ?? 0) == 0 { try printJSON(["learner_update_scaling": report]) }
                group?.finalize()
                return
            }
            let report = Benchmarks.run(seconds: seconds, scalingThreads: threadCounts, log: json ? { _ in } : { print($0) })
            let torch = compareTorch ? try runTorchBaseline() : nil
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                var object = try JSONSerialization.jsonObject(with: encoder.encode(report)) as! [String: Any]
                if let torch { object["pytorch"] = torch }
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
            } else if let torch {
                print("PyTorch \(torch["torch_version"] ?? "?") on CPU, one thread, same network and shapes:")
                for entry in torch["chain_sampling"] as? [[String: Any]] ?? [] {
                    let mine = report.chain_sampling.first { $0.batch == entry["batch"] as? Int }?.chains_per_second ?? .nan
                    print(String(format: "chain sampling  batch %4d: %9.0f chains/s (20 passes), %9.0f (reference style, 30 passes); Swift %.2f× the reference style",
                                 entry["batch"] as? Int ?? 0, entry["efficient_chains_per_second"] as? Double ?? .nan,
                                 entry["reference_style_chains_per_second"] as? Double ?? .nan, mine / (entry["reference_style_chains_per_second"] as? Double ?? .nan)))
                }
                if let learner = torch["learner_update"] as? [String: Any] {
                    print(String(format: "learner update: %7.0f env-step samples/s (critic per pair, as the reference), %7.0f (critic per sample); Swift %.2f× the reference",
                                 learner["env_step_samples_per_second_critic_per_pair"] as? Double ?? .nan,
                                 learner["env_step_samples_per_second_critic_per_sample"] as? Double ?? .nan,
                                 report.learner_update.env_step_samples_per_second / (learner["env_step_samples_per_second_critic_per_pair"] as? Double ?? .nan)))
                }
            }
        }

        struct Iteration: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Time one whole fine-tuning iteration at the DPPO reference's Hopper sizes (build with -c release).",
                discussion: """
                Learner and 2 actor processes on this machine: DiffusionMLP 512×3, critic 256×3, 2 × 20 environments × 500 decisions × Ta 4 \
                = 80,000 environment steps, minibatches of 50,000 pairs, every epoch (no KL stop, no critic warm-up), fresh weights. \
                Two iterations run and the second is reported (the first includes the actors connecting). \
                Prints rollout, value-pass and update seconds for each --threads value.
                """)
            @Option(help: "PPO epochs over the batch (the reference's Hopper config: 5).")
            var epochs: Int = 5
            @Option(help: "The learner's threads, comma-separated: one iteration each (default: the core count).")
            var threads: String?
            @Flag(help: "Print one JSON object instead of lines.")
            var json = false

            func run() throws {
                guard (1...100).contains(epochs) else { throw ValidationError("--epochs must be from 1 to 100") }
                let counts = (threads ?? String(ProcessInfo.processInfo.activeProcessorCount)).split(separator: ",")
                    .map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1_024 }) else {
                    throw ValidationError("--threads: give thread counts from 1 to 1024, comma-separated, e.g. 1,2")
                }
                let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
                let report = try Benchmarks.iteration(binary: binary, epochs: epochs, threads: counts.compactMap { $0 },
                                                      log: json ? { _ in } : { print($0) })
                if json { try printJSON(report) }
            }
        }

        func runTorchBaseline() throws -> [String: Any] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "scripts/bench_torch.py", "--json", "--seconds", String(seconds)]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0, let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("the PyTorch baseline failed (status \(process.terminationStatus)); install it with `pip install torch==2.13.0+cpu` and run from the repository root")
            }
            return object
        }
    }
}
