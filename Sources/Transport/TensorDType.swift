/// The element type of a `WireTensor`. The raw value is the dtype code on the wire.
public enum TensorDType: UInt8, Sendable {
    /// IEEE 754 binary32, little-endian.
    case float32 = 1
    /// Two's-complement 32-bit integer, little-endian.
    case int32 = 2
    /// Unsigned byte (also used for UTF-8 text).
    case uint8 = 3
    /// Two's-complement 64-bit integer, little-endian.
    case int64 = 4

    /// The size of one element in bytes.
    public var byteWidth: Int {
        switch self {
        case .uint8: return 1
        case .float32, .int32: return 4
        case .int64: return 8
        }
    }
}
