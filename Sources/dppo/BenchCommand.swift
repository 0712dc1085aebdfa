import ArgumentParser
import Benchmarks
import Cluster
import Offline
import Datasets
import Foundation

extension DPPOCommand {
    /// `dppo bench <what>`: each measurement its own subcommand, each with `--json` and `--seconds`; plain
    /// `dppo bench` is `dppo bench kernels`. Paths the benchmarks read (configs/, scripts/bench_torch.py, a Hopper
    /// checkpoint) are taken from the working directory, or else from the checkout this binary was built in, so
    /// every subcommand works from any directory.
    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure throughput against its bound (build with -c release): kernels, envs, wire, cluster, offline, scaling, iteration.",
            discussion: """
            kernels (the default): chain sampling and the learner update against their sgemm bound, the learner update split over \
            1, 2, 4, … threads (learner_update_scaling) and environment stepping; with --compare-torch also scripts/bench_torch.py \
            (PyTorch on CPU, one thread) on the same network and shapes, side by side. See BENCHMARKS.md for each.
            """,
            subcommands: [Kernels.self, Envs.self, Wire.self, ClusterOverhead.self, OfflineMethods.self, Scaling.self, Iteration.self,
                          StandaloneActor.self],
            defaultSubcommand: Kernels.self)
    }
}

/// The options every `dppo bench` subcommand takes.
struct BenchOptions: ParsableArguments {
    @Flag(help: "Print one JSON object instead of lines.")
    var json = false
    @Option(help: "Seconds per measurement (above 0, at most 3600).")
    var seconds: Double = 2

    func validate() throws {
        guard seconds.isFinite, seconds > 0, seconds <= 3_600 else { throw ValidationError("--seconds must be above 0 and at most 3600") }
    }

    /// Where progress lines go: stdout, or nowhere with --json (the JSON object is then the only output).
    var log: (String) -> Void { json ? { _ in } : { print($0) } }
}

/// The run a cluster benchmark measures: its config and overrides.
struct BenchRunOptions: ParsableArguments {
    @Option(help: "The run's config (default: the embedded default run's, configs/pendulum/finetune.yaml).")
    var config: String = "configs/pendulum/finetune.yaml"
    @Option(name: [.customLong("set")], help: "Override a config key (repeatable).")
    var overrides: [String] = []
}

/// A path the benchmarks read: as given when it exists from the working directory, else relative to the nearest
/// folder above this binary that holds it (the checkout it was built in: `<checkout>/.build/…/dppo`), else as given
/// (and the error names it).
func benchPath(_ path: String) -> String {
    guard !path.hasPrefix("/"), !FileManager.default.fileExists(atPath: path) else { return path }
    var folder = URL(fileURLWithPath: thisBinary()).resolvingSymlinksInPath().deletingLastPathComponent()
    while folder.path != "/" {
        let candidate = folder.appendingPathComponent(path).path
        if FileManager.default.fileExists(atPath: candidate) { return candidate }
        folder = folder.deletingLastPathComponent()
    }
    return path
}

/// This program's own executable, for the benchmarks that start copies of it.
func thisBinary() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// Thread counts from a comma-separated flag value, each 1…1024.
func threadCounts(_ text: String, flag: String) throws -> [Int] {
    let counts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1_024 }) else {
        throw ValidationError("\(flag) '\(text)': give thread counts from 1 to 1024, comma-separated, e.g. 1,2,4")
    }
    return counts.compactMap { $0 }
}

extension DPPOCommand.Bench {
    struct Kernels: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Chain sampling and the learner update against their sgemm bound, learner-update scaling and environment stepping.")
        @OptionGroup var options: BenchOptions
        @Flag(help: "Also run the PyTorch baseline (needs `pip install torch==2.13.0+cpu`).")
        var compareTorch = false
        @Option(help: "Thread counts of the learner-update scaling measurement, comma-separated (default: 1, 2, 4, … and the core count).")
        var scalingThreads: String?

        func run() throws {
            let counts = try scalingThreads.map { try threadCounts($0, flag: "--scaling-threads") }
            let report = Benchmarks.run(seconds: options.seconds, scalingThreads: counts, log: options.log)
            let torch = compareTorch ? try runTorchBaseline(seconds: options.seconds) : nil
            if options.json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                guard var object = try JSONSerialization.jsonObject(with: encoder.encode(report)) as? [String: Any] else {
                    throw ValidationError("the benchmark report did not encode as a JSON object")
                }
                if let torch { object["pytorch"] = torch }
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
            } else if let torch {
                printComparison(report, torch)
            }
        }

        func printComparison(_ report: BenchmarkReport, _ torch: [String: Any]) {
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

        func runTorchBaseline(seconds: Double) throws -> [String: Any] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", benchPath("scripts/bench_torch.py"), "--json", "--seconds", String(seconds)]
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

    struct Envs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Native environment stepping (the MuJoCo locomotion and tabletop tasks) against bare mj_step with the same controls, on one core.")
        @OptionGroup var options: BenchOptions

        func run() throws {
            let rates = Benchmarks.environmentStepping(seconds: options.seconds, log: options.log)
            if options.json { try printJSON(rates) }
        }
    }

    struct Wire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The wire path on real recorded segments (Pendulum and Hopper).",
            discussion: """
            Compression per field, plain LZ4 vs byte-shuffle + LZ4, encode + HMAC + decode + verify cost against the actor's time to \
            produce a segment, and bytes per environment step with full vs seeded chains (with the learner's rebuild cost and the \
            recorded-vs-rebuilt differences).
            """)
        @OptionGroup var options: BenchOptions
        @Option(help: "The Hopper policy to roll out, used when the file exists (otherwise an initialized policy).")
        var hopperCheckpoint: String = "runs/hopper-pretrain/main/pretrained.safetensors"

        func run() throws {
            var reports: [WireBenchmarkReport] = []
            let tasks: [(config: String, checkpoint: String?)] = [("configs/pendulum/finetune.yaml", nil), ("configs/hopper/finetune.yaml", hopperCheckpoint)]
            for (path, checkpoint) in tasks {
                let config = try RunConfig.load(path: benchPath(path))
                reports.append(try Benchmarks.wirePath(config: config, checkpoint: checkpoint.map { URL(fileURLWithPath: benchPath($0)) },
                                                       seconds: options.seconds, log: options.log))
            }
            if options.json { try printJSON(reports) }
        }
    }

    struct ClusterOverhead: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cluster",
            abstract: "The distribution overhead: the environment-step rate of --actors actor processes with no learner, against the same actors with a learner attached (strict and async; with --seeded-chains also seeded transport).")
        @OptionGroup var options: BenchOptions
        @OptionGroup var target: BenchRunOptions
        @Option(help: "Actor processes (1–256).")
        var actors: Int = 4
        @Option(help: "Iterations per cluster run (3–10000; the first and last are not measured).")
        var iterations: Int = 6
        @Flag(help: "Also measure each mode with cluster.chain_transport: seeded.")
        var seededChains = false

        func validate() throws {
            guard (1...256).contains(actors) else { throw ValidationError("--actors must be from 1 to 256") }
            guard (3...10_000).contains(iterations) else { throw ValidationError("--iterations must be from 3 to 10000 (the first and last are not measured)") }
        }

        func run() throws {
            let report = try Benchmarks.cluster(binary: thisBinary(), configPath: benchPath(target.config), overrides: target.overrides, actors: actors, iterations: iterations,
                                                seconds: options.seconds, chainTransports: seededChains ? ["full", "seeded"] : ["full"], log: options.log)
            if options.json { try printJSON(report) }
        }
    }

    /// One actor process with no learner, for `dppo bench cluster`; prints its environment-step rate as JSON.
    struct StandaloneActor: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "standalone-actor", abstract: "(used by `dppo bench cluster`)",
                                                        shouldDisplay: false)
        @OptionGroup var options: BenchOptions
        @OptionGroup var target: BenchRunOptions
        @Option(help: "The policy to roll out.")
        var checkpoint: String?

        func run() throws {
            let config = try RunConfig.load(path: benchPath(target.config), overrides: target.overrides)
            let rate = try Benchmarks.standaloneActor(config: config, checkpoint: checkpoint.map { URL(fileURLWithPath: $0) }, seconds: options.seconds)
            print("{\"env_steps_per_second\": \(rate)}")
        }
    }

    struct OfflineMethods: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "offline",
            abstract: "The offline methods: training steps/s of Diffusion-QL, EDP without action approximation, EDP without DPM-Solver and EDP, and DDPM vs DPM-Solver sampling.")
        @OptionGroup var options: BenchOptions

        struct Report: Encodable {
            let offline_training: TrainingBenchmarkReport
            let sampling: SamplingBenchmarkReport
        }

        func run() throws {
            let training = benchmarkOfflineTraining(seconds: options.seconds, log: options.log)
            let sampling = benchmarkSampling(denoisingSteps: [20, 100, 1000], batches: [1, 256], seconds: options.seconds, log: options.log)
            if options.json { try printJSON(Report(offline_training: training, sampling: sampling)) }
        }
    }

    struct Scaling: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The learner-update scaling alone: over threads, and under `mpirun -np N` across N ranks (rank 0 reports).")
        @OptionGroup var options: BenchOptions
        @Option(help: "Thread counts, comma-separated (default: 1, 2, 4, … and the core count).")
        var threads: String?

        func run() throws {
            let counts = try threads.map { try threadCounts($0, flag: "--threads") } ?? Benchmarks.defaultScalingThreads()
            let group = MPIGroup.launched()
            let report = Benchmarks.learnerScaling(threads: counts, seconds: options.seconds, group: group, log: options.log)
            if options.json && (group?.rank ?? 0) == 0 { try printJSON(["learner_update_scaling": report]) }
            group?.finalize()
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
                let counts = try threadCounts(threads ?? String(ProcessInfo.processInfo.activeProcessorCount), flag: "--threads")
                let report = try Benchmarks.iteration(binary: thisBinary(), epochs: epochs, threads: counts,
                                                      log: json ? { _ in } : { print($0) })
                if json { try printJSON(report) }
            }
        }

}
