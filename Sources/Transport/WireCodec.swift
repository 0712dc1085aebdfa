/// Encodes and decodes `WireMessage`s in wire format version 1 (docs/wire-format.md).
///
/// A message is a fixed 96-byte header followed by the payload: a tensor table and
/// the tensors' data, compressed as one LZ4 frame when it is larger than 64 bytes.
/// Decoding checks every field against the bytes present and `limits` before it
/// allocates, so it is safe on bytes straight from the network.
///
/// With a cluster key, the codec signs every message it encodes (HMAC-SHA256 in the
/// header's tag field, flag bit 1) and decodes only messages signed with that key,
/// checking the tag before it decompresses or parses anything. Without a key it
/// neither signs nor accepts signed messages.
public struct WireCodec: Sendable {
    /// Payloads of at most this many bytes are sent uncompressed.
    static let compressionThreshold = 64

    /// The bounds enforced on both encode and decode.
    public var limits: WireLimits
    /// The LZ4 frame compression level: 0 is the fast default, 3...12 select LZ4-HC,
    /// negative values trade ratio for speed.
    public var compressionLevel: Int32
    /// Signs and checks messages; nil when the run has no cluster key.
    private let authenticator: MessageAuthenticator?

    /// Creates a codec with the given bounds and LZ4 compression level, authenticating
    /// every message with `key` when one is given (the cluster key's bytes; use at least 16).
    public init(limits: WireLimits = .init(), compressionLevel: Int32 = 0, key: [UInt8]? = nil) {
        self.limits = limits
        self.compressionLevel = compressionLevel
        authenticator = key.map(MessageAuthenticator.init(key:))
    }

    /// Whether this codec signs its messages and requires its peers' to be signed.
    public var isAuthenticating: Bool { authenticator != nil }

    /// Encodes `message`. Payloads over 64 bytes have their float32 tensors
    /// byte-shuffled and are compressed, unless compression would not make them smaller.
    ///
    /// Throws when the message breaks `limits`, a tensor's bytes do not match its
    /// shape and dtype, two tensors share a name, or LZ4 fails.
    public func encode(_ message: WireMessage) throws(WireError) -> [UInt8] {
        let rawLength = try TensorTable.payloadSize(of: message.tensors, limits: limits)
        let compress = rawLength > WireCodec.compressionThreshold
        var writer = ByteWriter(
            startingWith: [UInt8](repeating: 0, count: WireHeader.size),
            capacity: WireHeader.size + rawLength)
        TensorTable.write(message.tensors, shuffleFloats: compress, to: &writer)
        var output = writer.bytes
        var flags: UInt32 = authenticator == nil ? 0 : WireHeader.authenticatedFlag
        if compress {
            let level = compressionLevel
            let framed = try output.withBytes { (all) throws(WireError) in
                try LZ4Frame.compress(
                    UnsafeRawBufferPointer(rebasing: all[WireHeader.size...]), level: level, prefix: WireHeader.size)
            }
            if framed.count < output.count {
                output = framed
                flags |= WireHeader.lz4FrameFlag
            }
        }
        let header = WireHeader(
            kind: message.kind,
            flags: flags,
            policyVersion: message.policyVersion,
            actorIndex: message.actorIndex,
            sequence: message.sequence,
            rawLength: UInt64(rawLength),
            encodedLength: UInt64(output.count - WireHeader.size))
        header.write(into: &output)
        authenticator?.sign(&output)
        return output
    }

    /// Decodes one message from bytes received from a peer.
    ///
    /// Never traps on malformed input; throws a `WireError` saying what is wrong.
    /// The order is that of docs/wire-format.md: header and limits, then the tag,
    /// then decompression and the tensor table.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> WireMessage {
        let header = try WireHeader.parse(bytes)
        guard header.rawLength <= UInt64(max(limits.maxMessageBytes, 0)) else {
            throw .tooLarge("the header declares a \(header.rawLength)-byte payload, the limit is \(limits.maxMessageBytes)")
        }
        let arrived = bytes.count - WireHeader.size
        guard header.encodedLength <= UInt64(arrived) else {
            throw .truncated("the payload (the header declares \(header.encodedLength) bytes, \(arrived) arrived)")
        }
        guard header.encodedLength == UInt64(arrived) else {
            throw .lengthMismatch("\(UInt64(arrived) - header.encodedLength) bytes follow the \(header.encodedLength)-byte payload")
        }
        guard header.rawLength >= UInt64(MemoryLayout<UInt32>.size) else {
            throw .truncated("the tensor count (the header declares a \(header.rawLength)-byte payload)")
        }
        switch (authenticator, header.isAuthenticated) {
        case (nil, false): break
        case (nil, true): throw .unexpectedTag
        case (.some, false): throw .missingTag
        case (let authenticator?, true): try authenticator.verify(bytes)
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[WireHeader.size...])
        let tensors: [WireTensor]
        if header.isCompressed {
            let raw = try LZ4Frame.decompress(payload, rawLength: Int(header.rawLength))
            let limits = limits
            tensors = try raw.withBytes { (table) throws(WireError) in try TensorTable.read(table, limits: limits) }
        } else {
            guard header.rawLength == header.encodedLength else {
                throw .lengthMismatch(
                    "an uncompressed payload declares \(header.rawLength) raw bytes but \(header.encodedLength) encoded bytes")
            }
            tensors = try TensorTable.read(payload, limits: limits)
        }
        return WireMessage(
            kind: header.kind,
            policyVersion: header.policyVersion,
            actorIndex: header.actorIndex,
            sequence: header.sequence,
            tensors: tensors)
    }

    /// Decodes one message from bytes received from a peer; see `decode(_:)` on a buffer.
    public func decode(_ bytes: [UInt8]) throws(WireError) -> WireMessage {
        try bytes.withBytes { (buffer) throws(WireError) in try decode(buffer) }
    }
}
