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
        case .unsupportedType(let name, let dtype): return "tensor \(name) has dtype \(dtype); only F32 is supported"
        case .missingTensor(let name): return "checkpoint has no tensor named \(name)"
        case .shapeMismatch(let name, let expected, let found): return "tensor \(name) has shape \(found), expected \(expected) (was the checkpoint made with another network shape?)"
        }
    }
}

/// Reads and writes the safetensors format: u64 little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}, then the raw bytes.
public enum Safetensors {
    public static func encode(_ tensors: [NamedTensor], metadata: [String: String] = [:]) throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for tensor in tensors {
            let length = tensor.values.count * 4
            header[tensor.name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, offset + length]] as [String: Any]
            offset += length
        }
        var headerBytes = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned, as the format recommends.
        while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(0x20) }
        var data = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(headerBytes)
        for tensor in tensors {
            tensor.values.withUnsafeBufferPointer { data.append(UnsafeBufferPointer(start: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: UInt8.self), count: $0.count * 4)) }
        }
        return data
    }

    public static func decode(_ data: Data) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        guard data.count >= 8 else { throw SafetensorsError.truncated("\(data.count) bytes, need at least 8") }
        let headerLength = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8) else { throw SafetensorsError.truncated("header claims \(headerLength) bytes") }
        let headerEnd = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any] else {
            throw SafetensorsError.malformedHeader("not a JSON object")
        }
        var metadata: [String: String] = [:]
        var tensors: [String: NamedTensor] = [:]
        let body = data.count - headerEnd
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = value as? [String: String] ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw SafetensorsError.malformedHeader("entry \(name)")
            }
            guard dtype == "F32" else { throw SafetensorsError.unsupportedType(name: name, dtype: dtype) }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= body else {
                throw SafetensorsError.malformedHeader("entry \(name) has offsets \(offsets) outside \(body) data bytes")
            }
            let (count, overflow) = shape.reduce((1, false)) { partial, dimension in
                let product = partial.0.multipliedReportingOverflow(by: dimension)
                return (product.partialValue, partial.1 || product.overflow)
            }
            guard !overflow, count * 4 == offsets[1] - offsets[0] else {
                throw SafetensorsError.malformedHeader("entry \(name): shape \(shape) does not match \(offsets[1] - offsets[0]) bytes")
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { destination in
                data.withUnsafeBytes { source in
                    destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[(headerEnd + offsets[0])..<(headerEnd + offsets[1])]))
                }
            }
            tensors[name] = NamedTensor(name: name, shape: shape, values: values)
        }
        return (tensors, metadata)
    }

    public static func write(_ tensors: [NamedTensor], metadata: [String: String] = [:], to url: URL) throws {
        try encode(tensors, metadata: metadata).write(to: url, options: .atomic)
    }

    public static func read(from url: URL) throws -> (tensors: [String: NamedTensor], metadata: [String: String]) {
        try decode(Data(contentsOf: url))
    }
}
