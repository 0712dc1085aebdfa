extension TensorTable {
    /// Parses an uncompressed payload received from a peer, checking every field
    /// against `limits` and the bytes actually present.
    static func read(_ payload: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) -> [WireTensor] {
        var reader = ByteReader(payload)
        let count = try reader.read(UInt32.self, "the tensor count")
        guard count <= limits.maxTensors else {
            throw .tooLarge("the table lists \(count) tensors, the limit is \(limits.maxTensors)")
        }
        var entries: [Entry] = []
        var names = Set<[UInt8]>()
        var dataBytes = 0
        for index in 0 ..< Int(count) {
            let entry = try readEntry(index: index, from: &reader, limits: limits)
            guard names.insert(Array(entry.name.utf8)).inserted else {
                throw .malformedTable("two tensors are named '\(entry.name)'")
            }
            let (sum, overflow) = dataBytes.addingReportingOverflow(entry.byteCount)
            guard !overflow, sum <= reader.remaining else {
                throw .truncated("the data of tensor '\(entry.name)' (the table declares more data than the payload holds)")
            }
            dataBytes = sum
            entries.append(entry)
        }
        guard dataBytes == reader.remaining else {
            throw .lengthMismatch("\(reader.remaining - dataBytes) bytes follow the tensor data in the payload")
        }
        var tensors: [WireTensor] = []
        tensors.reserveCapacity(entries.count)
        for entry in entries {
            let data = try reader.read(count: entry.byteCount, "the data of tensor '\(entry.name)'")
            tensors.append(WireTensor(name: entry.name, dtype: entry.dtype, shape: entry.shape, bytes: entry.restore(data)))
        }
        return tensors
    }

    /// One parsed row of the table.
    private struct Entry {
        var name: String
        var dtype: TensorDType
        var shuffled: Bool
        var shape: [Int]
        var byteCount: Int

        /// The data in element order.
        func restore(_ data: UnsafeRawBufferPointer) -> [UInt8] {
            guard shuffled else { return Array(data) }
            return [UInt8](unsafeUninitializedCapacity: data.count) { buffer, initialized in
                ByteShuffle.unshuffle(data, width: dtype.byteWidth, into: UnsafeMutableRawBufferPointer(buffer))
                initialized = data.count
            }
        }
    }

    private static func readEntry(index: Int, from reader: inout ByteReader, limits: WireLimits) throws(WireError) -> Entry {
        let nameLength = Int(try reader.read(UInt16.self, "the name length of tensor \(index)"))
        guard nameLength <= limits.maxNameBytes else {
            throw .tooLarge("the name of tensor \(index) is \(nameLength) bytes, the limit is \(limits.maxNameBytes)")
        }
        let nameBytes = try reader.read(count: nameLength, "the name of tensor \(index)")
        guard let name = String(strictUTF8: nameBytes) else {
            throw .malformedTable("the name of tensor \(index) is not valid UTF-8")
        }
        let dtypeCode = try reader.read(UInt8.self, "the dtype of tensor '\(name)'")
        guard let dtype = TensorDType(rawValue: dtypeCode) else {
            throw .malformedTable("tensor '\(name)' has unknown dtype code \(dtypeCode)")
        }
        let flags = try reader.read(UInt8.self, "the flags of tensor '\(name)'")
        guard flags & ~shuffledFlag == 0 else {
            throw .malformedTable("tensor '\(name)' has unknown flag bits 0x\(String(flags & ~shuffledFlag, radix: 16))")
        }
        let dimensions = Int(try reader.read(UInt8.self, "the dimension count of tensor '\(name)'"))
        guard dimensions <= limits.maxDimensions else {
            throw .tooLarge("tensor '\(name)' has \(dimensions) dimensions, the limit is \(limits.maxDimensions)")
        }
        let pad = try reader.read(UInt8.self, "the pad byte of tensor '\(name)'")
        guard pad == 0 else {
            throw .malformedTable("the pad byte of tensor '\(name)' is \(pad), it must be 0")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dimensions)
        for _ in 0 ..< dimensions {
            shape.append(Int(try reader.read(UInt32.self, "the dimensions of tensor '\(name)'")))
        }
        guard let byteCount = WireTensor.byteCount(shape: shape, dtype: dtype) else {
            throw .malformedTable("the size of tensor '\(name)' with shape \(shape) and dtype \(dtype) overflows")
        }
        let declared = try reader.read(UInt64.self, "the data length of tensor '\(name)'")
        guard declared == UInt64(byteCount) else {
            throw .lengthMismatch("tensor '\(name)' declares \(declared) data bytes, its shape \(shape) and dtype \(dtype) need \(byteCount)")
        }
        return Entry(name: name, dtype: dtype, shuffled: flags & shuffledFlag != 0, shape: shape, byteCount: byteCount)
    }
}
