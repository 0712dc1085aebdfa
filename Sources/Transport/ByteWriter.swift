/// Appends little-endian fields to a byte array.
struct ByteWriter {
    /// The bytes written so far.
    var bytes: [UInt8]

    /// Starts with `bytes` (for example space reserved for a header) and room for `capacity` bytes in all.
    init(startingWith bytes: [UInt8], capacity: Int) {
        self.bytes = bytes
        self.bytes.reserveCapacity(capacity)
    }

    /// Appends one integer, little-endian.
    mutating func write<Value: FixedWidthInteger>(_ value: Value) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends raw bytes unchanged.
    mutating func write<Bytes: Sequence>(contentsOf raw: Bytes) where Bytes.Element == UInt8 {
        bytes.append(contentsOf: raw)
    }

    /// Appends `count` bytes written by `fill`, which must initialise all of them.
    mutating func write(count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let filled = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
        bytes.append(contentsOf: filled)
    }
}
