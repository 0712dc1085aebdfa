import Foundation

/// SIGTERM and SIGINT as a request to stop cleanly: a job that installed this polls `isRequested` where its state is
/// consistent (the learner between and inside its collection and update, pretraining and offline training between
/// steps), checkpoints and exits 0. A second signal more than `graceSeconds` after the first exits at once with
/// 128 + its number; one within that window is taken as the same request (Ctrl-C reaches the launcher and its children
/// together, and the launcher then forwards SIGTERM; under Slurm the step and the batch script may both be signalled).
public enum StopRequest {
    public static let graceSeconds = 2.0

    private static let lock = NSLock()
    // nonisolated(unsafe), all three: read and written only while holding `lock`.
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []
    nonisolated(unsafe) private static var received: (signal: Int32, time: Date)?
    nonisolated(unsafe) private static var announce: (String) -> Void = { _ in }

    /// Takes over SIGTERM and SIGINT for this process (idempotent). `log` says, once, that a stop was asked for.
    public static func install(log: @escaping (String) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        announce = log
        guard sources.isEmpty else { return }
        for number in [SIGTERM, SIGINT] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { deliver(number) }
            source.resume()
            sources.append(source)
        }
    }

    /// The signal that asked to stop, if one did.
    public static var requestedSignal: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return received?.signal
    }

    public static var isRequested: Bool { requestedSignal != nil }

    /// Whether this process takes signals as stop requests (`install` ran).
    public static var isInstalled: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !sources.isEmpty
    }

    /// `SIGTERM` or `SIGINT`, for logs and summary.json.
    public static func name(of number: Int32) -> String { number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal \(number)" }

    static func deliver(_ number: Int32) {
        lock.lock()
        let first = received
        if first == nil { received = (number, Date()) }
        let say = announce
        lock.unlock()
        if let first {
            guard Date().timeIntervalSince(first.time) > graceSeconds else { return }
            FileHandle.standardError.write(Data("\(name(of: number)) again: exiting at once, without a checkpoint\n".utf8))
            _exit(128 + number)
        }
        say("\(name(of: number)): stopping cleanly (checkpoint and summary.json); a second signal exits at once")
    }

    /// Test support: forgets a delivered request.
    static func reset() {
        lock.lock()
        received = nil
        lock.unlock()
    }
}

/// Thrown out of a job's loop when a stop was requested; the job catches it where it can checkpoint.
struct StopRequested: Error {}

/// A job that a signal ended before its result existed (pretraining): the CLI prints the message and exits 128 + signal,
/// so a pipeline does not go on without the result.
public struct StoppedEarly: Error, CustomStringConvertible {
    public let message: String
    public let signal: Int32
    public var description: String { message }
}
