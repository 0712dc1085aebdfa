import Foundation

// Tensor data is little-endian on the wire and is copied to and from Swift arrays
// with memcpy, which is only correct on a little-endian host.
#if !_endian(little)
#error("Transport copies tensor data with memcpy and needs a little-endian host")
#endif

/// A named, typed, shaped block of little-endian bytes.
public struct WireTensor: Equatable, Sendable {
    /// The tensor's name, unique within its message.
    public var name: String
    /// The element type.
    public var dtype: TensorDType
    /// The dimensions; `[]` is a scalar (one element), a 0 anywhere means no elements.
    public var shape: [Int]
    /// The elements in row-major order, little-endian, `elementCount * dtype.byteWidth` bytes.
    public var bytes: [UInt8]

    /// Creates a tensor from raw little-endian bytes.
    ///
    /// - Precondition: every dimension is non-negative and
    ///   `bytes.count == product(shape) * dtype.byteWidth`.
    public init(name: String, dtype: TensorDType, shape: [Int], bytes: [UInt8]) {
        let expected = WireTensor.byteCount(shape: shape, dtype: dtype)
        precondition(
            expected == bytes.count,
            "tensor '\(name)' of shape \(shape) and dtype \(dtype) needs \(expected.map(String.init) ?? "an unrepresentable number of") bytes, got \(bytes.count)"
        )
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Creates a float32 tensor by copying `floats`.
    ///
    /// - Precondition: `floats.count == product(shape)`.
    public init(name: String, floats: UnsafeBufferPointer<Float>, shape: [Int]) {
        self.init(name: name, dtype: .float32, shape: shape, bytes: Array(UnsafeRawBufferPointer(floats)))
    }

    /// Creates a float32 tensor by copying `floats`.
    ///
    /// - Precondition: `floats.count == product(shape)`.
    public init(name: String, floats: [Float], shape: [Int]) {
        self = floats.withUnsafeBufferPointer { WireTensor(name: name, floats: $0, shape: shape) }
    }

    /// Creates an int32 tensor by copying `int32s`.
    ///
    /// - Precondition: `int32s.count == product(shape)`.
    public init(name: String, int32s: [Int32], shape: [Int]) {
        let bytes = int32s.withUnsafeBytes { Array($0) }
        self.init(name: name, dtype: .int32, shape: shape, bytes: bytes)
    }

    /// Creates an int64 tensor by copying `int64s` (unsigned values travel as their two's-complement bit pattern).
    ///
    /// - Precondition: `int64s.count == product(shape)`.
    public init(name: String, int64s: [Int64], shape: [Int]) {
        let bytes = int64s.withUnsafeBytes { Array($0) }
        self.init(name: name, dtype: .int64, shape: shape, bytes: bytes)
    }

    /// Creates a one-dimensional uint8 tensor holding the UTF-8 encoding of `text`.
    public init(name: String, utf8 text: String) {
        let bytes = Array(text.utf8)
        self.init(name: name, dtype: .uint8, shape: [bytes.count], bytes: bytes)
    }

    /// The number of elements: the product of `shape` (1 for a scalar, 0 when any dimension is 0).
    public var elementCount: Int {
        shape.contains(0) ? 0 : shape.reduce(1, *)
    }

    /// Copies the elements into `destination`, which has room for `count` floats.
    ///
    /// Throws `.wrongType` unless the tensor is float32 and `.lengthMismatch`
    /// unless it holds exactly `count` elements.
    public func copyFloats(into destination: UnsafeMutablePointer<Float>, count: Int) throws(WireError) {
        try requireType(.float32)
        let held = bytes.count / TensorDType.float32.byteWidth
        guard held == count else {
            throw .lengthMismatch("tensor '\(name)' holds \(held) floats, the destination has room for \(count)")
        }
        bytes.withUnsafeBytes { source in
            guard let base = source.baseAddress else { return }
            memcpy(destination, base, held * TensorDType.float32.byteWidth)
        }
    }

    /// The elements as floats; throws `.wrongType` unless the tensor is float32.
    public func floats() throws(WireError) -> [Float] {
        try elements(of: .float32, as: Float.self)
    }

    /// The elements as 32-bit integers; throws `.wrongType` unless the tensor is int32.
    public func int32s() throws(WireError) -> [Int32] {
        try elements(of: .int32, as: Int32.self)
    }

    /// The elements as 64-bit integers; throws `.wrongType` unless the tensor is int64.
    public func int64s() throws(WireError) -> [Int64] {
        try elements(of: .int64, as: Int64.self)
    }

    /// The bytes decoded as UTF-8 text; throws `.wrongType` unless the tensor is
    /// uint8 and its bytes are valid UTF-8.
    public func text() throws(WireError) -> String {
        try requireType(.uint8)
        guard let decoded = String(strictUTF8: bytes) else {
            throw .wrongType("tensor '\(name)' is not valid UTF-8 text")
        }
        return decoded
    }

    /// `product(shape) * dtype.byteWidth`, or nil when a dimension is negative or the
    /// product overflows. A zero dimension makes the product 0 whatever the others are.
    static func byteCount(shape: [Int], dtype: TensorDType) -> Int? {
        guard shape.allSatisfy({ $0 >= 0 }) else { return nil }
        if shape.contains(0) { return 0 }
        var total = dtype.byteWidth
        for dimension in shape {
            let (product, overflow) = total.multipliedReportingOverflow(by: dimension)
            guard !overflow else { return nil }
            total = product
        }
        return total
    }

    private func requireType(_ wanted: TensorDType) throws(WireError) {
        guard dtype == wanted else {
            throw .wrongType("tensor '\(name)' holds \(dtype), expected \(wanted)")
        }
    }

    private func elements<Element>(of wanted: TensorDType, as _: Element.Type) throws(WireError) -> [Element] {
        try requireType(wanted)
        let count = bytes.count / wanted.byteWidth
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { source in
                if let base = source.baseAddress, let target = buffer.baseAddress {
                    memcpy(target, base, count * wanted.byteWidth)
                }
            }
            initialized = count
        }
    }
}
