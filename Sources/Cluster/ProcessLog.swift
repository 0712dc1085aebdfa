import Foundation
import Logging

/// The process's log: swift-log with one handler that writes `2026-12-02T01:16:17.123Z info learner: message`
/// lines to stdout, flushed per line. `bootstrap(label:)` names the process (the CLI does it once per command); a
/// process that never bootstraps (the tests' in-process jobs) prints the bare message.
public enum ProcessLog {
    /// nonisolated(unsafe): read and written only while holding `lock`.
    nonisolated(unsafe) private static var logger: Logger?
    private static let lock = NSLock()

    public static func bootstrap(label: String) {
        lock.lock()
        defer { lock.unlock() }
        guard logger == nil else { return }
        LoggingSystem.bootstrap { label in LineLogHandler(label: label) }
        logger = Logger(label: label)
    }

    static func write(_ message: String) {
        lock.lock()
        let current = logger
        lock.unlock()
        guard let current else {
            print(message)
            fflush(nil) // every output stream, stdout included (Swift 6 forbids naming the C global)
            return
        }
        // Messages name their job ("learner: …") for logs without labels; the label says it already.
        let prefix = current.label + ": "
        let text = message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message
        let level: Logger.Level = text.lowercased().hasPrefix("warning") ? .warning : .info
        current.log(level: level, "\(text)")
    }
}

/// One line per entry on stdout: UTC timestamp with milliseconds, level, label, metadata (`key=value`), message.
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Safe unguarded by the compiler: used only while holding `lock`.
    nonisolated(unsafe) static let formatter: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
    static let lock = NSLock()

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let tags = all.isEmpty ? "" : " " + all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        LineLogHandler.lock.lock()
        defer { LineLogHandler.lock.unlock() }
        let time = LineLogHandler.formatter.string(from: Date())
        FileHandle.standardOutput.write(Data("\(time) \(event.level) \(label)\(tags): \(event.message)\n".utf8))
    }
}
