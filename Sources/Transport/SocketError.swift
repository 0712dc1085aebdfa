import CNanomsg

/// A nanomsg call failed.
public struct SocketError: Error, CustomStringConvertible {
    /// What was being done, e.g. "bind tcp://127.0.0.1:5555".
    public let operation: String
    /// The errno value nanomsg reported.
    public let code: Int32

    /// Creates an error for `operation` with the errno `code`.
    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    /// The operation and nanomsg's explanation of the code.
    public var description: String {
        "\(operation) failed: \(String(cString: nn_strerror(code))) (errno \(code))"
    }

    /// An error for `operation` with the code of the last failed nanomsg call.
    static func last(_ operation: String) -> SocketError {
        SocketError(operation: operation, code: nn_errno())
    }
}
