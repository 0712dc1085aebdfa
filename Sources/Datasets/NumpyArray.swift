import Foundation

/// Why an `.npy` array or an `.npz` archive could not be read. Every message names the array or file.
public enum NumpyError: Error, CustomStringConvertible, Equatable {
    /// The bytes do not start with the `.npy` magic string.
    case notNumpy(array: String)
    /// A format version other than 1.0, 2.0 or 3.0.
    case unsupportedVersion(array: String, major: Int, minor: Int)
    /// The header dictionary is missing, cut short or not the Python literal numpy writes.
    case malformedHeader(array: String, detail: String)
    /// A dtype outside `<f4 <f8 <i4 <i8 <u1 |u1 |b1`.
    case unsupportedDataType(array: String, descr: String)
    /// The array is stored column-major.
    case fortranOrder(array: String)
    /// The declared shape needs a different number of bytes than the file holds after the header.
    /// `declaredBytes` is nil when the shape's byte count overflows Int.
    case sizeMismatch(array: String, shape: [Int], descr: String, declaredBytes: Int?, foundBytes: Int)
    /// The `.npz` file is not a readable zip archive.
    case unreadableArchive(file: String, detail: String)
    /// The `.npz` file has no entry `<name>.npy`.
    case missingArray(array: String, file: String, available: [String])
    /// A zip entry could not be extracted intact.
    case corruptEntry(array: String, file: String, detail: String)

    /// The message shown to the user.
    public var description: String {
        switch self {
        case .notNumpy(let array):
            return "array \(array) is not in .npy format (no \\x93NUMPY magic); write it with numpy.save or numpy.savez"
        case .unsupportedVersion(let array, let major, let minor):
            return "array \(array) uses .npy format version \(major).\(minor); only 1.0, 2.0 and 3.0 are read (re-save it with a current numpy)"
        case .malformedHeader(let array, let detail):
            return "array \(array) has a malformed .npy header: \(detail)"
        case .unsupportedDataType(let array, let descr):
            return "array \(array) has dtype \(descr); supported are <f4 <f8 <i4 <i8 <u1 |u1 |b1 (convert it, e.g. x.astype(np.float32), and save again)"
        case .fortranOrder(let array):
            return "array \(array) is stored in Fortran (column-major) order; save np.ascontiguousarray(x) instead"
        case .sizeMismatch(let array, let shape, let descr, let declaredBytes, let foundBytes):
            let needed = declaredBytes.map { "\($0) bytes" } ?? "more than \(Int.max) bytes"
            return "array \(array) declares shape \(shape) of \(descr), which needs \(needed), but the file holds \(foundBytes) after the header (truncated or corrupt file)"
        case .unreadableArchive(let file, let detail):
            return "\(file) is not a readable .npz (zip) archive: \(detail); is the file complete?"
        case .missingArray(let array, let file, let available):
            return "\(file) has no array \(array) (it holds: \(available.isEmpty ? "nothing" : available.joined(separator: ", ")))"
        case .corruptEntry(let array, let file, let detail):
            return "array \(array) in \(file) cannot be extracted: \(detail); the file is corrupt or truncated"
        }
    }
}

/// One array read from numpy's `.npy` format (versions 1.0, 2.0, 3.0), C order only.
///
/// Values are decoded once: floating-point arrays to `Float` (float64 is rounded), integer and
/// boolean arrays to `Int` (booleans as 0/1), which `floatValues` also offers as `Float`.
public struct NumpyArray: Sendable, Equatable {
    /// The element types this reader accepts, by their numpy `descr`.
    public enum ElementType: String, Sendable, Equatable {
        /// Little-endian IEEE single precision.
        case float32 = "<f4"
        /// Little-endian IEEE double precision (rounded to Float when read).
        case float64 = "<f8"
        /// Little-endian 32-bit signed integer.
        case int32 = "<i4"
        /// Little-endian 64-bit signed integer, numpy's default integer on Linux.
        case int64 = "<i8"
        /// Unsigned byte (numpy writes `|u1`; `<u1` is read as the same).
        case uint8 = "|u1"
        /// numpy bool, one byte per element.
        case bool = "|b1"

        /// Bytes per element.
        var byteCount: Int {
            switch self {
            case .float32, .int32: return 4
            case .float64, .int64: return 8
            case .uint8, .bool: return 1
            }
        }

        /// Maps a header `descr` to an element type; `<u1` is the same type as `|u1`.
        init?(descr: String) {
            self.init(rawValue: descr == "<u1" ? "|u1" : descr)
        }
    }

    private enum Storage: Sendable, Equatable {
        case floats([Float])
        case integers([Int])
    }

    /// The array's name (an `.npz` key, or what the caller called it), used in every error.
    public let name: String
    /// Dimensions, outermost first; `[]` for a scalar.
    public let shape: [Int]
    /// The element type as stored in the file.
    public let elementType: ElementType
    private let storage: Storage

    /// The number of elements (the product of `shape`).
    public var count: Int { shape.reduce(1, *) }

    /// Every element as Float, row-major (integers above 2^24 lose precision; use `integerValues`).
    public var floatValues: [Float] {
        switch storage {
        case .floats(let values): return values
        case .integers(let values): return values.map { Float($0) }
        }
    }

    /// Every element as Int for integer and boolean arrays; nil for floating-point arrays.
    public var integerValues: [Int]? {
        if case .integers(let values) = storage { return values }
        return nil
    }

    /// Parses one `.npy` file. The declared shape is checked against the bytes present before
    /// anything is allocated, so a corrupt header cannot ask for more memory than the file holds.
    public init(name: String, npyData data: Data) throws {
        let parsed = try data.withUnsafeBytes { try NumpyArray.parse($0, name: name) }
        self.name = name
        shape = parsed.shape
        elementType = parsed.elementType
        storage = parsed.storage
    }

    /// Reads one `.npy` file; its name in errors is the file name without extension.
    public init(contentsOf url: URL) throws {
        try self.init(name: url.deletingPathExtension().lastPathComponent, npyData: Data(contentsOf: url))
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer, name: String) throws -> (shape: [Int], elementType: ElementType, storage: Storage) {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard bytes.count >= 8, bytes.prefix(6).elementsEqual(magic) else { throw NumpyError.notNumpy(array: name) }
        let major = Int(bytes[6]), minor = Int(bytes[7])
        guard [1, 2, 3].contains(major), minor == 0 else { throw NumpyError.unsupportedVersion(array: name, major: major, minor: minor) }
        // Version 1.0 has a 2-byte header length; 2.0 and 3.0 have 4 bytes (3.0 allows UTF-8 in the header).
        let lengthFieldSize = major == 1 ? 2 : 4
        let headerStart = 8 + lengthFieldSize
        guard bytes.count >= headerStart else { throw NumpyError.malformedHeader(array: name, detail: "the file ends inside the header length") }
        let headerLength = (0..<lengthFieldSize).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
        let dataStart = headerStart + headerLength
        guard dataStart <= bytes.count else {
            throw NumpyError.malformedHeader(array: name, detail: "the header claims \(headerLength) bytes but only \(bytes.count - headerStart) follow")
        }
        guard let headerText = String(bytes: bytes[headerStart..<dataStart], encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw NumpyError.malformedHeader(array: name, detail: "the header is not \(major == 3 ? "UTF-8" : "Latin-1") text")
        }
        let header = try NumpyHeader(parsing: headerText, array: name)
        guard let elementType = ElementType(descr: header.descr) else {
            throw NumpyError.unsupportedDataType(array: name, descr: header.descr)
        }
        guard !header.fortranOrder else { throw NumpyError.fortranOrder(array: name) }

        let foundBytes = bytes.count - dataStart
        var declaredBytes: Int? = elementType.byteCount
        for dimension in header.shape {
            declaredBytes = declaredBytes.flatMap { total in
                let product = total.multipliedReportingOverflow(by: dimension)
                return product.overflow ? nil : product.partialValue
            }
        }
        guard let byteCount = declaredBytes, byteCount == foundBytes else {
            throw NumpyError.sizeMismatch(array: name, shape: header.shape, descr: header.descr,
                                          declaredBytes: declaredBytes, foundBytes: foundBytes)
        }

        let count = byteCount / elementType.byteCount
        let payload = UnsafeRawBufferPointer(rebasing: bytes[dataStart...])
        // Every platform Swift runs on is little-endian, so `<` data loads as is.
        func load<Element>(_ type: Element.Type) -> [Element] {
            (0..<count).map { payload.loadUnaligned(fromByteOffset: $0 * MemoryLayout<Element>.size, as: Element.self) }
        }
        let storage: Storage
        switch elementType {
        case .float32: storage = .floats(load(Float.self))
        case .float64: storage = .floats(load(Double.self).map { Float($0) })
        case .int32: storage = .integers(load(Int32.self).map { Int($0) })
        case .int64: storage = .integers(load(Int64.self).map { Int($0) })
        case .uint8: storage = .integers(payload.map { Int($0) })
        // numpy reads any non-zero byte as True.
        case .bool: storage = .integers(payload.map { $0 == 0 ? 0 : 1 })
        }
        return (header.shape, elementType, storage)
    }
}

/// The three keys of an `.npy` header: `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
struct NumpyHeader {
    let descr: String
    let fortranOrder: Bool
    let shape: [Int]

    init(parsing text: String, array: String) throws {
        func malformed(_ detail: String) -> NumpyError { .malformedHeader(array: array, detail: detail) }
        var parser = PythonLiteralParser(text: text)
        let literal: PythonLiteral
        do { literal = try parser.parseValue() } catch let error as PythonLiteralParser.ParseError { throw malformed(error.description) }
        guard case .dictionary(let entries) = literal, parser.isAtEnd() else {
            throw malformed("expected one Python dict, found \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        var values: [String: PythonLiteral] = [:]
        for (key, value) in entries { values[key] = value }
        switch values["descr"] {
        case .string(let descr)?: self.descr = descr
        case .some(let other): self.descr = "a structured dtype \(other.sourceText)"
        case nil: throw malformed("no 'descr' key")
        }
        guard case .boolean(let fortranOrder)? = values["fortran_order"] else { throw malformed("no boolean 'fortran_order' key") }
        self.fortranOrder = fortranOrder
        guard case .sequence(let dimensions)? = values["shape"] else { throw malformed("no tuple 'shape' key") }
        shape = try dimensions.map { dimension in
            guard case .integer(let value) = dimension, value >= 0 else { throw malformed("shape holds \(dimension.sourceText), not a non-negative integer") }
            return value
        }
    }
}

/// The subset of Python literals that `.npy` headers use.
indirect enum PythonLiteral {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case none
    case sequence([PythonLiteral])
    case dictionary([(String, PythonLiteral)])

    /// Python-like text of the value, for error messages.
    var sourceText: String {
        switch self {
        case .string(let value): return "'\(value)'"
        case .integer(let value): return String(value)
        case .boolean(let value): return value ? "True" : "False"
        case .none: return "None"
        case .sequence(let items): return "(" + items.map(\.sourceText).joined(separator: ", ") + ")"
        case .dictionary(let entries): return "{" + entries.map { "'\($0.0)': \($0.1.sourceText)" }.joined(separator: ", ") + "}"
        }
    }
}

/// A recursive-descent parser for the Python literal `repr` that numpy writes into `.npy` headers.
struct PythonLiteralParser {
    private let characters: [Character]
    private var position = 0

    init(text: String) { characters = Array(text) }

    /// Whether only whitespace remains.
    mutating func isAtEnd() -> Bool {
        skipWhitespace()
        return position == characters.count
    }

    mutating func parseValue() throws -> PythonLiteral {
        skipWhitespace()
        guard let character = peek() else { throw ParseError("the header ends where a value was expected") }
        switch character {
        case "'", "\"": return .string(try parseString())
        case "(": return .sequence(try parseItems(closing: ")"))
        case "[": return .sequence(try parseItems(closing: "]"))
        case "{": return try parseDictionary()
        case "-", "0"..."9": return .integer(try parseInteger())
        default:
            for (word, value) in [("True", PythonLiteral.boolean(true)), ("False", .boolean(false)), ("None", .none)] where matches(word) {
                position += word.count
                return value
            }
            throw ParseError("unexpected character '\(character)' at offset \(position)")
        }
    }

    private mutating func parseDictionary() throws -> PythonLiteral {
        position += 1
        var entries: [(String, PythonLiteral)] = []
        while true {
            skipWhitespace()
            if peek() == "}" { position += 1; return .dictionary(entries) }
            guard case .string(let key) = try parseValue() else { throw ParseError("a dict key is not a string") }
            skipWhitespace()
            guard peek() == ":" else { throw ParseError("expected ':' after key '\(key)'") }
            position += 1
            entries.append((key, try parseValue()))
            try skipSeparator(closing: "}")
        }
    }

    private mutating func parseItems(closing: Character) throws -> [PythonLiteral] {
        position += 1
        var items: [PythonLiteral] = []
        while true {
            skipWhitespace()
            if peek() == closing { position += 1; return items }
            items.append(try parseValue())
            try skipSeparator(closing: closing)
        }
    }

    /// Consumes the ',' between items, or leaves the closing bracket for the caller.
    private mutating func skipSeparator(closing: Character) throws {
        skipWhitespace()
        switch peek() {
        case ",": position += 1
        case closing: break
        default: throw ParseError("expected ',' or '\(closing)' at offset \(position)")
        }
    }

    private mutating func parseString() throws -> String {
        let quote = characters[position]
        position += 1
        var value = ""
        while let character = peek(), character != quote {
            // numpy never escapes inside a descr or key, so a backslash means the header is not numpy's.
            guard character != "\\" else { throw ParseError("escaped characters in a string") }
            value.append(character)
            position += 1
        }
        guard peek() == quote else { throw ParseError("a string is not closed") }
        position += 1
        return value
    }

    private mutating func parseInteger() throws -> Int {
        var digits = ""
        if peek() == "-" { digits.append("-"); position += 1 }
        while let character = peek(), character.isASCII, character.isNumber { digits.append(character); position += 1 }
        // Python 2 numpy wrote long integers as `3L`.
        if peek() == "L" { position += 1 }
        guard let value = Int(digits) else { throw ParseError("'\(digits)' is not an integer that fits in 64 bits") }
        return value
    }

    private func peek() -> Character? { position < characters.count ? characters[position] : nil }

    private func matches(_ word: String) -> Bool {
        position + word.count <= characters.count && String(characters[position..<(position + word.count)]) == word
    }

    private mutating func skipWhitespace() {
        while let character = peek(), character.isWhitespace { position += 1 }
    }

    struct ParseError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
