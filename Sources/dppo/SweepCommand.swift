import ArgumentParser
import Cluster
import Foundation

/// `dppo sweep CONFIG --grid seed=1,2,3 [--grid train.actor_lr=1e-4,3e-4] [--parallel N]`: one local cluster
/// (`cluster/launch.sh`) per combination, N at a time, each in its own directory under the sweep's.
struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a config over a grid of overrides: one local cluster per combination, --parallel at a time, under one sweep directory with sweep.json.",
        discussion: """
        Each run gets runs/sweeps/<name>-<UTC time>/<key=value,…>/ (or --dir), and its own ports (cluster.base_port + 10 × its slot). \
        Running the same sweep again (same --dir) skips finished runs, resumes those with a checkpoint and starts the rest. \
        Ctrl-C or SIGTERM stops the running clusters cleanly (each checkpoints); run it again to continue. \
        `dppo runs DIR` lists the runs; `dppo compare DIR` tabulates them.
        """)
    @Argument(help: "The YAML config every run starts from.")
    var config: String
    @Option(name: .customLong("grid"), help: "key.path=value1,value2 (repeatable; every combination runs).")
    var grid: [String] = []
    @Option(name: .customLong("set"), help: "Override a config key for every run (repeatable).")
    var overrides: [String] = []
    @Option(help: "Runs at a time.")
    var parallel: Int = 1
    @Option(help: "The sweep directory (default: runs/sweeps/<name>-<UTC time>).")
    var dir: String?
    @Option(help: "The launcher each run goes through.")
    var launcher: String = "cluster/launch.sh"
    @Flag(help: "Submit the sweep as one Slurm job array (sweep.sbatch in the sweep directory): task i runs cluster/slurm.sbatch for run i, --parallel tasks at a time.")
    var slurm = false
    @Option(name: .customLong("sbatch"), help: "With --slurm: an option for sbatch, e.g. --sbatch=--nodes=2 (repeatable).")
    var sbatchOptions: [String] = []

    func run() throws {
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be from 1 to 64") }
        guard FileManager.default.isExecutableFile(atPath: launcher) || FileManager.default.fileExists(atPath: launcher) else {
            throw ValidationError("no launcher at \(launcher): run dppo sweep from the repository root, or pass --launcher")
        }
        let base = try RunConfig.load(path: config, overrides: overrides)
        let axes = try grid.map(Sweep.axis)
        let directory = dir.map { URL(fileURLWithPath: $0) } ?? defaultDirectory(base: base)
        var sweep = try Sweep.plan(config: config, grid: axes, sets: overrides, directory: directory)
        try check(sweep, base: base)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let lock = try RunDirectory.lock(directory, job: "sweep")
        defer { withExtendedLifetime(lock) {} }
        if let earlier = try? Sweep.read(from: directory) {
            guard earlier.grid == sweep.grid, earlier.sets == sweep.sets, earlier.config == sweep.config else {
                throw ValidationError("\(directory.path) holds another sweep (its grid, --set or config differ); give another --dir")
            }
            for index in sweep.runs.indices { sweep.runs[index].attempts = earlier.runs[index].attempts }
        }
        let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        if slurm { return try submit(sweep, directory: directory, base: base, binary: binary) }
        StopRequest.install(log: Cluster.log)
        log("sweep: \(sweep.runs.count) runs in \(directory.path), \(parallel) at a time")

        var running: [(index: Int, slot: Int, process: Process)] = []
        var queue = Array(sweep.runs.indices)
        func save() {
            do { try sweep.write(to: directory) } catch { log("sweep: warning: could not write \(directory.path)/sweep.json (\(error)); the runs go on") }
        }
        for index in sweep.runs.indices where Sweep.step(for: sweep.runs[index]) == .skip { sweep.runs[index].state = "finished" }
        queue.removeAll { sweep.runs[$0].state == "finished" }
        save()
        while !queue.isEmpty || !running.isEmpty {
            if StopRequest.isRequested {
                // Each launcher passes the signal to its learner, which checkpoints; then the sweep stops. Foundation starts
                // each child in its own process group, so a terminal's Ctrl-C reached only the sweep: forward it always.
                for child in running { kill(child.process.processIdentifier, SIGTERM) }
                for child in running { child.process.waitUntilExit(); sweep.runs[child.index].state = state(of: sweep.runs[child.index]) }
                save()
                log("sweep: stopped; run the same command (with --dir \(directory.path)) to continue")
                return
            }
            while running.count < parallel, let index = queue.first {
                queue.removeFirst()
                let slot = (0..<parallel).first { slot in !running.contains { $0.slot == slot } }!
                running.append((index, slot, try start(&sweep.runs[index], slot: slot, base: base, binary: binary)))
                save()
            }
            if let finished = running.firstIndex(where: { !$0.process.isRunning }) {
                let child = running.remove(at: finished)
                sweep.runs[child.index].state = state(of: sweep.runs[child.index])
                log("sweep: \(sweep.runs[child.index].name) \(sweep.runs[child.index].state) (exit \(child.process.terminationStatus))")
                save()
            } else {
                usleep(200_000)
            }
        }
        let entries = sweep.runs.map { RunListing.entry(for: URL(fileURLWithPath: $0.directory), root: directory) }
        print(RunListing.table(entries))
        let unfinished = sweep.runs.filter { $0.state != "finished" }
        if !unfinished.isEmpty {
            throw ValidationError("\(unfinished.count) of \(sweep.runs.count) runs did not finish (\(unfinished.map(\.name).joined(separator: ", "))); "
                                  + "see their logs, then run the same command to resume them")
        }
    }

    /// runs/sweeps/<name>-<UTC time>.
    func defaultDirectory(base: RunConfig) -> URL {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return URL(fileURLWithPath: "runs/sweeps/\(base.name)-\(formatter.string(from: Date()))")
    }

    /// Before anything starts: every combination makes a valid config, and every slot's ports fit.
    func check(_ sweep: Sweep, base: RunConfig) throws {
        for run in sweep.runs {
            do { _ = try RunConfig.load(path: config, overrides: overrides + run.overrides) } catch let error as ConfigError {
                throw ConfigError("run \(run.name): \(error.message)")
            }
        }
        let slots = slurm ? sweep.runs.count : parallel
        guard base.cluster.basePort + 10 * (slots - 1) <= 65_533 else {
            throw ValidationError("cluster.base_port \(base.cluster.basePort) + 10 × \(slots - 1) (one set of ports per \(slurm ? "run" : "slot")) passes 65533: lower it")
        }
    }

    /// `--slurm`: writes sweep.sbatch, a job array whose task i runs cluster/slurm.sbatch for run i (on ports
    /// base + 10 × i); a task whose run finished exits at once, and one with checkpoints resumes (slurm.sbatch), so
    /// submitting the same sweep again finishes what is left. Prints the job id.
    func submit(_ sweep: Sweep, directory: URL, base: RunConfig, binary: String) throws {
        func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let repository = FileManager.default.currentDirectoryPath
        var cases: [String] = []
        for (index, run) in sweep.runs.enumerated() {
            let sets = (overrides + run.overrides).map { "--set " + quoted($0) }.joined(separator: " ")
            cases.append("  \(index)) run=\(quoted(run.directory)); sets=(\(sets)) ;;")
        }
        let script = """
            #!/usr/bin/env bash
            # Written by `dppo sweep --slurm`: task i of this array runs run i of \(directory.path)/sweep.json.
            #SBATCH --array=0-\(sweep.runs.count - 1)%\(parallel)
            #SBATCH --output=\(directory.path)/slurm-%A_%a.out
            #SBATCH --signal=B:TERM@120
            #SBATCH --requeue
            set -euo pipefail
            cd \(quoted(repository))
            case "$SLURM_ARRAY_TASK_ID" in
            \(cases.joined(separator: "\n"))
              *) echo "sweep.sbatch: no run $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;
            esac
            if grep -Eq '"state" ?: ?"finished"' "$run/summary.json" 2>/dev/null; then echo "sweep.sbatch: $run finished already"; exit 0; fi
            export DPPO_BIN=${DPPO_BIN:-\(quoted(binary))}
            exec bash cluster/slurm.sbatch \(quoted(config)) --run-dir "$run" "${sets[@]}" --set cluster.base_port=$((\(base.cluster.basePort) + 10 * SLURM_ARRAY_TASK_ID))

            """
        let url = directory.appendingPathComponent("sweep.sbatch")
        try script.write(to: url, atomically: true, encoding: .utf8)
        var submitted = sweep
        for index in submitted.runs.indices where Sweep.step(for: submitted.runs[index]) != .skip { submitted.runs[index].state = "submitted" }
        try submitted.write(to: directory)
        guard let sbatch = ["/usr/bin/sbatch", "/usr/local/bin/sbatch"].first(where: FileManager.default.isExecutableFile) else {
            throw ValidationError("wrote \(url.path), but there is no sbatch here: submit it with `sbatch \(url.path)` on the cluster")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: sbatch)
        process.arguments = ["--parsable"] + sbatchOptions + [url.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let job = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("sbatch refused \(url.path) (exit \(process.terminationStatus))") }
        print("submitted job array \(job): \(sweep.runs.count) runs, \(parallel) at a time; `dppo runs \(directory.path)` shows them")
    }

    /// Starts `run`'s cluster: resumed when it has a checkpoint, afresh otherwise (moving a failed start aside).
    func start(_ run: inout Sweep.Run, slot: Int, base: RunConfig, binary: String) throws -> Process {
        let directory = URL(fileURLWithPath: run.directory)
        var arguments = [launcher, config, "--bin", binary]
        switch Sweep.step(for: run) {
        case .resume:
            arguments += ["--resume", run.directory]
        case .start, .skip:
            if FileManager.default.fileExists(atPath: directory.path) {
                let aside = directory.path + ".failed-\(run.attempts)"
                try? FileManager.default.removeItem(atPath: aside)
                try FileManager.default.moveItem(atPath: directory.path, toPath: aside)
            }
            arguments += ["--run-dir", run.directory]
        }
        for override in overrides + run.overrides + ["cluster.base_port=\(base.cluster.basePort + 10 * slot)"] { arguments += ["--set", override] }
        run.attempts += 1
        run.state = "running"
        let logURL = URL(fileURLWithPath: run.directory + ".log")
        if !FileManager.default.fileExists(atPath: logURL.path) { FileManager.default.createFile(atPath: logURL.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: logURL)
        handle.seekToEndOfFile()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        log("sweep: \(run.name) started (attempt \(run.attempts), log \(logURL.path))")
        return process
    }

    func state(of run: Sweep.Run) -> String {
        RunListing.entry(for: URL(fileURLWithPath: run.directory), root: URL(fileURLWithPath: run.directory)).state.rawValue
    }
}
