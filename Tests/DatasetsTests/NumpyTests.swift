import Datasets
import Foundation
import XCTest

final class NumpyTests: XCTestCase {
    /// An `.npy` file of format version 1.0 with the given header dictionary and payload.
    func npy(_ header: String, payload: [UInt8]) -> Data {
        var text = Array(header.utf8)
        text.append(0x0A)
        var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(text.count & 0xFF), UInt8(text.count >> 8)])
        data.append(contentsOf: text)
        data.append(contentsOf: payload)
        return data
    }

    func testReadsEverySupportedDataTypeFromStoredArchive() throws {
        let archive = try NumpyArchive(contentsOf: fixture("dtypes.npz"))
        XCTAssertEqual(archive.arrayNames, ["bool", "empty", "float32", "float64", "int32", "int64", "scalar", "uint8"])
        let float32 = try archive.array(named: "float32")
        XCTAssertEqual(float32.shape, [2, 3])
        XCTAssertEqual(float32.elementType, .float32)
        XCTAssertEqual(float32.floatValues, [0, 1, 2, 3, 4, 5])
        XCTAssertNil(float32.integerValues)
        XCTAssertEqual(try archive.array(named: "float64").floatValues, [0.5, -1.25])
        XCTAssertEqual(try archive.array(named: "int32").integerValues, [-1, 0, 7])
        XCTAssertEqual(try archive.array(named: "int64").integerValues, [1 << 40, -5])
        XCTAssertEqual(try archive.array(named: "uint8").integerValues, [0, 255])
        let flags = try archive.array(named: "bool")
        XCTAssertEqual(flags.elementType, .bool)
        XCTAssertEqual(flags.integerValues, [1, 0, 1])
        XCTAssertEqual(flags.floatValues, [1, 0, 1])
        let scalar = try archive.array(named: "scalar")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.floatValues, [3.5])
        let empty = try archive.array(named: "empty")
        XCTAssertEqual(empty.shape, [0, 4])
        XCTAssertEqual(empty.count, 0)
        assertThrows(try archive.array(named: "missing"), mentioning: ["dtypes.npz has no array missing", "float32"])
    }

    /// numpy writes every .npz entry with force_zip64: sizes 0xFFFFFFFF in the local header and a
    /// Zip64 extra field. Both the stored and the deflated variant must read.
    func testReadsZip64EntriesOfSavezAndSavezCompressed() throws {
        for (name, compression) in [("train_stored.npz", UInt16(0)), ("train.npz", UInt16(8))] {
            let bytes = [UInt8](try Data(contentsOf: fixture(name)))
            func field(_ offset: Int, _ width: Int) -> Int { (0..<width).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) } }
            XCTAssertEqual(field(0, 4), 0x0403_4B50, "\(name) starts with a local file header")
            XCTAssertEqual(field(8, 2), Int(compression), "\(name) compression method")
            XCTAssertEqual(field(18, 4), 0xFFFF_FFFF, "\(name): compressed size deferred to the Zip64 field")
            XCTAssertEqual(field(22, 4), 0xFFFF_FFFF, "\(name): uncompressed size deferred to the Zip64 field")
            XCTAssertEqual(field(30 + field(26, 2), 2), 0x0001, "\(name): the first extra field is Zip64")
            let archive = try NumpyArchive(contentsOf: fixture(name))
            XCTAssertEqual(archive.arrayNames, ["actions", "rewards", "states", "terminals", "traj_lengths"])
            XCTAssertEqual(try archive.array(named: "traj_lengths").integerValues, [4, 3])
            XCTAssertEqual(try archive.array(named: "states").shape, [7, 2])
        }
        XCTAssertEqual(try NumpyArchive(contentsOf: fixture("train.npz")).array(named: "states"),
                       try NumpyArchive(contentsOf: fixture("train_stored.npz")).array(named: "states"))
    }

    func testReadsHeaderVersions2And3() throws {
        for version in [2, 3] {
            let array = try NumpyArray(contentsOf: fixture("version\(version).npy"))
            XCTAssertEqual(array.name, "version\(version)")
            XCTAssertEqual(array.shape, [3, 2])
            XCTAssertEqual(array.floatValues, [0, 1, 2, 3, 4, 5])
        }
    }

    func testRefusesFortranOrderObjectAndBigEndianArraysByName() throws {
        let archive = try NumpyArchive(contentsOf: fixture("unsupported.npz"))
        assertThrows(try archive.array(named: "fortran"), mentioning: ["array fortran", "Fortran", "np.ascontiguousarray"])
        assertThrows(try archive.array(named: "objects"), mentioning: ["array objects", "|O"])
        assertThrows(try archive.array(named: "big_endian"), mentioning: ["array big_endian", ">f4"])
    }

    func testChecksDeclaredShapeAgainstBytesBeforeAllocating() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"
        assertThrows(try NumpyArray(name: "cut", npyData: npy(header, payload: [UInt8](repeating: 0, count: 8))),
                     mentioning: ["array cut", "[4]", "needs 16 bytes", "holds 8"])
        let huge = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 1000000000), }"
        assertThrows(try NumpyArray(name: "huge", npyData: npy(huge, payload: [])), mentioning: ["array huge", "more than"])
        let fits = try? NumpyArray(name: "fits", npyData: npy(header, payload: [UInt8](repeating: 0, count: 16)))
        XCTAssertEqual(fits?.floatValues, [0, 0, 0, 0])
    }

    func testRefusesWhatIsNotAnNpyFile() {
        assertThrows(try NumpyArray(name: "text", npyData: Data("hello world".utf8)), mentioning: ["array text", "not in .npy format"])
        var future = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", payload: [0, 0, 0, 0])
        future[6] = 4
        assertThrows(try NumpyArray(name: "future", npyData: future), mentioning: ["array future", "4.0"])
        assertThrows(try NumpyArray(name: "noshape", npyData: npy("{'descr': '<f4', 'fortran_order': False, }", payload: [])),
                     mentioning: ["array noshape", "shape"])
        assertThrows(try NumpyArray(name: "garbled", npyData: npy("{'descr': '<f4', 'fortran_order': Fals", payload: [])),
                     mentioning: ["array garbled", "malformed"])
        var cutHeader = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", payload: [])
        cutHeader.removeLast(10)
        assertThrows(try NumpyArray(name: "cutheader", npyData: cutHeader), mentioning: ["array cutheader", "header claims"])
    }

    func testRefusesTruncatedArchive() {
        assertThrows(try NumpyArchive(contentsOf: fixture("truncated.npz")), mentioning: ["truncated.npz", "not a readable .npz"])
        assertThrows(try NumpyArchive(contentsOf: URL(fileURLWithPath: "/nonexistent/train.npz")), mentioning: ["train.npz", "no readable file"])
    }
}
