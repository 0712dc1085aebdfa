@testable import Transport
import XCTest

/// A small deterministic generator so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Samples {
    /// A smooth float series, like activations or weights after training.
    static func randomWalk(count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        var value: Float = 0
        return (0 ..< count).map { _ in
            value += Float.random(in: -0.01 ... 0.01, using: &generator)
            return value
        }
    }

    /// One tensor of every dtype, plus empty and scalar tensors.
    static func mixedTensors() -> [WireTensor] {
        let int64s: [Int64] = [-1, 0, Int64.max, Int64.min]
        return [
            WireTensor(name: "observations", floats: [1.5, -2, 3.25, 0, .infinity, -0.0], shape: [2, 3]),
            WireTensor(name: "steps", int32s: [7, -8, Int32.max, Int32.min], shape: [4]),
            WireTensor(name: "note", utf8: "schön ✓"),
            WireTensor(name: "counts", dtype: .int64, shape: [2, 2], bytes: int64s.withUnsafeBytes { Array($0) }),
            WireTensor(name: "no floats", floats: [], shape: [0]),
            WireTensor(name: "no rows", int32s: [], shape: [3, 0]),
            WireTensor(name: "no text", utf8: ""),
            WireTensor(name: "scalar", floats: [42], shape: []),
            WireTensor(name: "scalar64", dtype: .int64, shape: [], bytes: [1, 2, 3, 4, 5, 6, 7, 8]),
        ]
    }

    /// A message whose payload is well over the compression threshold.
    static func largeMessage() -> WireMessage {
        WireMessage(
            kind: .segment, policyVersion: 12, actorIndex: 3, sequence: 99,
            tensors: mixedTensors() + [WireTensor(name: "walk", floats: randomWalk(count: 1000, seed: 1), shape: [10, 100])])
    }

    /// A message whose payload is under the compression threshold.
    static func tinyMessage() -> WireMessage {
        WireMessage(kind: .heartbeat, policyVersion: 1, actorIndex: 2, sequence: 3,
                    tensors: [WireTensor(name: "t", int32s: [5], shape: [])])
    }

    /// Encodes `message` without compression, whatever its size, with `extra` bytes
    /// appended to the payload and `patch` applied to the raw payload bytes.
    static func uncompressed(
        _ message: WireMessage, extra: [UInt8] = [], patch: (inout [UInt8]) -> Void = { _ in }
    ) -> [UInt8] {
        var writer = ByteWriter(startingWith: [], capacity: 0)
        TensorTable.write(message.tensors, shuffleFloats: false, to: &writer)
        var payload = writer.bytes + extra
        patch(&payload)
        var bytes = [UInt8](repeating: 0, count: WireHeader.size) + payload
        WireHeader(kind: message.kind, flags: 0, policyVersion: message.policyVersion, actorIndex: message.actorIndex,
                   sequence: message.sequence, rawLength: UInt64(payload.count), encodedLength: UInt64(payload.count))
            .write(into: &bytes)
        return bytes
    }

    /// A header alone, for crafting messages by hand.
    static func header(kind: MessageKind = .segment, flags: UInt32, rawLength: UInt64, encodedLength: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: WireHeader.size)
        WireHeader(kind: kind, flags: flags, policyVersion: 0, actorIndex: 0, sequence: 0,
                   rawLength: rawLength, encodedLength: encodedLength).write(into: &bytes)
        return bytes
    }
}

/// Asserts that `body` throws exactly `expected`.
func XCTAssertThrowsWireError<T>(
    _ expected: WireError, _ body: @autoclosure () throws -> T,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        XCTAssertEqual(error as? WireError, expected, file: file, line: line)
    }
}

/// Asserts that `body` throws a `WireError` whose `reason` is `reason`.
func XCTAssertThrowsWireReason<T>(
    _ reason: String, _ body: @autoclosure () throws -> T, _ context: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertThrowsError(try body(), context, file: file, line: line) { error in
        XCTAssertEqual((error as? WireError)?.reason, reason, "\(context) \(error)", file: file, line: line)
    }
}
