import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if _endian(big)
#error("The Gymnasium bridge protocol is little-endian and copies float32 arrays as they are in memory.")
#endif

/// Which Gymnasium environment to bridge and which Python runs it (config keys `env.gym_id`, `env.gym_kwargs`, `env.python`).
public struct GymnasiumSettings: Sendable, Equatable, Codable {
    /// The id passed to `gymnasium.make`, e.g. `Pendulum-v1` or `my_package:MyEnv-v0`.
    public var id: String
    /// Keyword arguments for `gymnasium.make`, as a JSON object (`{}` for none).
    public var kwargsJSON: String
    /// The Python executable: a path, or a name looked up on `PATH`.
    public var python: String

    public init(id: String, kwargsJSON: String = "{}", python: String = "python3") {
        self.id = id
        self.kwargsJSON = kwargsJSON
        self.python = python
    }
}

/// E instances of a Gymnasium environment, made with `gymnasium.make(id, **kwargs)` in one Python child process and
/// stepped together: one request and one reply per `step` call. The protocol, lifecycle, seeding and truncation rules
/// are specified in docs/gymnasium-bridge.md.
///
/// Instance i is seeded with seed + i at its first reset; later resets continue Gymnasium's own random stream.
/// Only Box spaces are supported, flattened to float32. A dimension whose bounds are not finite gets normalisation
/// bounds [−1, 1], so `VectorEnvironment` passes it through unchanged.
public final class GymnasiumBatch: EnvironmentBatch {
    public let settings: GymnasiumSettings
    public let count: Int
    public let task: TaskDescription
    /// Episodes that Gymnasium truncated before `task.maxEpisodeSteps` (the environment truncated itself); the bridge
    /// reports them as terminated, because `EnvironmentBatch` has no other way to end an episode.
    public private(set) var earlyTruncations = 0
    let child: GymnasiumChild
    /// Environment steps since each instance's last reset, to tell a truncation at the limit from an early one.
    var stepsSinceReset: [Int]

    /// The episode limit of environments whose spec declares none.
    public static let defaultMaxEpisodeSteps = 1000

    /// Starts the child, makes `count` environments and reads their spaces.
    public init(settings: GymnasiumSettings, count: Int, seed: UInt64) throws {
        precondition(count >= 1, "a Gymnasium batch needs at least one instance")
        self.settings = settings
        self.count = count
        let child = try GymnasiumChild(settings: settings, count: count, seed: seed)
        do {
            task = try GymnasiumBatch.handshake(child, count: count)
        } catch {
            child.close()
            throw error
        }
        self.child = child
        stepsSinceReset = [Int](repeating: 0, count: count)
    }

    deinit { child.close() }

    /// The task a Gymnasium environment declares (sizes, bounds, episode limit), from a child with one instance.
    public static func describe(_ settings: GymnasiumSettings) throws -> TaskDescription {
        let batch = try GymnasiumBatch(settings: settings, count: 1, seed: 0)
        defer { batch.close() }
        return batch.task
    }

    /// The child's process id (tests kill it to check that a dead child fails cleanly).
    public var childPID: Int32 { child.processIdentifier }

    /// Ends the child: asks it to close its environments, waits up to two seconds, then kills it. Idempotent.
    public func close() { child.close() }

    public func reset(_ index: Int, observation: UnsafeMutablePointer<Float>) throws {
        precondition(index >= 0 && index < count, "instance \(index) is outside the batch of \(count)")
        child.sendBody.storeBytes(of: UInt32(index).littleEndian, as: UInt32.self)
        try child.send(.reset, bodyLength: 4, during: "reset of instance \(index)")
        let body = try child.receive(.reset, bodyLength: task.observationDim * 4, during: "reset of instance \(index)")
        UnsafeMutableRawPointer(observation).copyMemory(from: body, byteCount: task.observationDim * 4)
        stepsSinceReset[index] = 0
    }

    public func step(actions: UnsafePointer<Float>, active: UnsafePointer<Bool>, observations: UnsafeMutablePointer<Float>,
                     rewards: UnsafeMutablePointer<Float>, terminated: UnsafeMutablePointer<Bool>) throws {
        let observationDim = task.observationDim, rowBytes = observationDim * 4
        let actionBytes = count * task.actionDim * 4, observationBytes = count * rowBytes
        // Request body: float32 actions [E·Da], then u8 active [E] (Bool is one byte holding 0 or 1).
        child.sendBody.copyMemory(from: actions, byteCount: actionBytes)
        (child.sendBody + actionBytes).copyMemory(from: active, byteCount: count)
        try child.send(.step, bodyLength: actionBytes + count, during: "step")
        // Reply body: float32 observations [E·Do], float32 rewards [E], u8 flags [E] (bit 0 terminated, bit 1 truncated).
        let body = try child.receive(.step, bodyLength: observationBytes + count * 4 + count, during: "step")
        let rewardBase = body + observationBytes, flagBase = rewardBase + count * 4
        for index in 0..<count where active[index] {
            UnsafeMutableRawPointer(observations + index * observationDim).copyMemory(from: body + index * rowBytes, byteCount: rowBytes)
            rewards[index] = rewardBase.load(fromByteOffset: index * 4, as: Float.self)
            let flags = flagBase.load(fromByteOffset: index, as: UInt8.self)
            stepsSinceReset[index] += 1
            let truncatedEarly = flags & 2 != 0 && flags & 1 == 0 && stepsSinceReset[index] < task.maxEpisodeSteps
            if truncatedEarly { earlyTruncations += 1 }
            terminated[index] = flags & 1 != 0 || truncatedEarly
        }
    }

    /// Reads the hello message: version, sizes, episode limit and the spaces' bounds.
    static func handshake(_ child: GymnasiumChild, count: Int) throws -> TaskDescription {
        let body = try child.receive(.hello, bodyLength: nil, during: "start-up")
        let length = child.receivedBodyLength
        let header = (0..<5).map { length >= 20 ? Int(UInt32(littleEndian: body.load(fromByteOffset: $0 * 4, as: UInt32.self))) : 0 }
        let (version, declaredCount, observationDim, actionDim, limit) = (header[0], header[1], header[2], header[3], header[4])
        guard version == GymnasiumChild.protocolVersion, declaredCount == count, length == 20 + 8 * (observationDim + actionDim) else {
            throw child.fail("protocol mismatch in the hello message (version \(version), \(declaredCount) instances, \(length) bytes); " +
                             "expected version \(GymnasiumChild.protocolVersion) with \(count) instances")
        }
        func floats(at offset: Int, _ length: Int) -> [Float] {
            (0..<length).map { body.load(fromByteOffset: 20 + (offset + $0) * 4, as: Float.self) }
        }
        let observationBounds = normalizationBounds(low: floats(at: 0, observationDim), high: floats(at: observationDim, observationDim))
        let actionBounds = normalizationBounds(low: floats(at: 2 * observationDim, actionDim),
                                               high: floats(at: 2 * observationDim + actionDim, actionDim))
        child.reserve(requestBody: count * actionDim * 4 + count, replyBody: count * observationDim * 4 + count * 5)
        return TaskDescription(observationDim: observationDim, actionDim: actionDim,
                               maxEpisodeSteps: limit > 0 ? limit : defaultMaxEpisodeSteps,
                               observationLow: observationBounds.low, observationHigh: observationBounds.high,
                               actionLow: actionBounds.low, actionHigh: actionBounds.high)
    }

    /// A Box space's bounds as normalisation bounds: a dimension keeps its own when low, high and high − low are finite
    /// float32 values, and gets [−1, 1] (the identity under `VectorEnvironment`'s normalisation) otherwise.
    static func normalizationBounds(low: [Float], high: [Float]) -> (low: [Float], high: [Float]) {
        var resultLow = low, resultHigh = high
        for d in low.indices where !(high[d] - low[d]).isFinite {
            resultLow[d] = -1
            resultHigh[d] = 1
        }
        return (resultLow, resultHigh)
    }
}

/// The Python child of a `GymnasiumBatch`: its process, the Unix socket on its stdin/stdout, the tail of its stderr,
/// and the framing of docs/gymnasium-bridge.md. Every read that cannot complete because the child died fails with an
/// `EnvironmentError` naming its exit status and last stderr output; once failed, every later call fails the same way.
final class GymnasiumChild {
    enum Kind: UInt32 {
        case hello = 0x48, reset = 0x52, step = 0x53, close = 0x43, error = 0x45
    }
    static let protocolVersion = 1
    static let headerLength = 8
    /// Frames whose length is not known in advance (hello, error) longer than this are refused rather than allocated.
    static let maximumUnsizedBodyLength = 1 << 24

    let settings: GymnasiumSettings
    let process = Process()
    let socket: Int32
    let stderrTail: OutputTail
    private(set) var failure: EnvironmentError?
    private var closed = false
    private var sendBuffer: UnsafeMutableRawPointer
    private var sendCapacity: Int
    private var receiveBuffer: UnsafeMutableRawPointer
    private var receiveCapacity: Int
    /// The body length of the last frame received.
    private(set) var receivedBodyLength = 0

    /// Where a request's body goes before `send`.
    var sendBody: UnsafeMutableRawPointer { sendBuffer + GymnasiumChild.headerLength }
    var processIdentifier: Int32 { process.processIdentifier }

    init(settings: GymnasiumSettings, count: Int, seed: UInt64) throws {
        self.settings = settings
        guard let python = GymnasiumChild.resolveExecutable(settings.python) else {
            throw EnvironmentError("Gymnasium bridge: the Python executable '\(settings.python)' was not found" +
                                   (settings.python.contains("/") ? "" : " on PATH") +
                                   "; install Python 3 with gymnasium (pip install gymnasium) or set env.python to its path")
        }
        let kwargs = try? JSONSerialization.jsonObject(with: Data(settings.kwargsJSON.utf8))
        guard kwargs is [String: Any] else {
            throw EnvironmentError("Gymnasium bridge: env.gym_kwargs must be a JSON object such as {\"g\": 9.81}, got '\(settings.kwargsJSON)'")
        }
        let channel = try GymnasiumChild.makeSocketPair()
        let errorPipe = try GymnasiumChild.makePipe()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-u", "-c", GymnasiumChild.script, settings.id, settings.kwargsJSON, String(count), String(seed)]
        let childChannel = FileHandle(fileDescriptor: channel.child, closeOnDealloc: false)
        process.standardInput = childChannel
        process.standardOutput = childChannel
        process.standardError = FileHandle(fileDescriptor: errorPipe.write, closeOnDealloc: false)
        do {
            try process.run()
        } catch {
            for descriptor in [channel.parent, channel.child, errorPipe.read, errorPipe.write] { closeDescriptor(descriptor) }
            throw EnvironmentError("Gymnasium bridge: could not start '\(python)': \(error.localizedDescription)")
        }
        closeDescriptor(channel.child)
        closeDescriptor(errorPipe.write)
        socket = channel.parent
        stderrTail = OutputTail(reading: errorPipe.read)
        sendCapacity = 4096
        sendBuffer = .allocate(byteCount: sendCapacity, alignment: 16)
        receiveCapacity = 4096
        receiveBuffer = .allocate(byteCount: receiveCapacity, alignment: 16)
    }

    deinit {
        close()
        sendBuffer.deallocate()
        receiveBuffer.deallocate()
    }

    /// Grows the buffers once, after the handshake, so that steps never allocate.
    func reserve(requestBody: Int, replyBody: Int) {
        let requestLength = GymnasiumChild.headerLength + requestBody, replyLength = GymnasiumChild.headerLength + replyBody
        if requestLength > sendCapacity {
            sendBuffer.deallocate()
            sendBuffer = .allocate(byteCount: requestLength, alignment: 16)
            sendCapacity = requestLength
        }
        if replyLength > receiveCapacity { growReceiveBuffer(to: replyLength, keeping: 0) }
    }

    /// Sends the frame whose body was written at `sendBody`.
    func send(_ kind: Kind, bodyLength: Int, during phase: String) throws {
        if let failure { throw failure }
        precondition(GymnasiumChild.headerLength + bodyLength <= sendCapacity)
        sendBuffer.storeBytes(of: kind.rawValue.littleEndian, as: UInt32.self)
        sendBuffer.storeBytes(of: UInt32(bodyLength).littleEndian, toByteOffset: 4, as: UInt32.self)
        guard writeAll(GymnasiumChild.headerLength + bodyLength) else { throw childEnded(during: phase) }
    }

    /// Receives one frame of `kind` and returns its body, valid until the next receive. `bodyLength` is the exact length
    /// a reply of that kind must have (nil: any). An error frame from the child is thrown as its text.
    func receive(_ kind: Kind, bodyLength: Int?, during phase: String) throws -> UnsafeRawPointer {
        if let failure { throw failure }
        let header = GymnasiumChild.headerLength
        var filled = 0, total = header
        // Ask for the whole expected reply at once: the child sends nothing else until our next request.
        let wanted = header + (bodyLength ?? 0)
        while filled < total {
            guard let received = readSome(into: receiveBuffer + filled, maximum: max(wanted, total) - filled) else {
                throw childEnded(during: phase)
            }
            filled += received
            if total == header && filled >= header {
                let frameKind = UInt32(littleEndian: receiveBuffer.load(as: UInt32.self))
                let length = Int(UInt32(littleEndian: receiveBuffer.load(fromByteOffset: 4, as: UInt32.self)))
                let expectedKind = frameKind == kind.rawValue && (bodyLength ?? length) == length
                guard expectedKind || frameKind == Kind.error.rawValue,
                      length <= max(bodyLength ?? 0, GymnasiumChild.maximumUnsizedBodyLength) else {
                    throw fail("protocol violation during \(phase): got a frame of kind \(frameKind) with \(length) bytes, " +
                               "expected kind \(kind.rawValue)" + (bodyLength.map { " with \($0) bytes" } ?? ""))
                }
                total = header + length
                if total > receiveCapacity { growReceiveBuffer(to: total, keeping: filled) }
            }
        }
        guard filled == total else { throw fail("protocol violation during \(phase): \(filled - total) bytes after the frame") }
        receivedBodyLength = total - header
        if UInt32(littleEndian: receiveBuffer.load(as: UInt32.self)) == Kind.error.rawValue {
            let text = String(decoding: UnsafeRawBufferPointer(start: receiveBuffer + header, count: receivedBodyLength), as: UTF8.self)
            throw fail(text)
        }
        return UnsafeRawPointer(receiveBuffer + header)
    }

    /// Marks the child failed with `message`, ends it, and returns the error to throw.
    func fail(_ message: String) -> EnvironmentError {
        let error = EnvironmentError("Gymnasium bridge (\(settings.id)): \(message)")
        failure = error
        close()
        return error
    }

    /// Asks the child to close its environments and exit, waits up to two seconds, then kills it by process id.
    func close() {
        guard !closed else { return }
        closed = true
        if failure == nil && process.isRunning {
            sendBuffer.storeBytes(of: Kind.close.rawValue.littleEndian, as: UInt32.self)
            sendBuffer.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self)
            _ = writeAll(GymnasiumChild.headerLength)
        }
        if !waitForExit(seconds: 2) {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(seconds: 2)
        }
        closeDescriptor(socket)
        if failure == nil { failure = EnvironmentError("Gymnasium bridge (\(settings.id)): the batch was closed") }
    }

    /// The error for a child that closed its end of the channel or stopped running: exit status and stderr tail.
    private func childEnded(during phase: String) -> EnvironmentError {
        if !waitForExit(seconds: 2) {
            kill(process.processIdentifier, SIGKILL)
            _ = waitForExit(seconds: 2)
        }
        let status: String
        if process.isRunning {
            status = "closed its channel"
        } else if process.terminationReason == .uncaughtSignal {
            status = "was killed by signal \(process.terminationStatus)"
        } else {
            status = "exited with status \(process.terminationStatus)"
        }
        let output = stderrTail.text(waitingUpTo: 1).trimmingCharacters(in: .whitespacesAndNewlines)
        return fail("the Python child (pid \(process.processIdentifier), \(settings.python)) \(status) during \(phase)" +
                    (output.isEmpty ? "; it wrote nothing to stderr" : "; the end of its stderr:\n\(output)"))
    }

    private func waitForExit(seconds: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        return !process.isRunning
    }

    private func writeAll(_ length: Int) -> Bool {
        var sent = 0
        while sent < length {
            #if canImport(Glibc)
            let result = Glibc.send(socket, sendBuffer + sent, length - sent, Int32(MSG_NOSIGNAL))
            #else
            let result = Darwin.send(socket, sendBuffer + sent, length - sent, 0)
            #endif
            if result > 0 {
                sent += result
            } else if result < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// Reads at least one byte, or returns nil once the channel is closed or the child has stopped running
    /// (checked every second, in case a grandchild keeps the socket open).
    private func readSome(into destination: UnsafeMutableRawPointer, maximum: Int) -> Int? {
        while true {
            var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 1000)
            if ready == 0 {
                if !process.isRunning { return nil }
                continue
            }
            if ready < 0 {
                if errno == EINTR { continue }
                return nil
            }
            let result = read(socket, destination, maximum)
            if result > 0 { return result }
            if result < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            return nil
        }
    }

    private func growReceiveBuffer(to capacity: Int, keeping filled: Int) {
        let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        grown.copyMemory(from: receiveBuffer, byteCount: filled)
        receiveBuffer.deallocate()
        receiveBuffer = grown
        receiveCapacity = capacity
    }

    /// A path for `python`: itself when it contains a slash, else the first executable of that name on PATH.
    static func resolveExecutable(_ python: String) -> String? {
        let files = FileManager.default
        if python.contains("/") { return files.isExecutableFile(atPath: python) ? python : nil }
        let searchPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in searchPath.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(python)"
            if files.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// A connected pair of close-on-exec Unix stream sockets. A socket, unlike a pipe, lets `send` report a dead peer as
    /// EPIPE (MSG_NOSIGNAL) instead of raising SIGPIPE in the whole process.
    static func makeSocketPair() throws -> (parent: Int32, child: Int32) {
        var descriptors: [Int32] = [0, 0]
        #if canImport(Glibc)
        let result = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &descriptors)
        #else
        let result = socketpair(AF_UNIX, SOCK_STREAM, 0, &descriptors)
        #endif
        guard result == 0 else { throw EnvironmentError("Gymnasium bridge: socketpair failed (errno \(errno))") }
        #if !canImport(Glibc)
        var on: Int32 = 1
        for descriptor in descriptors {
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            _ = setsockopt(descriptor, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        #endif
        return (descriptors[0], descriptors[1])
    }

    /// A close-on-exec pipe, so that children started later by this process do not hold its write end open.
    static func makePipe() throws -> (read: Int32, write: Int32) {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { throw EnvironmentError("Gymnasium bridge: pipe failed (errno \(errno))") }
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return (descriptors[0], descriptors[1])
    }

    /// The child program, `Resources/gymnasium_bridge.py` embedded at build time, run with `python -u -c`;
    /// arguments: id, kwargs JSON, count, seed. See docs/gymnasium-bridge.md. It must not contain the text
    /// " -m pip ": pyenv's shim then runs Python as a child of a bash wrapper instead of exec'ing it, and the
    /// process we start (and kill) would not be the one running the environments.
    static let script = String(decoding: PackageResources.gymnasium_bridge_py, as: UTF8.self)
}

/// `close(2)`, named apart from the `close()` methods that end a child.
private func closeDescriptor(_ descriptor: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(descriptor)
    #else
    _ = Darwin.close(descriptor)
    #endif
}

/// The last bytes a child wrote to a pipe, drained on a background thread so the child never blocks on a full pipe.
final class OutputTail: @unchecked Sendable {
    // @unchecked: `bytes` and `finished` are read and written only while holding `condition`; `limit` is a constant.
    let limit: Int
    private let condition = NSCondition()
    private var bytes: [UInt8] = []
    private var finished = false

    /// Takes ownership of `descriptor` and closes it at end of file.
    init(reading descriptor: Int32, limit: Int = 8192) {
        self.limit = limit
        Thread { self.drain(descriptor) }.start()
    }

    private func drain(_ descriptor: Int32) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            condition.lock()
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
            condition.unlock()
        }
        closeDescriptor(descriptor)
        condition.lock()
        finished = true
        condition.broadcast()
        condition.unlock()
    }

    /// The collected text, after waiting up to `seconds` for the writer to close the pipe.
    func text(waitingUpTo seconds: Double) -> String {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !finished && condition.wait(until: deadline) {}
        return String(decoding: bytes, as: UTF8.self)
    }
}
