@testable import Transport
import XCTest

final class WireCodecRoundTripTests: XCTestCase {
    private let codec = WireCodec()

    func testLargeMessageRoundTripsCompressed() throws {
        let message = Samples.largeMessage()
        let encoded = try codec.encode(message)
        XCTAssertEqual(encoded[8] & 1, 1, "a large payload is sent as an LZ4 frame")
        XCTAssertEqual(try codec.decode(encoded), message)
    }

    func testTinyMessageRoundTripsRaw() throws {
        let message = Samples.tinyMessage()
        let encoded = try codec.encode(message)
        XCTAssertEqual(encoded[8] & 1, 0, "a payload of at most 64 bytes is sent raw")
        XCTAssertEqual(encoded.count, WireHeader.size + 23)
        XCTAssertEqual(try codec.decode(encoded), message)
    }

    func testMixedTensorsRoundTripAtEveryCompressionLevel() throws {
        let message = WireMessage(kind: .weights, tensors: Samples.mixedTensors())
        for level: Int32 in [-5, 0, 9] {
            let codec = WireCodec(compressionLevel: level)
            XCTAssertEqual(try codec.decode(codec.encode(message)), message, "level \(level)")
        }
    }

    func testHeaderFieldsSurviveForEveryKind() throws {
        for kind in MessageKind.allCases {
            let message = WireMessage(kind: kind, policyVersion: .max, actorIndex: .max - 1, sequence: 1 << 40)
            let decoded = try codec.decode(codec.encode(message))
            XCTAssertEqual(decoded, message)
            XCTAssertTrue(decoded.tensors.isEmpty)
        }
    }

    func testDecodeFromBufferMatchesDecodeFromArray() throws {
        let encoded = try codec.encode(Samples.largeMessage())
        let fromBuffer = try encoded.withUnsafeBytes { try codec.decode($0) }
        XCTAssertEqual(fromBuffer, try codec.decode(encoded))
    }

    func testUncompressedPayloadOfAnySizeDecodes() throws {
        let message = Samples.largeMessage()
        XCTAssertEqual(try codec.decode(Samples.uncompressed(message)), message)
    }

    func testIncompressiblePayloadIsSentRaw() throws {
        var generator = SplitMix64(seed: 7)
        let noise = (0 ..< 4096).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
        let message = WireMessage(kind: .segment, tensors: [WireTensor(name: "noise", dtype: .uint8, shape: [4096], bytes: noise)])
        let encoded = try codec.encode(message)
        XCTAssertEqual(encoded[8] & 1, 0, "compression that does not shrink the payload is skipped")
        XCTAssertEqual(try codec.decode(encoded), message)
    }

    /// Pins the version 1 layout byte for byte, so an accidental layout change fails here.
    func testTinyMessageHasTheDocumentedBytes() throws {
        let message = WireMessage(kind: .hello, policyVersion: 0x0102, actorIndex: 5, sequence: 9,
                                  tensors: [WireTensor(name: "ab", int32s: [-2], shape: [1])])
        let expectedHeader: [UInt8] = [0x44, 0x50, 0x50, 0x4F, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            + [0x02, 0x01, 0, 0, 0, 0, 0, 0] + [5, 0, 0, 0] + [0, 0, 0, 0]
            + [9, 0, 0, 0, 0, 0, 0, 0] + [28, 0, 0, 0, 0, 0, 0, 0] + [28, 0, 0, 0, 0, 0, 0, 0]
            + [UInt8](repeating: 0, count: 40)
        let expectedPayload: [UInt8] = [1, 0, 0, 0] + [2, 0, 0x61, 0x62] + [2, 0, 1, 0] + [1, 0, 0, 0]
            + [4, 0, 0, 0, 0, 0, 0, 0] + [0xFE, 0xFF, 0xFF, 0xFF]
        XCTAssertEqual(try codec.encode(message), expectedHeader + expectedPayload)
    }
}
