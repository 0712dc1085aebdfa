import Foundation
import Algorithms
import Yams

/// Typed reads from one YAML mapping, remembering which keys were used so unknown ones are reported.
final class ConfigReader {
    /// The values read so far by a reader and its sections.
    final class Resolved {
        var entries: [(key: String, value: ConfigValue)] = []
    }

    let values: [String: Any]
    let path: String
    var used: Set<String> = []
    var children: [ConfigReader] = []
    let resolved: Resolved

    init(_ values: [String: Any], path: String, resolved: Resolved = Resolved()) {
        self.values = values
        self.path = path
        self.resolved = resolved
    }

    /// Notes that `name` resolved to `value`, and returns it.
    func noted<Value>(_ name: String, _ value: Value, as recorded: ConfigValue) -> Value {
        resolved.entries.append((key(name), recorded))
        return value
    }

    func key(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    func section(_ name: String) throws -> ConfigReader {
        used.insert(name)
        guard let raw = values[name] else {
            let child = ConfigReader([:], path: key(name), resolved: resolved); children.append(child); return child
        }
        guard let mapping = raw as? [String: Any] else { throw ConfigError("\(key(name)) must be a mapping") }
        let child = ConfigReader(mapping, path: key(name), resolved: resolved)
        children.append(child)
        return child
    }

    func raw(_ name: String) -> Any? {
        used.insert(name)
        guard let value = values[name], !(value is NSNull) else { return nil }
        return value
    }

    func int(_ name: String, default fallback: Int) throws -> Int {
        let result = try readInt(name) ?? fallback
        return noted(name, result, as: .int(result))
    }

    private func readInt(_ name: String) throws -> Int? {
        guard let value = raw(name) else { return nil }
        if let integer = value as? Int { return integer }
        if let double = value as? Double, double == double.rounded() { return Int(double) }
        throw ConfigError("\(key(name)) must be an integer, got '\(value)'")
    }

    func double(_ name: String, default fallback: Double) throws -> Double {
        let result = try readDouble(name) ?? fallback
        return noted(name, result, as: .double(result))
    }

    private func readDouble(_ name: String) throws -> Double? {
        guard let value = raw(name) else { return nil }
        if let double = value as? Double { return double }
        if let integer = value as? Int { return Double(integer) }
        throw ConfigError("\(key(name)) must be a number, got '\(value)'")
    }

    func optionalDouble(_ name: String, default fallback: Double?) throws -> Double? {
        let result: Double?
        if values[name] == nil {
            used.insert(name)
            result = fallback
        } else {
            result = try readDouble(name)
        }
        return noted(name, result, as: result.map(ConfigValue.double) ?? .null)
    }

    func bool(_ name: String, default fallback: Bool) throws -> Bool {
        var result = fallback
        if let value = raw(name) {
            guard let flag = value as? Bool else { throw ConfigError("\(key(name)) must be true or false, got '\(value)'") }
            result = flag
        }
        return noted(name, result, as: .bool(result))
    }

    func string(_ name: String, default fallback: String) throws -> String {
        var result = fallback
        if let value = raw(name) { result = value as? String ?? "\(value)" }
        return noted(name, result, as: .string(result))
    }

    /// A mapping, as compact JSON text (keyword arguments for the Gymnasium bridge).
    func json(_ name: String, default fallback: String) throws -> String {
        var result = fallback
        if let value = raw(name) {
            guard value is [String: Any], JSONSerialization.isValidJSONObject(value),
                  let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else {
                throw ConfigError("\(key(name)) must be a mapping of keyword arguments with plain values, got '\(value)'")
            }
            result = String(decoding: data, as: UTF8.self)
        }
        return noted(name, result, as: .json(result))
    }

    func ints(_ name: String, default fallback: [Int]) throws -> [Int] {
        var result = fallback
        if let value = raw(name) {
            guard let list = value as? [Any], let integers = list.map({ $0 as? Int }) as? [Int] else {
                throw ConfigError("\(key(name)) must be a list of integers, got '\(value)'")
            }
            result = integers
        }
        return noted(name, result, as: .ints(result))
    }

    /// A `{first_cycle_steps, warmup_steps, min_lr}` mapping, or nil when the key is absent.
    func learningRateSchedule(_ name: String) throws -> LearningRateSchedule? {
        guard values[name].map({ !($0 is NSNull) }) ?? false else { used.insert(name); return noted(name, nil, as: .null) }
        let section = try self.section(name)
        let schedule = LearningRateSchedule(firstCycleSteps: try section.int("first_cycle_steps", default: 1),
                                            warmupSteps: try section.int("warmup_steps", default: 0),
                                            minLearningRate: try section.double("min_lr", default: 0))
        guard schedule.firstCycleSteps > schedule.warmupSteps, schedule.warmupSteps >= 0, schedule.minLearningRate >= 0 else {
            throw ConfigError("\(key(name)) needs first_cycle_steps > warmup_steps ≥ 0 and min_lr ≥ 0")
        }
        return schedule
    }

    func rejectUnknownKeys() throws {
        let unknown = Set(values.keys).subtracting(used).sorted()
        if let first = unknown.first {
            throw ConfigError("unknown key '\(key(first))' (a typo? known keys here: \(used.sorted().joined(separator: ", ")))")
        }
        for child in children { try child.rejectUnknownKeys() }
    }
}

/// A resolved config value, as `dppo config get` prints it and `dppo config show` writes it.
public enum ConfigValue: Sendable, Equatable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    case ints([Int])
    /// A mapping, as compact JSON text.
    case json(String)
    case null

    /// The value as a shell script reads it: the plain text of a scalar, `[a, b]` for a list, `null` for none.
    public var text: String {
        switch self {
        case .int(let value): return String(value)
        case .double(let value): return "\(value)"
        case .bool(let value): return value ? "true" : "false"
        case .string(let value): return value
        case .ints(let values): return "[" + values.map(String.init).joined(separator: ", ") + "]"
        case .json(let text): return text
        case .null: return "null"
        }
    }

    var object: Any {
        switch self {
        case .int(let value): return value
        case .double(let value): return value
        case .bool(let value): return value
        case .string(let value): return value
        case .ints(let values): return values
        case .json(let text): return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) ?? [String: Any]()
        case .null: return NSNull()
        }
    }
}

extension RunConfig {
    /// The resolved value of `key` (e.g. `cluster.actors`); throws for a key the config does not have.
    public func resolvedValue(of key: String) throws -> ConfigValue {
        if let entry = resolvedValues.first(where: { $0.key == key }) { return entry.value }
        let section = key.split(separator: ".").first.map(String.init) ?? key
        let near = resolvedValues.map(\.key).filter { $0.hasPrefix(section + ".") || !$0.contains(".") }
        throw ConfigError("unknown key '\(key)' (keys here: \(near.joined(separator: ", ")))")
    }

    /// Every resolved key and value as YAML, sections nested, keys sorted.
    public func resolvedValuesYAML() throws -> String {
        var root: [String: Any] = [:]
        for (key, value) in resolvedValues {
            let path = key.split(separator: ".").map(String.init)
            func set(_ dictionary: inout [String: Any], _ rest: ArraySlice<String>) {
                guard let head = rest.first else { return }
                if rest.count == 1 { dictionary[head] = value.object; return }
                var child = dictionary[head] as? [String: Any] ?? [:]
                set(&child, rest.dropFirst())
                dictionary[head] = child
            }
            set(&root, path[...])
        }
        return try Yams.dump(object: root, sortKeys: true)
    }
}
