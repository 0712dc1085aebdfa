import ArgumentParser
import Cluster
import Offline
import Datasets
import Foundation

extension DPPOCommand {
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
