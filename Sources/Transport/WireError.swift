/// Why a message could not be encoded, decoded or read.
///
/// Decoding never traps on bad input: every problem with received bytes surfaces
/// as one of these cases, with a message that says what was wrong.
public enum WireError: Error, Equatable, CustomStringConvertible {
    /// The bytes end before the named part of the message.
    case truncated(String)
    /// The message does not start with "DPPO".
    case badMagic
    /// The header carries a format version this build does not know.
    case unsupportedVersion(UInt16)
    /// The header carries a message kind this build does not know.
    case unknownKind(UInt16)
    /// A header field has a value this format version does not allow (flags, reserved bytes).
    case malformedHeader(String)
    /// The message, or a part of it, exceeds a `WireLimits` bound.
    case tooLarge(String)
    /// The tensor table is inconsistent (unknown dtype, bad name, overflowing shape, ...).
    case malformedTable(String)
    /// The LZ4 frame could not be decompressed.
    case decompressionFailed(String)
    /// Two lengths that must agree do not (declared vs actual, trailing bytes, element counts).
    case lengthMismatch(String)
    /// The message has no tensor with this name.
    case missingTensor(String)
    /// A tensor was read as a type it does not hold.
    case wrongType(String)
    /// LZ4 failed to compress the payload.
    case compressionFailed(String)
    /// This run has a cluster key, but the message is not authenticated (flag bit 1 clear).
    case missingTag
    /// The authentication tag does not match the message: another key, or altered bytes.
    case badTag
    /// The message is authenticated, but this run has no cluster key to check it with.
    case unexpectedTag

    /// A short, stable snake_case label for the case, suitable as a counter key.
    public var reason: String {
        switch self {
        case .truncated: return "truncated"
        case .badMagic: return "bad_magic"
        case .unsupportedVersion: return "unsupported_version"
        case .unknownKind: return "unknown_kind"
        case .malformedHeader: return "malformed_header"
        case .tooLarge: return "too_large"
        case .malformedTable: return "malformed_table"
        case .decompressionFailed: return "decompression_failed"
        case .lengthMismatch: return "length_mismatch"
        case .missingTensor: return "missing_tensor"
        case .wrongType: return "wrong_type"
        case .compressionFailed: return "compression_failed"
        case .missingTag: return "missing_tag"
        case .badTag: return "bad_tag"
        case .unexpectedTag: return "unexpected_tag"
        }
    }

    /// A sentence for logs and error reports.
    public var description: String {
        switch self {
        case .truncated(let part):
            return "message truncated: the bytes end inside \(part)"
        case .badMagic:
            return "not a DPPO message: the first 4 bytes are not \"DPPO\""
        case .unsupportedVersion(let version):
            return "unsupported wire format version \(version); this build reads version \(WireHeader.formatVersion)"
        case .unknownKind(let kind):
            return "unknown message kind \(kind)"
        case .malformedHeader(let detail):
            return "malformed message header: \(detail)"
        case .tooLarge(let detail):
            return "message too large: \(detail)"
        case .malformedTable(let detail):
            return "malformed tensor table: \(detail)"
        case .decompressionFailed(let detail):
            return "LZ4 decompression failed: \(detail)"
        case .lengthMismatch(let detail):
            return "length mismatch: \(detail)"
        case .missingTensor(let name):
            return "the message has no tensor named '\(name)'"
        case .wrongType(let detail):
            return "wrong tensor type: \(detail)"
        case .compressionFailed(let detail):
            return "LZ4 compression failed: \(detail)"
        case .missingTag:
            return "unauthenticated message: this run has a cluster key, so every peer must sign its messages with it (start the peer with the same cluster key)"
        case .badTag:
            return "authentication failed: the tag does not match the message (the peer uses another cluster key, or the bytes were altered)"
        case .unexpectedTag:
            return "unexpected authentication; this run has no cluster key (give it the peer's key: cluster.key_file, DPPO_CLUSTER_KEY_FILE or DPPO_CLUSTER_KEY)"
        }
    }
}
