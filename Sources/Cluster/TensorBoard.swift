import Foundation
import SwiftProtobuf

// TensorBoard's event files, written natively: TFRecord framing around `Event` protobufs. Only the fields a
// scalar log needs are declared, with TensorFlow's field numbers (event.proto, summary.proto); the format is in
// docs/tensorboard.md.

/// `tensorflow.Event`: `wall_time` 1, `step` 2, and one of `file_version` 3, `summary` 5, `session_log` 6.
struct TensorBoardEvent: Sendable, Equatable {
    var wallTime = 0.0
    var step: Int64 = 0
    var fileVersion: String?
    var summary: TensorBoardSummary?
    var sessionLog: TensorBoardSessionLog?
    var unknownFields = UnknownStorage()
}

/// `tensorflow.Summary`: repeated `value` 1.
struct TensorBoardSummary: Sendable, Equatable {
    var values: [Value] = []
    var unknownFields = UnknownStorage()

    /// `tensorflow.Summary.Value`: `tag` 1, `simple_value` 2.
    struct Value: Sendable, Equatable {
        var tag = ""
        var simpleValue: Float = 0
        var unknownFields = UnknownStorage()
    }
}

/// `tensorflow.SessionLog`: `status` 1 (1 = START: TensorBoard drops the events of earlier steps' futures, which
/// is what a resumed run needs).
struct TensorBoardSessionLog: Sendable, Equatable {
    var status: Int32 = 0
    var unknownFields = UnknownStorage()
}

extension TensorBoardEvent: Message, _MessageImplementationBase, _ProtoNameProviding {
    static let protoMessageName = "tensorflow.Event"

    static func == (a: Self, b: Self) -> Bool {
        a.wallTime == b.wallTime && a.step == b.step && a.fileVersion == b.fileVersion && a.summary == b.summary
            && a.sessionLog == b.sessionLog && a.unknownFields == b.unknownFields
    }
    static let _protobuf_nameMap: _NameMap = [1: .same(proto: "wall_time"), 2: .same(proto: "step"), 3: .same(proto: "file_version"),
                                              5: .same(proto: "summary"), 6: .same(proto: "session_log")]

    mutating func decodeMessage<D: Decoder>(decoder: inout D) throws {
        while let field = try decoder.nextFieldNumber() {
            switch field {
            case 1: try decoder.decodeSingularDoubleField(value: &wallTime)
            case 2: try decoder.decodeSingularInt64Field(value: &step)
            case 3: try decoder.decodeSingularStringField(value: &fileVersion)
            case 5: try decoder.decodeSingularMessageField(value: &summary)
            case 6: try decoder.decodeSingularMessageField(value: &sessionLog)
            default: break
            }
        }
    }

    func traverse<V: Visitor>(visitor: inout V) throws {
        if wallTime != 0 { try visitor.visitSingularDoubleField(value: wallTime, fieldNumber: 1) }
        if step != 0 { try visitor.visitSingularInt64Field(value: step, fieldNumber: 2) }
        if let fileVersion { try visitor.visitSingularStringField(value: fileVersion, fieldNumber: 3) }
        if let summary { try visitor.visitSingularMessageField(value: summary, fieldNumber: 5) }
        if let sessionLog { try visitor.visitSingularMessageField(value: sessionLog, fieldNumber: 6) }
        try unknownFields.traverse(visitor: &visitor)
    }
}

extension TensorBoardSummary: Message, _MessageImplementationBase, _ProtoNameProviding {
    static let protoMessageName = "tensorflow.Summary"

    static func == (a: Self, b: Self) -> Bool { a.values == b.values && a.unknownFields == b.unknownFields }
    static let _protobuf_nameMap: _NameMap = [1: .same(proto: "value")]

    mutating func decodeMessage<D: Decoder>(decoder: inout D) throws {
        while let field = try decoder.nextFieldNumber() {
            if field == 1 { try decoder.decodeRepeatedMessageField(value: &values) }
        }
    }

    func traverse<V: Visitor>(visitor: inout V) throws {
        if !values.isEmpty { try visitor.visitRepeatedMessageField(value: values, fieldNumber: 1) }
        try unknownFields.traverse(visitor: &visitor)
    }
}

extension TensorBoardSummary.Value: Message, _MessageImplementationBase, _ProtoNameProviding {
    static let protoMessageName = "tensorflow.Summary.Value"

    static func == (a: Self, b: Self) -> Bool { a.tag == b.tag && a.simpleValue == b.simpleValue && a.unknownFields == b.unknownFields }
    static let _protobuf_nameMap: _NameMap = [1: .same(proto: "tag"), 2: .same(proto: "simple_value")]

    mutating func decodeMessage<D: Decoder>(decoder: inout D) throws {
        while let field = try decoder.nextFieldNumber() {
            switch field {
            case 1: try decoder.decodeSingularStringField(value: &tag)
            case 2: try decoder.decodeSingularFloatField(value: &simpleValue)
            default: break
            }
        }
    }

    func traverse<V: Visitor>(visitor: inout V) throws {
        if !tag.isEmpty { try visitor.visitSingularStringField(value: tag, fieldNumber: 1) }
        // Always written, zero included: a value with no simple_value field would read as another kind of summary.
        try visitor.visitSingularFloatField(value: simpleValue, fieldNumber: 2)
        try unknownFields.traverse(visitor: &visitor)
    }
}

extension TensorBoardSessionLog: Message, _MessageImplementationBase, _ProtoNameProviding {
    static let protoMessageName = "tensorflow.SessionLog"

    static func == (a: Self, b: Self) -> Bool { a.status == b.status && a.unknownFields == b.unknownFields }
    static let _protobuf_nameMap: _NameMap = [1: .same(proto: "status")]

    mutating func decodeMessage<D: Decoder>(decoder: inout D) throws {
        while let field = try decoder.nextFieldNumber() {
            if field == 1 { try decoder.decodeSingularInt32Field(value: &status) }
        }
    }

    func traverse<V: Visitor>(visitor: inout V) throws {
        if status != 0 { try visitor.visitSingularInt32Field(value: status, fieldNumber: 1) }
        try unknownFields.traverse(visitor: &visitor)
    }
}

/// TFRecord framing: u64 length, masked CRC32C of the length, the data, masked CRC32C of the data (little-endian).
enum TFRecord {
    static func frame(_ data: Data) -> Data {
        var length = UInt64(data.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Data($0) }
        var out = Data(capacity: data.count + 16)
        out.append(lengthBytes)
        appendLittleEndian(maskedCRC32C(lengthBytes), to: &out)
        out.append(data)
        appendLittleEndian(maskedCRC32C(data), to: &out)
        return out
    }

    /// The records of a file, each checked against its two CRCs; nil when the framing is broken.
    static func records(in data: Data) -> [Data]? {
        var records: [Data] = [], offset = 0
        let bytes = [UInt8](data)
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        while offset < bytes.count {
            guard offset + 12 <= bytes.count else { return nil }
            let length = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
            guard maskedCRC32C(Data(bytes[offset..<(offset + 8)])) == u32(offset + 8), length <= UInt64(bytes.count - offset - 16) else { return nil }
            let start = offset + 12, end = start + Int(length)
            let record = Data(bytes[start..<end])
            guard maskedCRC32C(record) == u32(end) else { return nil }
            records.append(record)
            offset = end + 4
        }
        return records
    }

    static func appendLittleEndian(_ value: UInt32, to data: inout Data) {
        var little = value.littleEndian
        withUnsafeBytes(of: &little) { data.append(contentsOf: $0) }
    }

    /// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), rotated right by 15 and offset by 0xa282ead8.
    static func maskedCRC32C(_ data: Data) -> UInt32 {
        let crc = crc32c(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
    }

    static func crc32c(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
        return value
    }
}

/// An event file in `RUN/tb/`: every numeric field of each metrics record as a scalar at the record's step.
final class TensorBoardWriter {
    let handle: FileHandle
    let url: URL

    /// Opens a new file `events.out.tfevents.<seconds>.<host>.<pid>` in `directory`; `resumedAt`: the first step this
    /// process writes in a resumed run, announced with a SessionLog START so TensorBoard drops older steps past it.
    init(directory: URL, resumedAt: Int? = nil) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let now = Date().timeIntervalSince1970
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(now)).\(host).\(getpid())")
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw RunDirectoryError("cannot create the TensorBoard event file \(url.path)")
        }
        handle = try FileHandle(forWritingTo: url)
        try append(TensorBoardEvent(wallTime: now, fileVersion: "brain.Event:2"))
        if let resumedAt {
            try append(TensorBoardEvent(wallTime: now, step: Int64(resumedAt), sessionLog: TensorBoardSessionLog(status: 1)))
        }
    }

    deinit { try? handle.close() }

    func append(_ event: TensorBoardEvent) throws {
        try handle.write(contentsOf: TFRecord.frame(try event.serializedData()))
    }

    /// The record's numbers (and booleans, as 0/1) as scalars tagged by their keys (nested ones joined with `/`);
    /// text and nulls are skipped. `step`: the record's `iteration`, `step` or `epoch`.
    func write(record: [String: Any], step: Int) throws {
        var values: [TensorBoardSummary.Value] = []
        func add(_ key: String, _ value: Any) {
            switch value {
            case let flag as Bool where type(of: value) == Bool.self: values.append(.init(tag: key, simpleValue: flag ? 1 : 0))
            case let integer as Int: values.append(.init(tag: key, simpleValue: Float(integer)))
            case let number as Double: values.append(.init(tag: key, simpleValue: Float(number)))
            case let nested as [String: Any]: for name in nested.keys.sorted() { add("\(key)/\(name)", nested[name]!) }
            default: break
            }
        }
        for key in record.keys.sorted() { add(key, record[key]!) }
        guard !values.isEmpty else { return }
        try append(TensorBoardEvent(wallTime: Date().timeIntervalSince1970, step: Int64(step), summary: TensorBoardSummary(values: values)))
    }

    /// The step of a metrics record: its iteration (learner), step (offline) or epoch (pretrain).
    static func step(of record: [String: Any]) -> Int? {
        for key in ["iteration", "step", "critic_pretrain_step", "epoch"] { if let step = record[key] as? Int { return step } }
        return nil
    }
}
