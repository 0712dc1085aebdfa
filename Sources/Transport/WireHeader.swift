/// The fixed 96-byte header that starts every message (format version 1).
///
/// Layout, all little-endian (see docs/wire-format.md):
///
/// | offset | size | field                                  |
/// |-------:|-----:|----------------------------------------|
/// |      0 |    4 | magic "DPPO"                           |
/// |      4 |    2 | format version (1)                     |
/// |      6 |    2 | kind                                   |
/// |      8 |    4 | flags                                  |
/// |     12 |    4 | reserved, 0                            |
/// |     16 |    8 | policy version                         |
/// |     24 |    4 | actor index                            |
/// |     28 |    4 | reserved, 0                            |
/// |     32 |    8 | sequence                               |
/// |     40 |    8 | raw payload length                     |
/// |     48 |    8 | encoded payload length                 |
/// |     56 |    8 | reserved, 0                            |
/// |     64 |   32 | authentication tag if flag bit 1, or 0 |
struct WireHeader {
    /// The header size in bytes; the encoded payload starts here.
    static let size = 96
    /// The first four bytes of every message.
    static let magic: [UInt8] = Array("DPPO".utf8)
    /// The layout version this build writes and reads.
    static let formatVersion: UInt16 = 1
    /// Flag bit 0: the payload is one LZ4 frame.
    static let lz4FrameFlag: UInt32 = 1 << 0
    /// Flag bit 1: the tag field holds HMAC-SHA256 of the message under the cluster key.
    static let authenticatedFlag: UInt32 = 1 << 1

    /// Byte offsets of the fields.
    private enum Offset {
        static let version = 4
        static let kind = 6
        static let flags = 8
        static let policyVersion = 16
        static let actorIndex = 24
        static let sequence = 32
        static let rawLength = 40
        static let encodedLength = 48
    }

    /// Every flag this version defines; any other bit is rejected.
    private static let knownFlags = lz4FrameFlag | authenticatedFlag
    /// Reserved fields, always zero.
    private static let zeroRanges = [12 ..< 16, 28 ..< 32, 56 ..< 64]

    var kind: MessageKind
    var flags: UInt32
    var policyVersion: UInt64
    var actorIndex: UInt32
    var sequence: UInt64
    var rawLength: UInt64
    var encodedLength: UInt64

    /// Whether the payload is an LZ4 frame.
    var isCompressed: Bool { flags & WireHeader.lz4FrameFlag != 0 }
    /// Whether the tag field holds an authentication tag.
    var isAuthenticated: Bool { flags & WireHeader.authenticatedFlag != 0 }

    /// Writes the header over the first `size` bytes of `message`, which must already exist.
    func write(into message: inout [UInt8]) {
        message.withUnsafeMutableBytes { out in
            for index in 0 ..< WireHeader.size { out[index] = 0 }
            for (index, byte) in WireHeader.magic.enumerated() { out[index] = byte }
            out.storeBytes(of: WireHeader.formatVersion.littleEndian, toByteOffset: Offset.version, as: UInt16.self)
            out.storeBytes(of: kind.rawValue.littleEndian, toByteOffset: Offset.kind, as: UInt16.self)
            out.storeBytes(of: flags.littleEndian, toByteOffset: Offset.flags, as: UInt32.self)
            out.storeBytes(of: policyVersion.littleEndian, toByteOffset: Offset.policyVersion, as: UInt64.self)
            out.storeBytes(of: actorIndex.littleEndian, toByteOffset: Offset.actorIndex, as: UInt32.self)
            out.storeBytes(of: sequence.littleEndian, toByteOffset: Offset.sequence, as: UInt64.self)
            out.storeBytes(of: rawLength.littleEndian, toByteOffset: Offset.rawLength, as: UInt64.self)
            out.storeBytes(of: encodedLength.littleEndian, toByteOffset: Offset.encodedLength, as: UInt64.self)
        }
    }

    /// Parses and checks the header at the start of `message`.
    ///
    /// Checks, in order: magic, version, that the whole header is present, kind,
    /// flags and zero fields (the tag too, unless the authenticated flag is set), so that
    /// a foreign or newer peer gets the most telling error. Payload lengths and the tag
    /// itself are checked by the codec.
    static func parse(_ message: UnsafeRawBufferPointer) throws(WireError) -> WireHeader {
        guard message.count >= magic.count else { throw .truncated("the magic number") }
        guard message.prefix(magic.count).elementsEqual(magic) else { throw .badMagic }
        guard message.count >= Offset.kind else { throw .truncated("the format version") }
        let version = field(message, at: Offset.version, as: UInt16.self)
        guard version == formatVersion else { throw .unsupportedVersion(version) }
        guard message.count >= size else {
            throw .truncated("the \(size)-byte header (got \(message.count) bytes)")
        }
        let kindCode = field(message, at: Offset.kind, as: UInt16.self)
        guard let kind = MessageKind(rawValue: kindCode) else { throw .unknownKind(kindCode) }
        let flags = field(message, at: Offset.flags, as: UInt32.self)
        if flags & ~knownFlags != 0 {
            throw .malformedHeader("unknown flag bits 0x\(String(flags & ~knownFlags, radix: 16))")
        }
        for range in zeroRanges where message[range].contains(where: { $0 != 0 }) {
            throw .malformedHeader("reserved bytes \(range.lowerBound)..<\(range.upperBound) are not zero")
        }
        let tag = MessageAuthenticator.tagRange
        if flags & authenticatedFlag == 0, message[tag].contains(where: { $0 != 0 }) {
            throw .malformedHeader("the authenticated flag is clear but the tag bytes \(tag.lowerBound)..<\(tag.upperBound) are not zero")
        }
        return WireHeader(
            kind: kind,
            flags: flags,
            policyVersion: field(message, at: Offset.policyVersion, as: UInt64.self),
            actorIndex: field(message, at: Offset.actorIndex, as: UInt32.self),
            sequence: field(message, at: Offset.sequence, as: UInt64.self),
            rawLength: field(message, at: Offset.rawLength, as: UInt64.self),
            encodedLength: field(message, at: Offset.encodedLength, as: UInt64.self)
        )
    }

    private static func field<Value: FixedWidthInteger>(
        _ message: UnsafeRawBufferPointer, at offset: Int, as _: Value.Type
    ) -> Value {
        Value(littleEndian: message.loadUnaligned(fromByteOffset: offset, as: Value.self))
    }
}
