/// The uncompressed payload: a table describing every tensor, then all tensors' data.
///
/// ```
/// u32 tensor count
/// per tensor: u16 name length, name (UTF-8), u8 dtype, u8 flags, u8 ndim, u8 pad = 0,
///             u32 × ndim dimensions, u64 data byte length
/// the data of every tensor, in table order
/// ```
enum TensorTable {
    /// Per-tensor flag bit 0: the data is byte-shuffled (see `ByteShuffle`).
    static let shuffledFlag: UInt8 = 1 << 0

    /// Checks `tensors` against `limits` and the format, and returns the payload size in bytes.
    static func payloadSize(of tensors: [WireTensor], limits: WireLimits) throws(WireError) -> Int {
        guard tensors.count <= limits.maxTensors else {
            throw .tooLarge("\(tensors.count) tensors, the limit is \(limits.maxTensors)")
        }
        let maxNameBytes = min(limits.maxNameBytes, Int(UInt16.max))
        let maxDimensions = min(limits.maxDimensions, Int(UInt8.max))
        var names = Set<[UInt8]>()
        var total = MemoryLayout<UInt32>.size
        for tensor in tensors {
            let nameBytes = tensor.name.utf8.count
            guard nameBytes <= maxNameBytes else {
                throw .tooLarge("tensor name '\(tensor.name)' is \(nameBytes) bytes, the limit is \(maxNameBytes)")
            }
            guard names.insert(Array(tensor.name.utf8)).inserted else {
                throw .malformedTable("two tensors are named '\(tensor.name)'")
            }
            guard tensor.shape.count <= maxDimensions else {
                throw .tooLarge("tensor '\(tensor.name)' has \(tensor.shape.count) dimensions, the limit is \(maxDimensions)")
            }
            guard tensor.shape.allSatisfy({ (0 ... Int(UInt32.max)).contains($0) }) else {
                throw .malformedTable("tensor '\(tensor.name)' has shape \(tensor.shape); dimensions must be in 0...\(UInt32.max)")
            }
            let needed = WireTensor.byteCount(shape: tensor.shape, dtype: tensor.dtype)
            guard needed == tensor.bytes.count else {
                throw .lengthMismatch(
                    "tensor '\(tensor.name)' of shape \(tensor.shape) and dtype \(tensor.dtype) holds \(tensor.bytes.count) bytes, it needs \(needed.map(String.init) ?? "more than Int.max")")
            }
            total += entrySize(nameBytes: nameBytes, dimensions: tensor.shape.count) + tensor.bytes.count
            guard total <= limits.maxMessageBytes else {
                throw .tooLarge("the payload exceeds the limit of \(limits.maxMessageBytes) bytes")
            }
        }
        return total
    }

    /// Appends the table and data of `tensors`, already checked by `payloadSize`.
    ///
    /// With `shuffleFloats`, float32 data is byte-shuffled and flagged as such.
    static func write(_ tensors: [WireTensor], shuffleFloats: Bool, to writer: inout ByteWriter) {
        let shuffles = tensors.map { shuffleFloats && $0.dtype == .float32 }
        writer.write(UInt32(tensors.count))
        for (tensor, shuffled) in zip(tensors, shuffles) {
            writer.write(UInt16(tensor.name.utf8.count))
            writer.write(contentsOf: tensor.name.utf8)
            writer.write(tensor.dtype.rawValue)
            writer.write(shuffled ? shuffledFlag : 0)
            writer.write(UInt8(tensor.shape.count))
            writer.write(UInt8(0))
            for dimension in tensor.shape {
                writer.write(UInt32(dimension))
            }
            writer.write(UInt64(tensor.bytes.count))
        }
        for (tensor, shuffled) in zip(tensors, shuffles) {
            if shuffled {
                writer.write(count: tensor.bytes.count) { destination in
                    tensor.bytes.withUnsafeBytes { source in
                        ByteShuffle.shuffle(source, width: tensor.dtype.byteWidth, into: destination)
                    }
                }
            } else {
                writer.write(contentsOf: tensor.bytes)
            }
        }
    }

    /// The table bytes for one tensor.
    private static func entrySize(nameBytes: Int, dimensions: Int) -> Int {
        2 + nameBytes + 4 + 4 * dimensions + 8
    }
}
