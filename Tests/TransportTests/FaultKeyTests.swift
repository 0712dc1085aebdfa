@testable import Transport
import XCTest

/// HMAC-SHA256 authentication with a cluster key: what a peer without the key can and cannot make a receiver do.
final class FaultKeyTests: XCTestCase {
    private let keyA = [UInt8](0 ..< 32)
    private let keyB = [UInt8](repeating: 0xB0, count: 32)

    func testMessagesRoundTripWithAKey() throws {
        let codec = WireCodec(key: keyA)
        XCTAssertTrue(codec.isAuthenticating)
        XCTAssertFalse(WireCodec().isAuthenticating)
        for message in [Samples.tinyMessage(), Samples.largeMessage(), WireMessage(kind: .weightsNotice, policyVersion: 3)] {
            let encoded = try codec.encode(message)
            XCTAssertEqual(encoded[8] & 0b10, 0b10, "the authenticated flag is set")
            XCTAssertTrue(encoded[64 ..< 96].contains { $0 != 0 }, "the tag is written")
            XCTAssertEqual(try codec.decode(encoded), message)
        }
    }

    /// Signing changes the flags and the tag bytes, nothing else: the layout is that of an unauthenticated message.
    func testSigningChangesOnlyTheFlagAndTheTag() throws {
        for message in [Samples.tinyMessage(), Samples.largeMessage()] {
            var signed = try WireCodec(key: keyA).encode(message)
            let plain = try WireCodec().encode(message)
            XCTAssertEqual(signed[8], plain[8] | 0b10)
            signed[8] = plain[8]
            signed.replaceSubrange(64 ..< 96, with: [UInt8](repeating: 0, count: 32))
            XCTAssertEqual(signed, plain)
        }
    }

    /// Pins the authenticated example of docs/wire-format.md byte for byte (key 00 01 … 1f).
    func testAuthenticatedExampleHasTheDocumentedBytes() throws {
        let message = WireMessage(kind: .hello, policyVersion: 0x0102, actorIndex: 5, sequence: 9,
                                  tensors: [WireTensor(name: "ab", int32s: [-2], shape: [1])])
        let expectedHeader: [UInt8] = [0x44, 0x50, 0x50, 0x4F, 1, 0, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0]
            + [0x02, 0x01, 0, 0, 0, 0, 0, 0] + [5, 0, 0, 0] + [0, 0, 0, 0]
            + [9, 0, 0, 0, 0, 0, 0, 0] + [28, 0, 0, 0, 0, 0, 0, 0] + [28, 0, 0, 0, 0, 0, 0, 0]
            + [UInt8](repeating: 0, count: 8)
        let expectedTag: [UInt8] = [
            0x91, 0xCD, 0x22, 0x01, 0x8D, 0xD8, 0x5A, 0x96, 0x58, 0xDF, 0xE6, 0xFC, 0x2F, 0x25, 0xB0, 0xCF,
            0x93, 0x52, 0xBC, 0xB4, 0x29, 0x8F, 0x54, 0x76, 0x31, 0xA4, 0xAA, 0xA0, 0x33, 0xCB, 0x40, 0x18,
        ]
        let expectedPayload: [UInt8] = [1, 0, 0, 0] + [2, 0, 0x61, 0x62] + [2, 0, 1, 0] + [1, 0, 0, 0]
            + [4, 0, 0, 0, 0, 0, 0, 0] + [0xFE, 0xFF, 0xFF, 0xFF]
        XCTAssertEqual(try WireCodec(key: keyA).encode(message), expectedHeader + expectedTag + expectedPayload)
    }

    /// Every single flipped bit is rejected; wherever the header checks cannot tell (policy version, actor index,
    /// sequence, lengths that still agree, the tag, the payload), the tag check does.
    func testEveryFlippedBitIsRejected() throws {
        let codec = WireCodec(key: keyA)
        let tiny = try codec.encode(WireMessage(kind: .segment, policyVersion: 1, actorIndex: 1, sequence: 1,
                                                tensors: [WireTensor(name: "r", floats: [1, 2], shape: [2])]))
        let large = try codec.encode(Samples.largeMessage())
        XCTAssertEqual(large[8] & 1, 1, "the large message is compressed")
        // Fields only the tag protects: policy version, actor index, sequence, the tag itself, the payload.
        func onlyTheTagProtects(_ offset: Int) -> Bool {
            (16 ..< 28).contains(offset) || (32 ..< 40).contains(offset) || offset >= 64
        }
        var reasons: [String: Int] = [:]
        for (original, bitsPerByte) in [(tiny, 0 ..< 8), (large, 0 ..< 1)] {
            for offset in original.indices {
                for bit in bitsPerByte {
                    var bytes = original
                    bytes[offset] ^= UInt8(1) << UInt8((bit + offset) % 8)
                    do {
                        _ = try codec.decode(bytes)
                        XCTFail("a flipped bit at byte \(offset) was accepted")
                    } catch {
                        reasons[error.reason, default: 0] += 1
                        if onlyTheTagProtects(offset) { XCTAssertEqual(error, .badTag, "byte \(offset)") }
                    }
                }
            }
        }
        XCTAssertGreaterThan(reasons["bad_tag"] ?? 0, 1000, "\(reasons)")
        // Clearing the authenticated flag leaves a tag where none may be: the header check catches it first.
        var unflagged = tiny
        unflagged[8] &= ~0b10
        XCTAssertThrowsWireReason("malformed_header", try codec.decode(unflagged))
    }

    func testKeyedReceiverRejectsUnauthenticatedMessages() throws {
        let keyed = WireCodec(key: keyA)
        for message in [Samples.tinyMessage(), Samples.largeMessage()] {
            XCTAssertThrowsWireError(.missingTag, try keyed.decode(WireCodec().encode(message)))
        }
        // The flag without a real tag (all zero) is a wrong tag.
        var zeroTag = try WireCodec().encode(Samples.tinyMessage())
        zeroTag[8] |= 0b10
        XCTAssertThrowsWireError(.badTag, try keyed.decode(zeroTag))
    }

    func testKeylessReceiverRejectsAuthenticatedMessages() throws {
        let signed = try WireCodec(key: keyA).encode(Samples.tinyMessage())
        XCTAssertThrowsWireError(.unexpectedTag, try WireCodec().decode(signed))
        XCTAssertTrue(WireError.unexpectedTag.description.contains("unexpected authentication; this run has no cluster key"))
    }

    /// A peer with another key cannot make the receiver decompress anything: a corrupt LZ4 frame, signed with key B,
    /// is a `decompression_failed` for a key-B receiver (the frame really is corrupt) but a `bad_tag` for a key-A one.
    func testWrongKeyIsRejectedBeforeDecompression() throws {
        var forged = try WireCodec(key: keyB).encode(Samples.largeMessage())
        XCTAssertEqual(forged[8] & 1, 1, "compressed")
        for index in WireHeader.size ..< WireHeader.size + 8 { forged[index] = 0xFF }
        MessageAuthenticator(key: keyB).sign(&forged)
        XCTAssertThrowsWireReason("decompression_failed", try WireCodec(key: keyB).decode(forged))
        XCTAssertThrowsWireError(.badTag, try WireCodec(key: keyA).decode(forged))
        XCTAssertThrowsWireError(.badTag, try WireCodec(key: keyA).decode(WireCodec(key: keyB).encode(Samples.tinyMessage())))
    }

    /// Limits come first: a declared size over the limit is refused before any byte is hashed.
    func testLimitsAreCheckedBeforeTheTag() throws {
        let huge = Samples.header(flags: WireHeader.lz4FrameFlag | WireHeader.authenticatedFlag, rawLength: 1 << 62, encodedLength: 16)
            + [UInt8](repeating: 0, count: 16)
        XCTAssertThrowsWireReason("too_large", try WireCodec(key: keyA).decode(huge))
        var truncated = try WireCodec(key: keyA).encode(Samples.largeMessage())
        truncated.removeLast()
        XCTAssertThrowsWireReason("truncated", try WireCodec(key: keyA).decode(truncated))
    }
}
