/// Bounds a `WireCodec` enforces on both encode and decode, so a hostile or broken
/// peer cannot make the receiver allocate or loop without bound.
public struct WireLimits: Sendable {
    /// The largest payload (tensor table plus data, before compression) in bytes.
    public var maxMessageBytes: Int
    /// The most tensors in one message.
    public var maxTensors: Int
    /// The most dimensions of one tensor (the wire field is one byte, so at most 255).
    public var maxDimensions: Int
    /// The longest tensor name in UTF-8 bytes (the wire field is two bytes, so at most 65,535).
    public var maxNameBytes: Int

    /// The largest message on the wire that can carry a payload of `maxMessageBytes`: the 96-byte header plus the
    /// payload, or its LZ4 frame when compression grows it (LZ4's bound n + n/255 + 16, and the frame's 19-byte
    /// header and 4-byte end mark). Sockets accept up to this, so no valid message is dropped by nanomsg.
    public var maxWireBytes: Int { WireHeader.size + maxMessageBytes + maxMessageBytes / 255 + 64 }

    /// Creates limits; the defaults suit policy weights of a few million parameters.
    public init(
        maxMessageBytes: Int = 64 << 20,
        maxTensors: Int = 64,
        maxDimensions: Int = 6,
        maxNameBytes: Int = 128
    ) {
        self.maxMessageBytes = maxMessageBytes
        self.maxTensors = maxTensors
        self.maxDimensions = maxDimensions
        self.maxNameBytes = maxNameBytes
    }
}
