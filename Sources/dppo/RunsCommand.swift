import ArgumentParser
import Cluster
import Foundation
import Networks

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

/// `dppo export --checkpoint CKPT --format reference --output OUT.safetensors`.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint's weights under the DPPO reference's PyTorch names (docs/checkpoints.md).",
        discussion: "--format reference: actor.* (base DiffusionMLP), actor_ft.* (fine-tuned copy) and critic.* (CriticObs), each loadable with load_state_dict(strict=True) once its prefix is stripped; optimizer moments are left out.")
    @Option(help: "The checkpoint (.safetensors with its .json sidecar).")
    var checkpoint: String
    @Option(help: "The output format; `reference` is the one there is.")
    var format: String = "reference"
    @Option(help: "Where to write the state dict (.safetensors).")
    var output: String

    func run() throws {
        guard format == "reference" else { throw ValidationError("--format must be reference") }
        let tensors = try ReferenceExport.stateDict(of: URL(fileURLWithPath: checkpoint))
        try Safetensors.write(tensors, metadata: ["format": "dppo-reference-state-dict", "source": checkpoint], to: URL(fileURLWithPath: output))
        print("wrote \(tensors.count) tensors to \(output)")
    }
}
