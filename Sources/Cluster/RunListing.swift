import Foundation

/// One run directory as `dppo runs` lists it: what it is, how far it got and how it ended, from its files alone.
public struct RunEntry: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        /// A job holds the directory's lock now.
        case running
        /// summary.json says it finished.
        case finished
        /// A signal stopped it cleanly (SIGTERM, Ctrl-C, Slurm preemption): `--resume` continues it.
        case preempted
        /// No job holds it and it has no summary: the job died (or was killed) before the end.
        case failed
    }

    public var path: String
    public var name: String
    public var job: String
    public var state: State
    /// Iterations (learner), steps (offline) or epochs (pretrain) done, and the config's total.
    public var done: Int
    public var total: Int?
    public var environmentSteps: Int?
    public var finalEvaluation: Double?
    public var bestEvaluation: Double?
    public var wallSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case path, name, job, state, done, total, environmentSteps = "env_steps", finalEvaluation = "final_eval_return"
        case bestEvaluation = "best_eval_return", wallSeconds = "wall_seconds"
    }
}

public enum RunListing {
    /// Every run directory at or under `root` (a directory with config.yaml and metrics.jsonl), sorted by path.
    public static func scan(_ root: URL) -> [RunEntry] {
        var found: [URL] = []
        func visit(_ directory: URL, depth: Int) {
            guard depth <= 6 else { return }
            let fileManager = FileManager.default
            if fileManager.fileExists(atPath: directory.appendingPathComponent("config.yaml").path),
               fileManager.fileExists(atPath: directory.appendingPathComponent("metrics.jsonl").path) {
                found.append(directory)
            }
            let children = (try? fileManager.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
            for child in children.sorted(by: { $0.path < $1.path }) where (try? child.resourceValues(forKeys: [.isDirectoryKey]))?.isDirectory == true {
                if ["checkpoints", "logs", "tb"].contains(child.lastPathComponent) { continue }
                visit(child, depth: depth + 1)
            }
        }
        visit(root.standardizedFileURL, depth: 0)
        return found.map { entry(for: $0, root: root.standardizedFileURL) }
    }

    /// The runs under each of `roots`, each once.
    public static func scan(roots: [URL]) -> [RunEntry] {
        var seen = Set<String>()
        return roots.flatMap { scan($0) }.filter { seen.insert($0.path).inserted }
    }

    /// What a run directory's files say about it. Nothing here throws: a half-written line or a missing file only
    /// leaves a field empty.
    public static func entry(for directory: URL, root: URL) -> RunEntry {
        let records = metricsRecords(directory.appendingPathComponent("metrics.jsonl"))
        let summary = readObject(directory.appendingPathComponent("summary.json"))
        let manifest = try? RunManifest.read(from: directory)
        let config = try? RunConfig.load(path: directory.appendingPathComponent("config.yaml").path)
        let job = manifest?.job ?? (records.contains { $0["epoch"] != nil } ? "pretrain" : records.contains { $0["step"] != nil } ? "offline" : "learner")
        let progressKey = job == "pretrain" ? "epoch" : job == "offline" ? "step" : "iteration"
        let state: RunEntry.State
        if isLocked(directory) {
            state = .running
        } else if let summary {
            state = summary["state"] as? String == "stopped" ? .preempted : .finished
        } else {
            state = .failed
        }
        let evaluations = records.compactMap { number($0["eval/return"]) }
        let total: Int? = config.map { job == "pretrain" ? $0.pretrain.settings.epochs : job == "offline" ? $0.offline.steps : $0.train.iterations }
        var relative = directory.path.hasPrefix(root.path) ? String(directory.path.dropFirst(root.path.count)) : directory.path
        if relative.hasPrefix("/") { relative.removeFirst() }
        return RunEntry(path: directory.path, name: relative.isEmpty ? directory.lastPathComponent : relative, job: job, state: state,
                        done: records.compactMap { $0[progressKey] as? Int }.max() ?? 0, total: total,
                        environmentSteps: records.compactMap { $0["env_steps"] as? Int }.max(),
                        finalEvaluation: number(summary?["final_eval_return"]) ?? evaluations.last,
                        bestEvaluation: evaluations.max(),
                        wallSeconds: number(summary?["wall_seconds"]) ?? records.compactMap { number($0["wall_seconds"]) }.last)
    }

    /// The lines of a metrics file that parse (a killed job may leave its last line half-written).
    public static func metricsRecords(_ url: URL) -> [[String: Any]] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static func readObject(_ url: URL) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// A finite number, whatever JSON made of it (null and text give nil).
    static func number(_ value: Any?) -> Double? {
        switch value {
        case let flag as Bool where type(of: value!) == Bool.self: _ = flag; return nil
        case let integer as Int: return Double(integer)
        case let double as Double: return double.isFinite ? double : nil
        default: return nil
        }
    }

    /// Whether a job holds the directory's `.lock` (RunDirectory.lock) right now.
    static func isLocked(_ directory: URL) -> Bool {
        let path = directory.appendingPathComponent(".lock").path
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        if flock(descriptor, LOCK_EX | LOCK_NB) == 0 {
            flock(descriptor, LOCK_UN)
            return false
        }
        return true
    }

    /// The table `dppo runs` prints.
    public static func table(_ entries: [RunEntry]) -> String {
        func format(_ value: Double?, _ pattern: String = "%.1f") -> String { value.map { String(format: pattern, $0) } ?? "—" }
        let header = ["run", "job", "state", "progress", "env steps", "final eval", "best eval", "wall"]
        let rows = entries.map { entry -> [String] in
            [entry.name, entry.job, entry.state.rawValue, "\(entry.done)/\(entry.total.map(String.init) ?? "?")",
             entry.environmentSteps.map(String.init) ?? "—", format(entry.finalEvaluation), format(entry.bestEvaluation),
             entry.wallSeconds.map { IterationMetrics.duration($0) } ?? "—"]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max()! }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == 0 || index == 1 || index == 2 ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[index] - cell.count) + cell
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
