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
    /// ArgumentParser with the usage; a config or checkpoint error, or a refused value found while running, is one
    /// line on stderr and exit 64 (EX_USAGE); a cluster or offline-training failure is one line and exit 1. Never a
    /// usage dump or a backtrace.
    static func main() {
        var command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        ProcessLog.bootstrap(label: logLabel(of: command))
        do {
            try command.run()
        } catch let error as ConfigError {
            refuse(error.description)
        } catch let error as CheckpointError {
            refuse(error.description)
        } catch let error as ClusterError {
            fail(error.description)
        } catch let error as OfflineError {
            fail(error.description)
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

    /// A job that started and then failed (the cluster, a rank, a diverging loss): one line on stderr and exit 1.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
        Foundation.exit(1)
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
}
