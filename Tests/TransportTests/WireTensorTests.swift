import Transport
import XCTest

final class WireTensorTests: XCTestCase {
    func testTypedAccessorsReturnTheElements() throws {
        let floats = WireTensor(name: "f", floats: [1, -2.5, .greatestFiniteMagnitude], shape: [3])
        XCTAssertEqual(try floats.floats(), [1, -2.5, .greatestFiniteMagnitude])
        XCTAssertEqual(floats.elementCount, 3)
        XCTAssertEqual(floats.bytes.count, 12)

        let ints = WireTensor(name: "i", int32s: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        XCTAssertEqual(try ints.int32s(), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(ints.elementCount, 6)

        let text = WireTensor(name: "t", utf8: "grüße")
        XCTAssertEqual(try text.text(), "grüße")
        XCTAssertEqual(text.shape, [7])

        let scalar = WireTensor(name: "s", floats: [3], shape: [])
        XCTAssertEqual(scalar.elementCount, 1)
        XCTAssertEqual(WireTensor(name: "e", int32s: [], shape: [4, 0]).elementCount, 0)
    }

    func testFloatsFromBufferAndCopyIntoPointer() throws {
        let values: [Float] = [0.5, 1.5, 2.5, 3.5]
        let tensor = values.withUnsafeBufferPointer { WireTensor(name: "w", floats: $0, shape: [2, 2]) }
        var destination = [Float](repeating: 0, count: 4)
        try destination.withUnsafeMutableBufferPointer { buffer in
            try tensor.copyFloats(into: buffer.baseAddress!, count: buffer.count)
        }
        XCTAssertEqual(destination, values)
    }

    func testLittleEndianLayout() {
        XCTAssertEqual(WireTensor(name: "i", int32s: [0x0102_0304], shape: [1]).bytes, [4, 3, 2, 1])
        XCTAssertEqual(WireTensor(name: "f", floats: [1], shape: [1]).bytes, [0, 0, 0x80, 0x3F])
    }

    func testWrongTypeAndCountThrow() throws {
        let ints = WireTensor(name: "i", int32s: [1, 2], shape: [2])
        XCTAssertThrowsWireReason("wrong_type", try ints.floats())
        XCTAssertThrowsWireReason("wrong_type", try ints.text())
        XCTAssertThrowsWireReason("wrong_type", try WireTensor(name: "f", floats: [1], shape: [1]).int32s())
        XCTAssertThrowsWireReason("wrong_type", try WireTensor(name: "b", dtype: .uint8, shape: [1], bytes: [0xFF]).text())

        let floats = WireTensor(name: "f", floats: [1, 2], shape: [2])
        var room = [Float](repeating: 0, count: 3)
        try room.withUnsafeMutableBufferPointer { buffer in
            XCTAssertThrowsWireReason("length_mismatch", try floats.copyFloats(into: buffer.baseAddress!, count: 3))
            XCTAssertThrowsWireReason("wrong_type", try ints.copyFloats(into: buffer.baseAddress!, count: 2))
        }
    }

    func testTensorLookupByName() throws {
        let message = WireMessage(kind: .welcome, tensors: [WireTensor(name: "a", utf8: "x")])
        XCTAssertEqual(try message.tensor(named: "a").text(), "x")
        XCTAssertThrowsWireError(.missingTensor("b"), try message.tensor(named: "b"))
    }

    func testErrorsExplainThemselves() {
        XCTAssertEqual(WireError.badMagic.reason, "bad_magic")
        XCTAssertEqual(WireError.unsupportedVersion(3).reason, "unsupported_version")
        XCTAssertTrue(WireError.unsupportedVersion(3).description.contains("version 3"))
        XCTAssertTrue(WireError.missingTensor("actions").description.contains("'actions'"))
        XCTAssertEqual(TensorDType.int64.byteWidth, 8)
        XCTAssertEqual(TensorDType.uint8.byteWidth, 1)
    }
}
