@testable import Transport
import XCTest

final class CompressionTests: XCTestCase {
    func testShuffleMakesSmoothFloatsCompressible() throws {
        let walk = Samples.randomWalk(count: 10_000, seed: 42)
        let message = WireMessage(kind: .weights, tensors: [WireTensor(name: "walk", floats: walk, shape: [10_000])])
        let rawPayload = try TensorTable.payloadSize(of: message.tensors, limits: WireLimits())
        let encoded = try WireCodec().encode(message)
        let encodedPayload = encoded.count - WireHeader.size
        XCTAssertEqual(encoded[8] & 1, 1)
        XCTAssertLessThan(encodedPayload, rawPayload)

        let plain = try walk.withUnsafeBytes { try LZ4Frame.compress($0, level: 0, prefix: 0) }
        print(String(
            format: "random walk of 10,000 floats: raw payload %d B, shuffled+LZ4 %d B (%.1f%%), plain LZ4 of the floats %d B (%.1f%%)",
            rawPayload, encodedPayload, 100 * Double(encodedPayload) / Double(rawPayload),
            plain.count, 100 * Double(plain.count) / Double(walk.count * 4)))
        XCTAssertLessThan(encodedPayload, plain.count, "shuffling should beat plain LZ4 on smooth floats")
        XCTAssertEqual(try WireCodec().decode(encoded), message)
    }

    func testShuffleRoundTripsAndMatchesTheDocumentedOrder() {
        let source: [UInt8] = [0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23, 0x30, 0x31, 0x32, 0x33]
        var shuffled = [UInt8](repeating: 0, count: source.count)
        var restored = [UInt8](repeating: 0, count: source.count)
        source.withUnsafeBytes { input in
            shuffled.withUnsafeMutableBytes { ByteShuffle.shuffle(input, width: 4, into: $0) }
        }
        XCTAssertEqual(shuffled, [0x10, 0x20, 0x30, 0x11, 0x21, 0x31, 0x12, 0x22, 0x32, 0x13, 0x23, 0x33])
        shuffled.withUnsafeBytes { input in
            restored.withUnsafeMutableBytes { ByteShuffle.unshuffle(input, width: 4, into: $0) }
        }
        XCTAssertEqual(restored, source)
    }
}
