@testable import Transport
import XCTest

/// Decoding must survive any input: every failure is a thrown `WireError`, never a trap.
final class WireCodecRobustnessTests: XCTestCase {
    private let codec = WireCodec()

    func testEveryTruncationThrows() throws {
        let messages = [
            try codec.encode(Samples.largeMessage()),
            Samples.uncompressed(Samples.largeMessage()),
            try codec.encode(Samples.tinyMessage()),
        ]
        for encoded in messages {
            for length in 0 ..< encoded.count {
                XCTAssertThrowsError(try codec.decode(Array(encoded.prefix(length))), "prefix of \(length) bytes")
            }
        }
    }

    func testRandomMutationsDecodeOrThrow() throws {
        let originals = [
            try codec.encode(Samples.largeMessage()),
            Samples.uncompressed(Samples.largeMessage()),
            try codec.encode(Samples.tinyMessage()),
        ]
        var generator = SplitMix64(seed: 2024)
        var decoded = 0
        var reasons: [String: Int] = [:]
        for round in 0 ..< 5000 {
            var bytes = originals[round % originals.count]
            mutate(&bytes, using: &generator)
            do {
                _ = try codec.decode(bytes)
                decoded += 1
            } catch {
                reasons[error.reason, default: 0] += 1
            }
        }
        print("mutations: \(decoded) decoded, failures by reason: \(reasons.sorted { $0.key < $1.key })")
        XCTAssertGreaterThan(reasons.count, 4, "mutations should reach many different checks")
    }

    func testHugeDeclaredRawLengthIsRejectedBeforeAllocating() {
        let compressed = Samples.header(flags: WireHeader.lz4FrameFlag, rawLength: 1 << 62, encodedLength: 16)
            + [UInt8](repeating: 0, count: 16)
        XCTAssertThrowsWireReason("too_large", try codec.decode(compressed))
        let raw = Samples.header(flags: 0, rawLength: 1 << 62, encodedLength: 1 << 62)
        XCTAssertThrowsWireReason("too_large", try codec.decode(raw))
    }

    func testDeclaredPayloadLongerThanBytesThrowsTruncated() {
        let bytes = Samples.header(flags: 0, rawLength: 100, encodedLength: 100) + [0, 0, 0, 0]
        XCTAssertThrowsWireReason("truncated", try codec.decode(bytes))
    }

    func testOverflowingDimensionsThrow() {
        let bytes = craftedTable(dimensions: [UInt32](repeating: .max, count: 6), dataLength: 0)
        XCTAssertThrowsWireReason("malformed_table", try codec.decode(bytes))
    }

    func testZeroDimensionMakesAnEmptyTensorWhateverTheOthers() throws {
        let bytes = craftedTable(dimensions: [.max, .max, .max, 0], dataLength: 0)
        let tensor = try codec.decode(bytes).tensor(named: "x")
        XCTAssertEqual(tensor.elementCount, 0)
        XCTAssertEqual(try tensor.floats(), [])
    }

    func testDimensionsLargerThanThePayloadThrowWithoutAllocating() {
        let bytes = craftedTable(dimensions: [1 << 20, 1 << 20], dataLength: 4 << 40)
        XCTAssertThrowsWireReason("truncated", try codec.decode(bytes))
    }

    func testTrailingGarbageThrows() throws {
        let compressed = try codec.encode(Samples.largeMessage())
        XCTAssertThrowsWireReason("length_mismatch", try codec.decode(compressed + [0]))
        let raw = try codec.encode(Samples.tinyMessage())
        XCTAssertThrowsWireReason("length_mismatch", try codec.decode(raw + [1, 2, 3]))
        let afterData = Samples.uncompressed(Samples.tinyMessage(), extra: [1, 2, 3])
        XCTAssertThrowsWireReason("length_mismatch", try codec.decode(afterData))
        var afterFrame = compressed + [9, 9, 9]
        setField(&afterFrame, at: 48, to: UInt64(afterFrame.count - WireHeader.size))
        XCTAssertThrowsWireReason("length_mismatch", try codec.decode(afterFrame))
    }

    func testHeaderProblemsThrowTheirOwnCase() throws {
        let valid = try codec.encode(Samples.tinyMessage())
        XCTAssertThrowsWireError(.badMagic, try codec.decode(patched(valid, at: 3, with: [0x58])))
        XCTAssertThrowsWireError(.badMagic, try codec.decode(Array("GET / HTTP/1.1\r\n".utf8)))
        XCTAssertThrowsWireError(.unsupportedVersion(2), try codec.decode(patched(valid, at: 4, with: [2, 0])))
        XCTAssertThrowsWireError(.unsupportedVersion(2), try codec.decode(Array("DPPO".utf8) + [2, 0]))
        XCTAssertThrowsWireError(.unknownKind(99), try codec.decode(patched(valid, at: 6, with: [99, 0])))
        XCTAssertThrowsWireError(.unknownKind(0), try codec.decode(patched(valid, at: 6, with: [0, 0])))
        XCTAssertThrowsWireReason("unexpected_tag", try codec.decode(patched(valid, at: 8, with: [2])))
        XCTAssertThrowsWireReason("malformed_header", try codec.decode(patched(valid, at: 11, with: [0x80])))
        for offset in [12, 28, 60, 64, 95] {
            XCTAssertThrowsWireReason("malformed_header", try codec.decode(patched(valid, at: offset, with: [1])), "byte \(offset)")
        }
        XCTAssertThrowsWireReason("truncated", try codec.decode([]))
        XCTAssertThrowsWireReason("truncated", try codec.decode(Array("DPPO".utf8)))
        XCTAssertThrowsWireReason("truncated", try codec.decode(Array(valid.prefix(95))))
    }

    func testLengthFieldsMustAgree() throws {
        let raw = try codec.encode(Samples.tinyMessage())
        XCTAssertThrowsWireReason("length_mismatch", try codec.decode(patched(raw, at: 40, with: [22])))
        XCTAssertThrowsWireReason("truncated", try codec.decode(patched(raw, at: 40, with: [2])))

        let compressed = try codec.encode(Samples.largeMessage())
        let declared = compressed.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 40, as: UInt64.self) }
        for wrong in [declared - 1, declared + 1] {
            var bytes = compressed
            setField(&bytes, at: 40, to: wrong)
            XCTAssertThrowsError(try codec.decode(bytes)) { error in
                XCTAssertTrue(["length_mismatch", "decompression_failed"].contains((error as? WireError)?.reason), "\(error)")
            }
        }
        var notAFrame = compressed
        for index in WireHeader.size ..< WireHeader.size + 4 { notAFrame[index] = 0 }
        XCTAssertThrowsWireReason("decompression_failed", try codec.decode(notAFrame))
    }

    /// Payload offsets of the one-tensor message below: 0 count, 4 name length, 6 name "ab",
    /// 8 dtype, 9 flags, 10 ndim, 11 pad, 12 dimension, 16 data length, 24 data.
    /// In the two-tensor message, the second name is at 25.
    func testTableProblemsThrowTheirOwnCase() {
        let message = WireMessage(kind: .segment, tensors: [WireTensor(name: "ab", int32s: [3], shape: [1])])
        func decodePatched(at offset: Int, with bytes: [UInt8]) throws -> WireMessage {
            try codec.decode(Samples.uncompressed(message) { $0.replaceSubrange(offset ..< offset + bytes.count, with: bytes) })
        }
        XCTAssertThrowsWireReason("too_large", try decodePatched(at: 0, with: [65]))
        XCTAssertThrowsWireReason("truncated", try decodePatched(at: 0, with: [2]))
        XCTAssertThrowsWireReason("too_large", try decodePatched(at: 4, with: [200]))
        XCTAssertThrowsWireReason("truncated", try decodePatched(at: 4, with: [100]))
        XCTAssertThrowsWireReason("malformed_table", try decodePatched(at: 6, with: [0xC3, 0x28]))
        XCTAssertThrowsWireReason("malformed_table", try decodePatched(at: 8, with: [9]))
        XCTAssertThrowsWireReason("malformed_table", try decodePatched(at: 9, with: [2]))
        XCTAssertThrowsWireReason("too_large", try decodePatched(at: 10, with: [7]))
        XCTAssertThrowsWireReason("malformed_table", try decodePatched(at: 11, with: [1]))
        XCTAssertThrowsWireReason("length_mismatch", try decodePatched(at: 16, with: [8]))
        XCTAssertThrowsWireReason("length_mismatch", try decodePatched(at: 12, with: [0]))

        let twins = WireMessage(kind: .segment, tensors: [WireTensor(name: "a", utf8: "x"), WireTensor(name: "b", utf8: "y")])
        let duplicate = Samples.uncompressed(twins) { payload in payload[25] = UInt8(ascii: "a") }
        XCTAssertThrowsWireReason("malformed_table", try codec.decode(duplicate))
    }

    func testDecodeEnforcesConfiguredLimits() throws {
        let encoded = try codec.encode(Samples.largeMessage())
        XCTAssertThrowsWireReason("too_large", try WireCodec(limits: WireLimits(maxMessageBytes: 1000)).decode(encoded))
        XCTAssertThrowsWireReason("too_large", try WireCodec(limits: WireLimits(maxTensors: 3)).decode(encoded))
        XCTAssertThrowsWireReason("too_large", try WireCodec(limits: WireLimits(maxNameBytes: 4)).decode(encoded))
        XCTAssertThrowsWireReason("too_large", try WireCodec(limits: WireLimits(maxDimensions: 1)).decode(encoded))
    }

    func testEncodeRejectsInvalidMessages() {
        let tensor = WireTensor(name: "x", floats: [1, 2], shape: [2])
        XCTAssertThrowsWireReason("malformed_table", try codec.encode(WireMessage(kind: .segment, tensors: [tensor, tensor])))
        let many = (0 ..< 65).map { WireTensor(name: "t\($0)", utf8: "") }
        XCTAssertThrowsWireReason("too_large", try codec.encode(WireMessage(kind: .segment, tensors: many)))
        let longName = WireTensor(name: String(repeating: "n", count: 129), utf8: "")
        XCTAssertThrowsWireReason("too_large", try codec.encode(WireMessage(kind: .segment, tensors: [longName])))
        let deep = WireTensor(name: "deep", floats: [1], shape: [1, 1, 1, 1, 1, 1, 1])
        XCTAssertThrowsWireReason("too_large", try codec.encode(WireMessage(kind: .segment, tensors: [deep])))
        var grown = tensor
        grown.bytes.append(0)
        XCTAssertThrowsWireReason("length_mismatch", try codec.encode(WireMessage(kind: .segment, tensors: [grown])))
        var negative = tensor
        negative.shape = [-2]
        XCTAssertThrowsWireReason("malformed_table", try codec.encode(WireMessage(kind: .segment, tensors: [negative])))
        let small = WireCodec(limits: WireLimits(maxMessageBytes: 64))
        XCTAssertThrowsWireReason("too_large", try small.encode(Samples.largeMessage()))
    }

    // MARK: - Helpers

    /// A raw message with one float32 tensor "x" of the given dimensions and declared data length, and no data.
    private func craftedTable(dimensions: [UInt32], dataLength: UInt64) -> [UInt8] {
        var writer = ByteWriter(startingWith: [], capacity: 64)
        writer.write(UInt32(1))
        writer.write(UInt16(1))
        writer.write(contentsOf: Array("x".utf8))
        writer.write(contentsOf: [TensorDType.float32.rawValue, 0, UInt8(dimensions.count), 0])
        dimensions.forEach { writer.write($0) }
        writer.write(dataLength)
        let length = UInt64(writer.bytes.count)
        return Samples.header(flags: 0, rawLength: length, encodedLength: length) + writer.bytes
    }

    private func patched(_ bytes: [UInt8], at offset: Int, with replacement: [UInt8]) -> [UInt8] {
        var copy = bytes
        copy.replaceSubrange(offset ..< offset + replacement.count, with: replacement)
        return copy
    }

    private func setField(_ bytes: inout [UInt8], at offset: Int, to value: UInt64) {
        bytes.replaceSubrange(offset ..< offset + 8, with: withUnsafeBytes(of: value.littleEndian) { Array($0) })
    }

    private func mutate(_ bytes: inout [UInt8], using generator: inout SplitMix64) {
        // Most mutations hit the header and table, where the checks are.
        func position() -> Int {
            Bool.random(using: &generator)
                ? Int.random(in: 0 ..< min(bytes.count, 320), using: &generator)
                : Int.random(in: 0 ..< bytes.count, using: &generator)
        }
        switch Int.random(in: 0 ..< 5, using: &generator) {
        case 0, 1:
            for _ in 0 ..< Int.random(in: 1 ... 4, using: &generator) {
                bytes[position()] ^= UInt8(1) << UInt8.random(in: 0 ..< 8, using: &generator)
            }
        case 2:
            bytes[position()] = [0x00, 0x7F, 0x80, 0xFF].randomElement(using: &generator)!
        case 3:
            let start = position()
            let end = min(bytes.count, start + Int.random(in: 1 ... 16, using: &generator))
            bytes.removeSubrange(start ..< end)
        default:
            let extra = (0 ..< Int.random(in: 1 ... 16, using: &generator)).map { _ in UInt8.random(in: 0 ... 255, using: &generator) }
            bytes.insert(contentsOf: extra, at: position())
        }
    }
}
