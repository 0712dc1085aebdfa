import ArgumentParser
import Datasets
import Foundation

/// `dppo dataset`: converts the DPPO reference's pre-training data to the project's format and inspects either.
struct DatasetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset",
        abstract: "Import and inspect behaviour-cloning datasets (docs/datasets.md).",
        subcommands: [Import.self, Inspect.self])
}

extension DatasetCommand {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import",
            abstract: "Convert a reference train.npz (states, actions, traj_lengths[, rewards, terminals]) to a dataset .safetensors.",
            discussion: """
            The reference's preprocessing stores states and actions already normalised whenever it writes a
            normalization.npz. Pass that file with --normalization: the values are mapped back to environment
            units and the statistics are stored with the dataset. Without it the values are kept as they are
            and the statistics are computed from them.
            """)
        @Option(help: "The reference's .npz file (np.savez or np.savez_compressed).")
        var npz: String
        @Option(help: "The reference's normalization.npz (obs_min, obs_max, action_min, action_max).")
        var normalization: String?
        @Option(help: "Task name stored in the dataset's metadata, e.g. hopper-medium-v2.")
        var task: String?
        @Option(help: "Where to write the dataset (.safetensors).")
        var output: String

        func run() throws {
            let statistics = try normalization.map { try Normalization(referenceFile: URL(fileURLWithPath: $0)) }
            var dataset = try TrajectoryDataset(referenceNPZ: URL(fileURLWithPath: npz), normalization: statistics)
            if let task { dataset.metadata["task"] = task }
            if statistics == nil {
                print("no --normalization: states and actions kept as stored; normalisation computed from the data")
                let computed = try Normalization(dataset: dataset)
                if (computed.obsMin + computed.actionMin).allSatisfy({ $0 >= -1.001 }) && (computed.obsMax + computed.actionMax).allSatisfy({ $0 <= 1.001 }) {
                    print("note: every value lies in [-1, 1]; if the reference's preprocessing wrote this file, import it again with its normalization.npz")
                }
                dataset.normalization = computed
            }
            try dataset.save(to: URL(fileURLWithPath: output))
            print("wrote \(output)")
            printSummary(of: dataset)
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print sizes, episode statistics and normalisation ranges of a dataset (.safetensors) or a reference .npz.")
        @Argument(help: "A dataset written by `dppo dataset import`, or a reference .npz.")
        var file: String

        func run() throws {
            let url = URL(fileURLWithPath: file)
            if url.pathExtension == "npz" {
                var dataset = try TrajectoryDataset(referenceNPZ: url)
                dataset.normalization = try Normalization(dataset: dataset)
                print("\(file): reference .npz; values as stored, ranges computed from the data")
                printSummary(of: dataset)
            } else {
                let dataset = try TrajectoryDataset(contentsOf: url)
                print("\(file): \(TrajectoryDataset.fileFormat) version \(TrajectoryDataset.fileVersion)")
                printSummary(of: dataset)
            }
        }
    }
}

/// Prints what `inspect` and `import` report: metadata, sizes, episode statistics, normalisation ranges.
private func printSummary(of dataset: TrajectoryDataset) {
    for key in dataset.metadata.keys.sorted() { print("\(key): \(dataset.metadata[key]!)") }
    let summary = dataset.summary()
    print("steps N = \(summary.stepCount), episodes E = \(summary.episodeCount), state dim Do = \(summary.stateDimension), action dim Da = \(summary.actionDimension)")
    if let length = summary.episodeLength {
        print(String(format: "episode length: min %.0f, mean %.1f, max %.0f", length.minimum, length.mean, length.maximum))
    }
    if let episodeReturn = summary.episodeReturn {
        print(String(format: "episode return: min %.3f, mean %.3f, max %.3f", episodeReturn.minimum, episodeReturn.mean, episodeReturn.maximum))
    } else {
        print("episode return: no rewards stored")
    }
    if let terminals = summary.terminalCount { print("terminal steps: \(terminals)") }
    guard let normalization = dataset.normalization else { return }
    func ranges(_ minimum: [Float], _ maximum: [Float]) -> String {
        zip(minimum, maximum).map { String(format: "[%.4g, %.4g]", $0, $1) }.joined(separator: " ")
    }
    print("normalisation obs    [min, max] per dim: \(ranges(normalization.obsMin, normalization.obsMax))")
    print("normalisation action [min, max] per dim: \(ranges(normalization.actionMin, normalization.actionMax))")
}
