import CNanomsg
import Foundation

/// The nanomsg scalability protocol of a `Socket`.
public enum SocketKind: Sendable {
    /// Sends to one of the connected pull sockets, round-robin.
    case push
    /// Receives from any connected push socket.
    case pull
    /// Sends to every connected subscriber; never blocks, drops for slow subscribers.
    case publish
    /// Receives everything a connected publisher sends (subscribed to all topics).
    case subscribe
    /// Sends a request, then receives its reply.
    case request
    /// Receives a request, then sends its reply.
    case reply

    fileprivate var protocolNumber: Int32 {
        switch self {
        case .push: return dppo_nn_push()
        case .pull: return dppo_nn_pull()
        case .publish: return dppo_nn_pub()
        case .subscribe: return dppo_nn_sub()
        case .request: return dppo_nn_req()
        case .reply: return dppo_nn_rep()
        }
    }
}

/// A nanomsg socket: whole messages over TCP (or any nanomsg transport) with timeouts.
///
/// nanomsg sockets may be used from several threads at once. `close()` is
/// idempotent; operations after it throw `EBADF` rather than touch a socket
/// number nanomsg may since have reused.
public final class Socket: @unchecked Sendable {
    // @unchecked: nanomsg sockets may be used from several threads; `isClosed` is read and written only under
    // `state`, so close stays idempotent.
    /// How long a request socket waits for a reply before resending the request:
    /// 10 minutes, so a slow reply (a large weights message) is never asked for twice.
    private static let requestResendMilliseconds: Int32 = 600_000

    private let kind: SocketKind
    private let descriptor: Int32
    private let state = NSLock()
    private var isClosed = false

    /// Opens a socket and sets its timeouts and receive size limit.
    ///
    /// nanomsg's own receive limit is 1 MiB and it silently drops larger messages,
    /// so the limit is always set explicitly (-1 removes it). Timeouts of -1 wait
    /// forever. Subscribe sockets subscribe to every topic; request sockets resend
    /// only after 10 minutes.
    public init(
        _ kind: SocketKind,
        sendTimeoutMilliseconds: Int32 = 1000,
        receiveTimeoutMilliseconds: Int32 = 1000,
        receiveMaxBytes: Int = WireLimits().maxWireBytes
    ) throws(SocketError) {
        let descriptor = nn_socket(AF_SP, kind.protocolNumber)
        guard descriptor >= 0 else { throw .last("open \(kind) socket") }
        self.kind = kind
        self.descriptor = descriptor
        guard let maxBytes = Int32(exactly: receiveMaxBytes) else {
            close()
            throw SocketError(operation: "set receive limit of \(receiveMaxBytes) bytes (at most \(Int32.max))", code: EINVAL)
        }
        do throws(SocketError) {
            try setOption(NN_SOL_SOCKET, NN_SNDTIMEO, sendTimeoutMilliseconds, "send timeout")
            try setOption(NN_SOL_SOCKET, NN_RCVTIMEO, receiveTimeoutMilliseconds, "receive timeout")
            try setOption(NN_SOL_SOCKET, NN_RCVMAXSIZE, maxBytes, "receive limit")
            if kind == .subscribe {
                try subscribeToEverything()
            }
            if kind == .request {
                try setOption(kind.protocolNumber, dppo_nn_req_resend_ivl(), Socket.requestResendMilliseconds, "request resend interval")
            }
        } catch {
            close()
            throw error
        }
    }

    deinit {
        close()
    }

    /// Listens on `url`, e.g. "tcp://127.0.0.1:5555" or "tcp://*:5555".
    public func bind(_ url: String) throws(SocketError) {
        let endpoint = nn_bind(try liveDescriptor("bind \(url)"), url)
        guard endpoint >= 0 else { throw .last("bind \(url)") }
    }

    /// Connects to `url`; nanomsg connects in the background and reconnects after failures.
    public func connect(_ url: String) throws(SocketError) {
        let endpoint = nn_connect(try liveDescriptor("connect \(url)"), url)
        guard endpoint >= 0 else { throw .last("connect \(url)") }
    }

    /// Sends one message. Returns false when the send timeout expired (no peer
    /// ready to take it); throws on any other failure.
    public func send(_ bytes: [UInt8]) throws(SocketError) -> Bool {
        let socket = try liveDescriptor("send")
        while true {
            let sent = bytes.withUnsafeBytes { nn_send(socket, $0.baseAddress, $0.count, 0) }
            if sent >= 0 { return true }
            let code = nn_errno()
            if Socket.isTimeout(code) { return false }
            // A signal (SIGTERM, SIGINT: `StopRequest`) interrupted the wait: send again.
            if code == EINTR { continue }
            throw SocketError(operation: "send \(bytes.count) bytes", code: code)
        }
    }

    /// Receives one message, or nil when the receive timeout expired or a signal interrupted the wait.
    ///
    /// nanomsg allocates the message (zero-copy receive); it is copied into the
    /// array and freed. Messages over `receiveMaxBytes` are dropped by nanomsg
    /// and never arrive.
    public func receive() throws(SocketError) -> [UInt8]? {
        let socket = try liveDescriptor("receive")
        var message: UnsafeMutableRawPointer?
        let size = nn_recv(socket, &message, dppo_nn_msg(), 0)
        guard size >= 0 else {
            let code = nn_errno()
            // A timeout, or a signal that interrupted the wait (the caller's loop looks at its stop flag and waits again).
            if Socket.isTimeout(code) || code == EINTR { return nil }
            throw SocketError(operation: "receive", code: code)
        }
        defer { nn_freemsg(message) }
        return Array(UnsafeRawBufferPointer(start: message, count: Int(size)))
    }

    /// Changes how long `receive()` waits; -1 waits forever.
    public func setReceiveTimeout(milliseconds: Int32) throws(SocketError) {
        _ = try liveDescriptor("set receive timeout")
        try setOption(NN_SOL_SOCKET, NN_RCVTIMEO, milliseconds, "receive timeout")
    }

    /// Closes the socket. Later calls do nothing; later operations throw `EBADF`.
    public func close() {
        let shouldClose = state.withLock { () -> Bool in
            defer { isClosed = true }
            return !isClosed
        }
        guard shouldClose else { return }
        while nn_close(descriptor) != 0 && nn_errno() == EINTR {}
    }

    /// The descriptor, or `EBADF` for `operation` when the socket is closed.
    private func liveDescriptor(_ operation: String) throws(SocketError) -> Int32 {
        let closed = state.withLock { isClosed }
        guard !closed else { throw SocketError(operation: operation, code: EBADF) }
        return descriptor
    }

    private func setOption(_ level: Int32, _ option: Int32, _ value: Int32, _ name: String) throws(SocketError) {
        var value = value
        guard nn_setsockopt(descriptor, level, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw .last("set \(name) of \(kind) socket to \(value)")
        }
    }

    private func subscribeToEverything() throws(SocketError) {
        guard nn_setsockopt(descriptor, dppo_nn_sub(), dppo_nn_sub_subscribe(), "", 0) == 0 else {
            throw .last("subscribe to all topics")
        }
    }

    private static func isTimeout(_ code: Int32) -> Bool {
        code == EAGAIN || code == ETIMEDOUT
    }
}
