import Foundation
import Algorithms
import Yams

/// A resolved config value, as `dppo config get` prints it and `dppo config show` writes it.
public enum ConfigValue: Sendable, Equatable {
    case int(Int)
    case double(Double)
    case bool(Bool)
    case string(String)
    case ints([Int])
    /// A mapping, as compact JSON text.
    case json(String)
    case schedule(LearningRateSchedule)
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
        case .schedule(let schedule):
            return "{first_cycle_steps: \(schedule.firstCycleSteps), warmup_steps: \(schedule.warmupSteps), min_lr: \(schedule.minLearningRate)}"
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
        case .schedule(let schedule):
            return ["first_cycle_steps": schedule.firstCycleSteps, "warmup_steps": schedule.warmupSteps, "min_lr": schedule.minLearningRate]
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
