/// Reads little-endian fields from untrusted bytes, throwing instead of reading past the end.
struct ByteReader {
    private let bytes: UnsafeRawBufferPointer
    /// The offset of the next unread byte.
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// The number of bytes not yet read.
    var remaining: Int { bytes.count - offset }

    /// Reads one little-endian integer; `part` names it in the error when the bytes run out.
    mutating func read<Value: FixedWidthInteger>(_: Value.Type, _ part: @autoclosure () -> String) throws(WireError) -> Value {
        let size = MemoryLayout<Value>.size
        guard remaining >= size else { throw .truncated(part()) }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: Value.self)
        offset += size
        return Value(littleEndian: value)
    }

    /// Returns the next `count` bytes without copying them.
    mutating func read(count: Int, _ part: @autoclosure () -> String) throws(WireError) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw .truncated(part()) }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
        offset += count
        return slice
    }
}
