import Foundation
import Transport

/// The JSON `meta` tensor of a control-plane message (docs/wire-format.md, "Message contents"), one Codable struct
/// per kind. Decoding is strict: a missing field, a field of the wrong type or range, and a field the kind does not
/// carry are errors that name the message and the field; nothing reads as a default.
protocol ControlMeta: Codable {
    associatedtype Fields: CodingKey & CaseIterable
    /// What a decoded value must also satisfy: the offending field, its value and what was expected, or nil.
    func problem() -> (field: Fields, value: Any, expected: String)?
}

extension ControlMeta {
    func problem() -> (field: Fields, value: Any, expected: String)? { nil }

    /// The `meta` tensor carrying this value.
    func tensor() throws -> WireTensor {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return WireTensor(name: "meta", utf8: String(decoding: try encoder.encode(self), as: UTF8.self))
    }

    /// The `meta` of a kind that may carry none (heartbeat, weights, heartbeat reply): nil when absent, and
    /// otherwise decoded as strictly as `init(from:)`.
    static func ifPresent(in message: WireMessage) throws(MessageError) -> Self? {
        guard message.tensors.contains(where: { $0.name == "meta" }) else { return nil }
        return try Self(from: message)
    }

    /// The `meta` of `message`, every field checked.
    init(from message: WireMessage) throws(MessageError) {
        let text: String
        do { text = try message.tensor(named: "meta").text() } catch { throw MessageError(message, "its meta tensor: \(error)") }
        let data = Data(text.utf8)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw MessageError(message, "its meta is not a JSON object")
        }
        let known = Set(Fields.allCases.map(\.stringValue))
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw MessageError(message, "meta field \(unknown) is not one a \(message.kind) carries (\(known.sorted().joined(separator: ", ")))")
        }
        do { self = try Self(from: MetaDecoder(object: object)) } catch let problem as MetaDecoder.Problem {
            throw MessageError(message, field: problem.field, object[problem.field], expected: problem.expected)
        } catch {
            throw MessageError(message, "its meta does not decode: \(error)")
        }
        if let problem = problem() { throw MessageError(message, field: problem.field.stringValue, problem.value, expected: problem.expected) }
    }
}

/// `hello`: the actor's config hash (decimal u64 in a string) and, optionally, the index it asks for.
struct HelloMeta: ControlMeta, Equatable {
    var configHash: String
    var requestedIndex: Int?

    enum CodingKeys: String, CodingKey, CaseIterable { case configHash = "config_hash", requestedIndex = "requested_index" }
    typealias Fields = CodingKeys

    func problem() -> (field: Fields, value: Any, expected: String)? {
        UInt64(configHash) == nil ? (.configHash, configHash, "a decimal u64 in a string") : nil
    }
}

/// `welcome`: the index granted, the actor's seed (decimal u64 in a string), the current version and the chain transport.
struct WelcomeMeta: ControlMeta, Equatable {
    var actorIndex: Int
    var seed: String
    var policyVersion: UInt64
    var chainTransport: ChainTransport
    var chainCheckEvery: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case actorIndex = "actor_index", seed, policyVersion = "policy_version"
        case chainTransport = "chain_transport", chainCheckEvery = "chain_check_every"
    }
    typealias Fields = CodingKeys

    /// The seed as a number (checked by `problem`).
    var seedValue: UInt64 { UInt64(seed) ?? 0 }

    func problem() -> (field: Fields, value: Any, expected: String)? {
        if UInt64(seed) == nil { return (.seed, seed, "a decimal u64 in a string") }
        if actorIndex < 0 { return (.actorIndex, actorIndex, "an integer ≥ 0") }
        if chainCheckEvery < 0 { return (.chainCheckEvery, chainCheckEvery, "an integer ≥ 0") }
        return nil
    }
}

/// `heartbeat`: the actor's statistics since it started (environment steps, finished episodes, its step rate while rolling out).
struct HeartbeatMeta: ControlMeta, Equatable {
    var envSteps: Int
    var episodes: Int
    var envStepsPerSecond: Double

    enum CodingKeys: String, CodingKey, CaseIterable {
        case envSteps = "env_steps", episodes, envStepsPerSecond = "env_steps_per_second"
    }
    typealias Fields = CodingKeys

    init(envSteps: Int, episodes: Int, envStepsPerSecond: Double) {
        self.envSteps = envSteps
        self.episodes = episodes
        self.envStepsPerSecond = envStepsPerSecond.isFinite ? envStepsPerSecond : 0
    }

    func problem() -> (field: Fields, value: Any, expected: String)? {
        if envSteps < 0 { return (.envSteps, envSteps, "an integer ≥ 0") }
        if episodes < 0 { return (.episodes, episodes, "an integer ≥ 0") }
        if !(envStepsPerSecond >= 0) { return (.envStepsPerSecond, envStepsPerSecond, "a number ≥ 0") }
        return nil
    }
}

/// `weights` and `heartbeatReply`: the chain transport actors should use (and how often a seeded actor sends full
/// chains for the learner's check; absent: unchanged) and, in a heartbeat reply, the version to roll again.
struct ChainSettingsMeta: ControlMeta, Equatable {
    var chainTransport: ChainTransport
    var chainCheckEvery: Int?
    var redoVersion: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case chainTransport = "chain_transport", chainCheckEvery = "chain_check_every", redoVersion = "redo_version"
    }
    typealias Fields = CodingKeys

    /// The version to roll again, as a number (checked by `problem`).
    var redo: UInt64? { redoVersion.flatMap { UInt64($0) } }

    func problem() -> (field: Fields, value: Any, expected: String)? {
        if let every = chainCheckEvery, every < 0 { return (.chainCheckEvery, every, "an integer ≥ 0") }
        if let redoVersion, UInt64(redoVersion) == nil { return (.redoVersion, redoVersion, "a decimal u64 in a string") }
        return nil
    }
}

/// `refusal`: why (snake_case, counted by the learner) and what to do.
struct RefusalMeta: ControlMeta, Equatable {
    var reason: String
    var detail: String

    enum CodingKeys: String, CodingKey, CaseIterable { case reason, detail }
    typealias Fields = CodingKeys
}

extension ChainTransport: Codable {}

/// Decodes a flat JSON object (as `JSONSerialization` reads it) into a `ControlMeta`, strictly and naming the
/// field: an integer field takes only a JSON integer in range (not 1.5, not "1", not true), a number field any
/// finite JSON number, a string field only a string, an enum only one of its raw values. (Foundation's
/// `JSONDecoder` on Linux reports a number out of range without the field's name.)
struct MetaDecoder: Decoder {
    struct Problem: Error { let field: String, expected: String }

    let object: [String: Any]
    var codingPath: [CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Fields(object: object))
    }
    func unkeyedContainer() throws -> UnkeyedDecodingContainer { throw Problem(field: "meta", expected: "an object of fields") }
    func singleValueContainer() throws -> SingleValueDecodingContainer { throw Problem(field: "meta", expected: "an object of fields") }

    struct Fields<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let object: [String: Any]
        var codingPath: [CodingKey] { [] }
        var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }
        func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }
        func decodeNil(forKey key: Key) throws -> Bool { object[key.stringValue] is NSNull }

        func value(_ key: Key) throws -> Any {
            guard let value = object[key.stringValue] else { throw Problem(field: key.stringValue, expected: "a value (the field is required)") }
            return value
        }
        /// A JSON number that is not a boolean (`JSONSerialization` reads both as NSNumber; a boolean's type code is "c").
        func number(_ key: Key, _ expected: String) throws -> NSNumber {
            guard let number = try value(key) as? NSNumber, !number.isBoolean else { throw Problem(field: key.stringValue, expected: expected) }
            return number
        }
        /// An integer written as one: its decimal text parses as `T` (so 1.5, 1e30 and, for unsigned types, −1 do not).
        func integer<T: FixedWidthInteger>(_ key: Key) throws -> T {
            guard let value = T(try number(key, "an integer").stringValue) else {
                throw Problem(field: key.stringValue, expected: "an integer in \(T.min)…\(T.max)")
            }
            return value
        }

        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
            guard let number = try value(key) as? NSNumber, number.isBoolean else {
                throw Problem(field: key.stringValue, expected: "true or false")
            }
            return number.boolValue
        }
        func decode(_ type: String.Type, forKey key: Key) throws -> String {
            guard let text = try value(key) as? String else { throw Problem(field: key.stringValue, expected: "a string") }
            return text
        }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
            let value = try number(key, "a number").doubleValue
            guard value.isFinite else { throw Problem(field: key.stringValue, expected: "a finite number") }
            return value
        }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float { Float(try decode(Double.self, forKey: key)) }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try integer(key) }
        func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try integer(key) }
        func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try integer(key) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try integer(key) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try integer(key) }
        func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try integer(key) }
        func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try integer(key) }
        func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try integer(key) }
        func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try integer(key) }
        func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try integer(key) }
        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            guard let raw = T.self as? any MetaEnum.Type else { throw Problem(field: key.stringValue, expected: "a field of a known type") }
            let text = try decode(String.self, forKey: key)
            guard let value = raw.init(metaValue: text) as? T else {
                throw Problem(field: key.stringValue, expected: "one of \(raw.metaValues.joined(separator: ", "))")
            }
            return value
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            throw Problem(field: key.stringValue, expected: "a plain value")
        }
        func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer { throw Problem(field: key.stringValue, expected: "a plain value") }
        func superDecoder() throws -> Decoder { throw Problem(field: "meta", expected: "a plain object") }
        func superDecoder(forKey key: Key) throws -> Decoder { throw Problem(field: key.stringValue, expected: "a plain value") }
    }
}

/// A string enum a control meta may carry.
protocol MetaEnum {
    init?(metaValue: String)
    static var metaValues: [String] { get }
}

extension ChainTransport: MetaEnum {
    init?(metaValue: String) { self.init(rawValue: metaValue) }
    static var metaValues: [String] { allCases.map(\.rawValue) }
}

extension NSNumber {
    /// Whether `JSONSerialization` read this from `true` or `false`.
    var isBoolean: Bool { String(cString: objCType) == "c" }
}
