import Foundation

/// `runs/<name>/<UTC time>-s<seed>/`: the resolved config, metrics.jsonl, checkpoints/, logs/, summary.json.
public struct RunDirectory: Sendable {
    public let url: URL

    public init(url: URL) throws {
        self.url = url
        try FileManager.default.createDirectory(at: url.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: url.appendingPathComponent("logs"), withIntermediateDirectories: true)
    }

    /// A fresh directory `root/name/<UTC time>-s<seed>`, created atomically (mkdir, which fails when the path exists):
    /// runs started in the same second, by one user or by several launchers, each get their own, the later ones
    /// with a suffix `-2`, `-3`, ….
    public static func create(root: String, name: String, seed: UInt64, now: Date = Date()) throws -> RunDirectory {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let parent = URL(fileURLWithPath: root).appendingPathComponent(name)
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        let stem = "\(formatter.string(from: now))-s\(seed)"
        for attempt in 1...10_000 {
            let url = parent.appendingPathComponent(attempt == 1 ? stem : "\(stem)-\(attempt)")
            if mkdir(url.path, 0o755) == 0 { return try RunDirectory(url: url) }
            guard errno == EEXIST else { throw RunDirectoryError("cannot create \(url.path): \(String(cString: strerror(errno)))") }
        }
        throw RunDirectoryError("\(parent.path) already holds 10000 runs named \(stem)…")
    }

    /// Holds the directory for this process: a second job on the same directory (two runs started with the same
    /// `--run-dir`, or a resume while the run still goes) is refused instead of interleaving their files. The lock is
    /// an flock on `.lock`, which the system drops when the process ends, however it ends.
    public func lock(job: String) throws -> RunLock { try RunDirectory.lock(url, job: job) }

    /// The same lock on any job directory (`dppo pretrain --output`).
    public static func lock(_ url: URL, job: String) throws -> RunLock {
        let path = url.appendingPathComponent(".lock").path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw RunDirectoryError("cannot open \(path): \(String(cString: strerror(errno)))") }
        // A few tries over 2 s: `dppo runs` probes the lock for a moment to tell running runs from others.
        var locked = flock(descriptor, LOCK_EX | LOCK_NB) == 0
        for _ in 0..<20 where !locked {
            usleep(100_000)
            locked = flock(descriptor, LOCK_EX | LOCK_NB) == 0
        }
        guard locked else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(descriptor)
            throw RunDirectoryError("run directory \(url.path) is in use\(holder.isEmpty ? "" : " by \(holder)"): "
                                    + "wait for that job to end, or give this one another directory")
        }
        let text = "\(job) pid \(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = text.withCString { write(descriptor, $0, strlen($0)) }
        return RunLock(descriptor: descriptor)
    }

    public var checkpoints: URL { url.appendingPathComponent("checkpoints") }
    public var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    public var summary: URL { url.appendingPathComponent("summary.json") }
    public var config: URL { url.appendingPathComponent("config.yaml") }
    /// TensorBoard event files (`tensorboard --logdir runs/`).
    public var tensorBoard: URL { url.appendingPathComponent("tb") }
}

/// A run directory that cannot be made or is taken.
public struct RunDirectoryError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The flock of `RunDirectory.lock`; released when this is released or the process ends.
public final class RunLock: @unchecked Sendable {
    // @unchecked: immutable; the descriptor is only closed by deinit.
    let descriptor: Int32
    init(descriptor: Int32) { self.descriptor = descriptor }
    deinit { close(descriptor) }
}

/// Appends one JSON object per line to metrics.jsonl, and (given a folder) every numeric field of each record to a
/// TensorBoard event file there, at the record's iteration, step or epoch.
public final class MetricsWriter {
    let handle: FileHandle
    let tensorBoard: TensorBoardWriter?

    /// `tensorBoard`: the run's `tb/` folder; `resumedAt`: the first step a resumed run writes (TensorBoardWriter).
    public init(url: URL, tensorBoard: URL? = nil, resumedAt: Int? = nil) throws {
        if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
        handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
        self.tensorBoard = try tensorBoard.map { try TensorBoardWriter(directory: $0, resumedAt: resumedAt) }
    }

    func writeTensorBoard(_ record: [String: Any]) throws {
        guard let tensorBoard, let step = TensorBoardWriter.step(of: record) else { return }
        try tensorBoard.write(record: record, step: step)
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
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(record)
        if tensorBoard != nil, let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] { try writeTensorBoard(object) }
        data.append(0x0A)
        try handle.write(contentsOf: data)
    }

    public func write(_ record: [String: Any]) {
        let cleaned = record.mapValues { value -> Any in
            if let double = value as? Double, !double.isFinite { return NSNull() }
            return value
        }
        guard var data = try? JSONSerialization.data(withJSONObject: cleaned, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        try? writeTensorBoard(cleaned.filter { !($0.value is NSNull) })
        data.append(0x0A)
        handle.write(data)
    }
}

/// Logs a line through the process's logger (`ProcessLog`): timestamp, level and process label, flushed at once so
/// logs redirected to files stay current. A line starting with "warning" is logged at warning level.
public func log(_ message: String) {
    ProcessLog.write(message)
}
