import Foundation

/// `runs/<name>/<timestamp>/`: the resolved config, metrics.jsonl, checkpoints/, logs/, summary.json.
public struct RunDirectory: Sendable {
    public let url: URL

    public init(url: URL) throws {
        self.url = url
        try FileManager.default.createDirectory(at: url.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: url.appendingPathComponent("logs"), withIntermediateDirectories: true)
    }

    /// A fresh directory under `root/name/` named by the current UTC time.
    public static func create(root: String, name: String) throws -> RunDirectory {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return try RunDirectory(url: URL(fileURLWithPath: root).appendingPathComponent(name).appendingPathComponent(formatter.string(from: Date())))
    }

    public var checkpoints: URL { url.appendingPathComponent("checkpoints") }
    public var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    public var summary: URL { url.appendingPathComponent("summary.json") }
    public var config: URL { url.appendingPathComponent("config.yaml") }
}

/// Appends one JSON object per line to metrics.jsonl.
public final class MetricsWriter {
    let handle: FileHandle

    public init(url: URL) throws {
        if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
        handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
    }

    deinit { try? handle.close() }

    /// Removes the records of iterations after `iteration` from the metrics file at `url` (a resumed run redoes
    /// them), and a last line a killed learner left half-written; returns how many lines went.
    public static func discardRecords(after iteration: Int, in url: URL) throws -> Int {
        try discardRecords(in: url) { record in (record["iteration"] as? Int).map { $0 <= iteration } ?? false }
    }

    /// Keeps the records of the metrics file at `url` that `keep` accepts (and drops a half-written last line);
    /// returns how many lines went.
    public static func discardRecords(in url: URL, keeping keep: ([String: Any]) -> Bool) throws -> Int {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return 0 }
        let lines = text.split(separator: "\n")
        let kept = lines.filter { line in
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
            return keep(record)
        }
        guard kept.count < lines.count else { return 0 }
        try Data(kept.map { $0 + "\n" }.joined().utf8).write(to: url, options: .atomic)
        return lines.count - kept.count
    }

    /// Appends one typed record (`IterationMetrics`); a value that cannot be written throws.
    public func write<Record: Encodable>(_ record: Record) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = try encoder.encode(record)
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    public func write(_ record: [String: Any]) {
        let cleaned = record.mapValues { value -> Any in
            if let double = value as? Double, !double.isFinite { return NSNull() }
            return value
        }
        guard var data = try? JSONSerialization.data(withJSONObject: cleaned, options: [.sortedKeys]) else { return }
        data.append(0x0A)
        handle.write(data)
    }
}

/// Prints a line and flushes, so logs redirected to files stay current.
public func log(_ message: String) {
    print(message)
    fflush(stdout)
}
