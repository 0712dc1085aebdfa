import Foundation
import Yams

/// The config of a resumed run: its own `config.yaml`, or the one given, with `--set` on top; checked against the
/// saved one key by key. Bookkeeping keys (`ConfigOption.changeableOnResume`: iterations, cadences, ports,
/// timeouts, threads) may change; a change to any other key changes the computation and is refused unless
/// `allowChanges`. Every accepted change is logged and appended to `config-history.yaml` (`Resumed.record`) when
/// the job rewrites `config.yaml` with the config it now runs under, so the run's history survives it; a resume
/// refused later (the run is locked by another process, or already finished) records nothing.
public enum ConfigResume {
    public struct Change: Sendable, Equatable {
        public let key: String
        public let saved: String
        public let requested: String
        public let bookkeeping: Bool
    }

    /// The resolved config of a resume and the changes it makes to the run's saved one.
    public struct Resumed: Sendable {
        public let config: RunConfig
        public let changes: [Change]
    }

    /// Logs the accepted `changes` and appends them to the run's `config-history.yaml`. A job calls this once it
    /// holds the run's lock and has checked that the run can continue, just before it rewrites `config.yaml`.
    public static func record(_ changes: [Change], in run: RunDirectory, log: (String) -> Void = Cluster.log) throws {
        guard !changes.isEmpty else { return }
        for change in changes {
            log("resume: \(change.key) \(change.saved) → \(change.requested)\(change.bookkeeping ? "" : " (changes the computation; --allow-changes)")")
        }
        try appendHistory(changes, to: run.url.appendingPathComponent("config-history.yaml"))
    }

    public static func load(run: RunDirectory, config path: String?, overrides: [String], allowChanges: Bool) throws -> Resumed {
        guard FileManager.default.fileExists(atPath: run.config.path) else {
            throw ConfigError("\(run.url.path) has no config.yaml: it is not a run directory, or its run never started")
        }
        let saved = try RunConfig.load(path: run.config.path)
        let requested = try RunConfig.load(path: path ?? run.config.path, overrides: overrides)
        let changes = differences(saved: saved, requested: requested)
        let refused = changes.filter { !$0.bookkeeping }
        if !refused.isEmpty && !allowChanges {
            let listed = refused.prefix(6).map { "\($0.key) \($0.saved) → \($0.requested)" }.joined(separator: ", ")
            throw ConfigError("--resume would change what the run computes: \(listed)\(refused.count > 6 ? ", …" : ""); "
                              + "resume with the run's own config (drop --config and those --set), or pass --allow-changes to accept")
        }
        return Resumed(config: requested, changes: changes)
    }

    /// The keys whose resolved values differ, in declaration order.
    public static func differences(saved: RunConfig, requested: RunConfig) -> [Change] {
        RunConfig.options.compactMap { option in
            if case .retired = option.kind { return nil }
            let before = option.read(saved), after = option.read(requested)
            guard before != after else { return nil }
            return Change(key: option.key, saved: before.text, requested: after.text, bookkeeping: option.changeableOnResume)
        }
    }

    static func appendHistory(_ changes: [Change], to url: URL) throws {
        let formatter = ISO8601DateFormatter()
        var entry: [String: Any] = ["resumed_at": formatter.string(from: Date())]
        var table: [String: Any] = [:]
        for change in changes { table[change.key] = ["from": change.saved, "to": change.requested] }
        entry["changes"] = table
        let text = try Yams.dump(object: [entry], sortKeys: true)
        if !FileManager.default.fileExists(atPath: url.path) {
            try Data("# Config changes accepted by --resume, oldest first (dppo, ConfigResume).\n".utf8).write(to: url)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data(text.utf8))
    }
}
