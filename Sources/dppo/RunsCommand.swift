import ArgumentParser
import Cluster
import Foundation

/// `dppo runs [DIR]`: the runs under a folder, one line each; `--check RUN` verifies a run's inputs against its manifest.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the runs under a folder: job, state (running, finished, preempted, failed), progress, environment steps, final and best evaluation, wall time.",
        discussion: "A run is a directory with config.yaml and metrics.jsonl (learner, offline and pretrain jobs alike), at any depth (sweeps nest them). --check RUN hashes the run's inputs again (dataset, starting checkpoint, …) and compares them with its manifest.json.")
    @Argument(help: "The folder to look in.")
    var directory: String = "runs"
    @Option(help: "Verify this run's inputs against its manifest.json instead of listing; exit 1 when one changed.")
    var check: String?
    @Flag(help: "Print the runs as one JSON array.")
    var json = false

    func run() throws {
        if let check {
            let manifest = try RunManifest.read(from: URL(fileURLWithPath: check))
            let problems = manifest.verify()
            for (role, input) in manifest.inputs.sorted(by: { $0.key < $1.key }) where !problems.contains(where: { $0.role == role }) {
                print("ok       \(role): \(input.path) (sha256 \(input.sha256.prefix(12))…)")
            }
            for problem in problems { print("CHANGED  \(problem.role): \(problem.problem)") }
            print("\(manifest.dppo) on \(manifest.host) (\(manifest.cpu), OpenBLAS \(manifest.blasKernel)), \(manifest.threads) threads × \(manifest.ranks) ranks")
            if !problems.isEmpty { throw ExitCode(1) }
            return
        }
        let root = URL(fileURLWithPath: directory)
        guard FileManager.default.fileExists(atPath: root.path) else { throw ValidationError("no folder \(directory)") }
        let entries = RunListing.scan(root)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(entries), as: UTF8.self))
            return
        }
        guard !entries.isEmpty else { print("no runs under \(directory)"); return }
        print(RunListing.table(entries))
    }
}
