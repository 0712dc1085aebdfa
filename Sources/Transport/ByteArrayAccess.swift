extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for bodies that throw `WireError`, keeping the error type.
    ///
    /// The standard `withUnsafeBytes` rethrows as `any Error`, which a
    /// `throws(WireError)` function cannot propagate.
    func withBytes<Result>(
        _ body: (UnsafeRawBufferPointer) throws(WireError) -> Result
    ) throws(WireError) -> Result {
        try withUnsafeBytes { raw in
            Swift.Result { () throws(WireError) in try body(raw) }
        }.get()
    }
}
