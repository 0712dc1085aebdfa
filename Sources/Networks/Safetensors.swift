import Foundation

/// A named Float32 tensor as stored in a safetensors file.
public struct NamedTensor: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
    public init(name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "tensor \(name): shape \(shape) does not hold \(values.count) values")
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// A named integer tensor as stored in a safetensors file: counts, lengths and flags, which a
/// Float32 tensor would round past 2^24 or make look fractional.
public struct NamedIntegerTensor: Sendable, Equatable {
    /// How the elements are stored on disk; in memory they are always `Int64`.
    public enum ElementType: String, Sendable, Equatable {
        /// safetensors `I64`: 8-byte little-endian signed integers.
        case int64 = "I64"
        /// safetensors `BOOL`: one byte per element, 0 or 1.
        case bool = "BOOL"

        var byteCount: Int { self == .int64 ? 8 : 1 }
    }

    /// The key in the file's header.
    public var name: String
    /// Dimensions, outermost first.
    public var shape: [Int]
    /// The on-disk dtype.
    public var elementType: ElementType
    /// The elements, row-major.
    public var values: [Int64]

    /// A tensor of `values` (row-major) stored as `elementType`; `.bool` tensors must hold only 0 and 1.
    public init(name: String, shape: [Int], elementType: ElementType = .int64, values: [Int64]) {
        precondition(shape.reduce(1, *) == values.count, "tensor \(name): shape \(shape) does not hold \(values.count) values")
        precondition(elementType == .int64 || values.allSatisfy { $0 == 0 || $0 == 1 }, "tensor \(name): BOOL values must be 0 or 1")
        self.name = name
        self.shape = shape
        self.elementType = elementType
        self.values = values
    }
}

/// Every tensor and the metadata of one safetensors file.
public struct SafetensorsContents: Sendable, Equatable {
    /// The `F32` tensors, by name.
    public var tensors: [String: NamedTensor]
    /// The `I64` and `BOOL` tensors, by name.
    public var integerTensors: [String: NamedIntegerTensor]
    /// The `__metadata__` strings.
    public var metadata: [String: String]
}

public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case truncated(String)
    case malformedHeader(String)
    case unsupportedType(name: String, dtype: String)
    case missingTensor(String)
    case shapeMismatch(name: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case .truncated(let detail): return "safetensors file is truncated: \(detail)"
        case .malformedHeader(let detail): return "safetensors header is malformed: \(detail)"
        case .unsupportedType(let name, let dtype): return "tensor \(name) has dtype \(dtype); convert it to F32 (I64 and BOOL are read only where a file format stores integers)"
        case .missingTensor(let name): return "checkpoint has no tensor named \(name)"
        case .shapeMismatch(let name, let expected, let found): return "tensor \(name) has shape \(found), expected \(expected) (was the checkpoint made with another network shape?)"
        }
    }
}

/// Reads and writes the safetensors format: u64 little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}, then the raw bytes.
public enum Safetensors {
    /// Encodes Float32 tensors (in the given order) and string metadata.
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String] = [:]) throws -> Data {
        try encode(tensors, integerTensors: [], metadata: metadata)
    }

    /// Encodes Float32 and integer tensors in one file. The data section holds the `I64` tensors
    /// first, then `F32`, then `BOOL`, so every tensor starts aligned to its element size.
    public static func encode(_ tensors: [NamedTensor], integerTensors: [NamedIntegerTensor], metadata: [String: String] = [:]) throws -> Data {
        let wideIntegers = integerTensors.filter { $0.elementType == .int64 }
        let flags = integerTensors.filter { $0.elementType == .bool }
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        func describe(_ name: String, dtype: String, shape: [Int], byteCount: Int) {
            header[name] = ["dtype": dtype, "shape": shape, "data_offsets": [offset, offset + byteCount]] as [String: Any]
            offset += byteCount
        }
        for tensor in wideIntegers { describe(tensor.name, dtype: "I64", shape: tensor.shape, byteCount: tensor.values.count * 8) }
        for tensor in tensors { describe(tensor.name, dtype: "F32", shape: tensor.shape, byteCount: tensor.values.count * 4) }
        for tensor in flags { describe(tensor.name, dtype: "BOOL", shape: tensor.shape, byteCount: tensor.values.count) }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        // Pad with spaces so the data section starts 8-byte aligned, as the format recommends.
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var data = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(headerBytes)
        for tensor in wideIntegers {
            tensor.values.map(\.littleEndian).withUnsafeBytes { data.append(contentsOf: $0) }
        }
        for tensor in tensors {
            tensor.values.withUnsafeBufferPointer { data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
        }
        for tensor in flags { data.append(contentsOf: tensor.values.map { UInt8($0) }) }
        return data
    }

    /// Decodes a file of `F32` tensors only (checkpoints); any other dtype is refused.
    public static func decode(_ data: Data) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        let contents = try decodeContents(data)
        if let integer = contents.integerTensors.values.min(by: { $0.name < $1.name }) {
            throw SafetensorsError.unsupportedType(name: integer.name, dtype: integer.elementType.rawValue)
        }
        return (contents.tensors, contents.metadata)
    }

    /// Decodes a file of `F32`, `I64` and `BOOL` tensors; every shape is checked against the bytes
    /// its offsets cover before anything is allocated.
    public static func decodeContents(_ data: Data) throws -> SafetensorsContents {
        guard data.count >= 8 else { throw SafetensorsError.truncated("\(data.count) bytes, need at least 8") }
        let headerLength = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8) else { throw SafetensorsError.truncated("header claims \(headerLength) bytes") }
        let headerEnd = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any] else {
            throw SafetensorsError.malformedHeader("not a JSON object")
        }
        var contents = SafetensorsContents(tensors: [:], integerTensors: [:], metadata: [:])
        let body = data.count - headerEnd
        for (name, value) in header {
            if name == "__metadata__" {
                contents.metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw SafetensorsError.malformedHeader("entry \(name)")
            }
            let integerType = NamedIntegerTensor.ElementType(rawValue: dtype)
            guard dtype == "F32" || integerType != nil else { throw SafetensorsError.unsupportedType(name: name, dtype: dtype) }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= body else {
                throw SafetensorsError.malformedHeader("entry \(name) has offsets \(offsets) outside \(body) data bytes")
            }
            let elementSize = integerType?.byteCount ?? 4
            let (count, overflow) = shape.reduce((1, false)) { partial, dimension in
                let product = partial.0.multipliedReportingOverflow(by: dimension)
                return (product.partialValue, partial.1 || product.overflow)
            }
            let (byteCount, byteOverflow) = count.multipliedReportingOverflow(by: elementSize)
            guard !overflow, !byteOverflow, byteCount == offsets[1] - offsets[0] else {
                throw SafetensorsError.malformedHeader("entry \(name): shape \(shape) does not match \(offsets[1] - offsets[0]) bytes")
            }
            try data.withUnsafeBytes { file in
                let bytes = UnsafeRawBufferPointer(rebasing: file[(headerEnd + offsets[0])..<(headerEnd + offsets[1])])
                switch integerType {
                case nil:
                    var values = [Float](repeating: 0, count: count)
                    values.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
                    contents.tensors[name] = NamedTensor(name: name, shape: shape, values: values)
                case .int64:
                    let values = (0..<count).map { Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
                    contents.integerTensors[name] = NamedIntegerTensor(name: name, shape: shape, elementType: .int64, values: values)
                case .bool:
                    guard bytes.allSatisfy({ $0 <= 1 }) else { throw SafetensorsError.malformedHeader("entry \(name): BOOL data holds a byte other than 0 or 1") }
                    contents.integerTensors[name] = NamedIntegerTensor(name: name, shape: shape, elementType: .bool, values: bytes.map { Int64($0) })
                }
            }
        }
        return contents
    }

    /// Writes Float32 tensors and metadata to `url`, atomically.
    public static func write(_ tensors: [NamedTensor], metadata: [String: String] = [:], to url: URL) throws {
        try encode(tensors, metadata: metadata).write(to: url, options: .atomic)
    }

    /// Reads a file of `F32` tensors only (see `decode(_:)`).
    public static func read(from url: URL) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        try decode(Data(contentsOf: url))
    }

    /// Writes Float32 and integer tensors in one file (see `encode(_:integerTensors:metadata:)`).
    public static func write(_ tensors: [NamedTensor], integerTensors: [NamedIntegerTensor], metadata: [String: String] = [:], to url: URL) throws {
        try encode(tensors, integerTensors: integerTensors, metadata: metadata).write(to: url, options: .atomic)
    }

    /// Reads a file of `F32`, `I64` and `BOOL` tensors (see `decodeContents(_:)`).
    public static func readContents(from url: URL) throws -> SafetensorsContents {
        try decodeContents(Data(contentsOf: url))
    }
}
