import Foundation
import Algorithms

/// An interval of real numbers, each end open or closed; every value must also be finite.
public struct NumberRange: Sendable, Equatable {
    public var lower: Double
    public var lowerOpen: Bool
    public var upper: Double
    public var upperOpen: Bool

    /// [lower, upper]
    public static func closed(_ lower: Double, _ upper: Double) -> NumberRange { NumberRange(lower: lower, lowerOpen: false, upper: upper, upperOpen: false) }
    /// (lower, upper]
    public static func above(_ lower: Double, upTo upper: Double) -> NumberRange { NumberRange(lower: lower, lowerOpen: true, upper: upper, upperOpen: false) }
    /// (lower, upper)
    public static func open(_ lower: Double, _ upper: Double) -> NumberRange { NumberRange(lower: lower, lowerOpen: true, upper: upper, upperOpen: true) }

    public func contains(_ value: Double) -> Bool {
        value.isFinite && (lowerOpen ? value > lower : value >= lower) && (upperOpen ? value < upper : value <= upper)
    }

    public var description: String {
        "\(lowerOpen ? "(" : "[")\(NumberRange.format(lower)), \(NumberRange.format(upper))\(upperOpen ? ")" : "]")"
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e6 { return String(Int(value)) }
        return "\(value)"
    }
}

/// What a text key accepts.
public enum TextRule: Sendable, Equatable {
    /// Any text, empty included (paths, where empty means none).
    case any
    /// Any text but the empty one.
    case nonEmpty
    /// A name that is safe as one path component: letters, digits, `.`, `_`, `-`, `+`; not starting with `.`.
    case runName
}

/// The values a key accepts: its type and its allowed range or choices.
public enum ConfigKind: Sendable, Equatable {
    case integer(ClosedRange<Int>)
    case number(NumberRange)
    /// A number, or null (`~`) for none.
    case optionalNumber(NumberRange)
    case flag
    case text(TextRule)
    case choice([String])
    /// A list of integers, each in `element`, with a length in `count`.
    case integers(element: ClosedRange<Int>, count: ClosedRange<Int>)
    /// A mapping of plain values, kept as compact JSON text.
    case mapping
    /// A `{first_cycle_steps, warmup_steps, min_lr}` learning-rate schedule, or null for none.
    case schedule
    /// `auto`, or a worker count in the range.
    case workers(ClosedRange<Int>)
    /// A key that no longer exists; the text says what replaced it.
    case retired(String)

    /// What the key accepts, as the error messages and docs/configuration.md say it.
    public var allowed: String {
        switch self {
        case .integer(let range): return "an integer from \(range.lowerBound) to \(range.upperBound)"
        case .number(let range): return "a number in \(range.description)"
        case .optionalNumber(let range): return "a number in \(range.description), or null"
        case .flag: return "true or false"
        case .text(.any): return "text"
        case .text(.nonEmpty): return "non-empty text"
        case .text(.runName): return "a name of letters, digits, '.', '_', '-' and '+' (not starting with '.'), at most 100 characters"
        case .choice(let choices): return "one of " + choices.joined(separator: ", ")
        case .integers(let element, let count):
            return "a list of \(count.lowerBound) to \(count.upperBound) integers from \(element.lowerBound) to \(element.upperBound)"
        case .mapping: return "a mapping of plain values"
        case .schedule: return "null or {first_cycle_steps, warmup_steps, min_lr} with first_cycle_steps > warmup_steps ≥ 0, min_lr ≥ 0"
        case .workers(let range): return "auto or a whole number from \(range.lowerBound) to \(range.upperBound)"
        case .retired(let replacement): return replacement
        }
    }
}

/// One configuration key, declared once: its path, the values it accepts, whether actors and learner must agree on
/// it (the compatibility hash), its help text, and where it lives in `RunConfig`. Parsing, range checks, the
/// unknown-key check, `dppo config get/show`, the hash and the tables of docs/configuration.md all come from the
/// list of these (`RunConfig.options`).
public struct ConfigOption: @unchecked Sendable {
    // @unchecked: every stored property is a constant after the options list is built, and `read`/`write` are
    // non-capturing key-path accessors (they touch only the RunConfig passed in).
    public let key: String
    public let kind: ConfigKind
    /// Part of `RunConfig.compatibilityHash`: actors and learner must agree on it.
    public let hashed: Bool
    /// Bookkeeping (iterations, evaluation and checkpoint cadence, ports, timeouts, threads, paths read only at the
    /// start): `--resume` may change it. Any other key changes the computation, and `--resume` refuses to change it
    /// without `--allow-changes`.
    public var changeableOnResume = false
    public let help: String
    let read: (RunConfig) -> ConfigValue
    let write: (inout RunConfig, ConfigValue) -> Void

    /// The value `RunConfig()` holds.
    public var defaultValue: ConfigValue { read(RunConfig()) }

    /// The value `raw` (from YAML; nil when the key is absent) stands for, checked against `kind`.
    func value(from raw: Any?) throws -> ConfigValue {
        // Absent: the field's default (target_kl's is 1). An explicit null (`~`) means none where a key allows it.
        guard let raw else { return defaultValue }
        if raw is NSNull {
            switch kind {
            case .optionalNumber, .schedule: return .null
            default: return defaultValue
            }
        }
        func refuse(_ shown: Any? = nil) -> ConfigError {
            ConfigError("\(key) = \(ConfigOption.show(shown ?? raw)): must be \(kind.allowed)")
        }
        switch kind {
        case .integer(let range):
            guard let integer = ConfigOption.integer(raw), range.contains(integer) else { throw refuse() }
            return .int(integer)
        case .number(let range), .optionalNumber(let range):
            guard let number = ConfigOption.number(raw), range.contains(number) else { throw refuse() }
            return .double(number)
        case .flag:
            guard let flag = raw as? Bool else { throw refuse() }
            return .bool(flag)
        case .text(let rule):
            guard let text = ConfigOption.scalarText(raw) else { throw refuse() }
            switch rule {
            case .any: break
            case .nonEmpty: guard !text.isEmpty else { throw refuse("") }
            case .runName: guard ConfigOption.isRunName(text) else { throw refuse() }
            }
            return .string(text)
        case .choice(let choices):
            guard let text = ConfigOption.scalarText(raw), choices.contains(text) else { throw refuse() }
            return .string(text)
        case .integers(let element, let count):
            guard let list = raw as? [Any], count.contains(list.count) else { throw refuse() }
            let integers = list.compactMap(ConfigOption.integer)
            guard integers.count == list.count, integers.allSatisfy(element.contains) else { throw refuse() }
            return .ints(integers)
        case .mapping:
            guard raw is [String: Any], JSONSerialization.isValidJSONObject(raw),
                  let data = try? JSONSerialization.data(withJSONObject: raw, options: [.sortedKeys, .withoutEscapingSlashes]) else { throw refuse() }
            return .json(String(decoding: data, as: UTF8.self))
        case .schedule:
            guard let mapping = raw as? [String: Any] else { throw refuse() }
            let known = ["first_cycle_steps", "warmup_steps", "min_lr"]
            if let unknown = mapping.keys.sorted().first(where: { !known.contains($0) }) {
                throw ConfigError("unknown key '\(key).\(unknown)' (known keys here: \(known.joined(separator: ", ")))")
            }
            let first = try mapping["first_cycle_steps"].map { try ConfigOption.scheduleInteger($0, "\(key).first_cycle_steps") } ?? 1
            let warmup = try mapping["warmup_steps"].map { try ConfigOption.scheduleInteger($0, "\(key).warmup_steps") } ?? 0
            let minimum = mapping["min_lr"].map { ConfigOption.number($0) } ?? 0
            guard let minimum, minimum >= 0, first > warmup, warmup >= 0 else { throw refuse() }
            return .schedule(LearningRateSchedule(firstCycleSteps: first, warmupSteps: warmup, minLearningRate: minimum))
        case .workers(let range):
            guard let text = ConfigOption.scalarText(raw) else { throw refuse() }
            if text == "auto" { return .string(text) }
            guard let count = Int(text), range.contains(count) else { throw refuse() }
            return .string(text)
        case .retired(let replacement):
            throw ConfigError("\(key) is gone: \(replacement)")
        }
    }

    /// An integer, also from a whole float (YAML `1e3`), never trapping on one out of Int's range.
    static func integer(_ raw: Any) -> Int? {
        if raw is Bool { return nil }
        if let integer = raw as? Int { return integer }
        if let double = raw as? Double { return Int(exactly: double) }
        return nil
    }

    static func number(_ raw: Any) -> Double? {
        if raw is Bool { return nil }
        if let double = raw as? Double { return double }
        if let integer = raw as? Int { return Double(integer) }
        return nil
    }

    private static func scheduleInteger(_ raw: Any, _ key: String) throws -> Int {
        guard let integer = integer(raw), (0...100_000_000).contains(integer) else {
            throw ConfigError("\(key) = \(show(raw)): must be an integer from 0 to 100000000")
        }
        return integer
    }

    /// A scalar as text (YAML reads `name: 7` as a number); nil for a list or a mapping.
    static func scalarText(_ raw: Any) -> String? {
        switch raw {
        case let text as String: return text
        case let flag as Bool: return flag ? "true" : "false"
        case let integer as Int: return String(integer)
        case let double as Double: return "\(double)"
        default: return nil
        }
    }

    static func isRunName(_ text: String) -> Bool {
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")
        return !text.isEmpty && text.count <= 100 && !text.hasPrefix(".") && text.unicodeScalars.allSatisfy(allowed.contains)
    }

    /// A value as the error shows it: text quoted, lists and mappings as YAML flow, long ones cut.
    static func show(_ raw: Any) -> String {
        let text: String
        switch raw {
        case let string as String: text = "'\(string)'"
        case let list as [Any]: text = "[" + list.map { show($0) }.joined(separator: ", ") + "]"
        case let mapping as [String: Any]: text = "{" + mapping.keys.sorted().map { "\($0): \(show(mapping[$0]!))" }.joined(separator: ", ") + "}"
        default: text = "\(raw)"
        }
        return text.count > 80 ? String(text.prefix(77)) + "…" : text
    }
}

// MARK: - Builders: one per Swift type of the field a key sets.

extension ConfigOption {
    static func int(_ key: String, _ path: WritableKeyPath<RunConfig, Int>, _ range: ClosedRange<Int>, hashed: Bool = false,
                    _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .integer(range), hashed: hashed, help: help, read: { .int($0[keyPath: path]) },
                     write: { config, value in if case .int(let integer) = value { config[keyPath: path] = integer } })
    }

    static func double(_ key: String, _ path: WritableKeyPath<RunConfig, Double>, _ range: NumberRange, hashed: Bool = false,
                       _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .number(range), hashed: hashed, help: help, read: { .double($0[keyPath: path]) },
                     write: { config, value in if case .double(let number) = value { config[keyPath: path] = number } })
    }

    static func optionalDouble(_ key: String, _ path: WritableKeyPath<RunConfig, Double?>, _ range: NumberRange,
                               hashed: Bool = false, _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .optionalNumber(range), hashed: hashed, help: help,
                     read: { $0[keyPath: path].map(ConfigValue.double) ?? .null },
                     write: { config, value in
                         if case .double(let number) = value { config[keyPath: path] = number } else { config[keyPath: path] = nil }
                     })
    }

    static func bool(_ key: String, _ path: WritableKeyPath<RunConfig, Bool>, hashed: Bool = false, _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .flag, hashed: hashed, help: help, read: { .bool($0[keyPath: path]) },
                     write: { config, value in if case .bool(let flag) = value { config[keyPath: path] = flag } })
    }

    static func string(_ key: String, _ path: WritableKeyPath<RunConfig, String>, accepting rule: TextRule = .any, hashed: Bool = false,
                       _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .text(rule), hashed: hashed, help: help, read: { .string($0[keyPath: path]) },
                     write: { config, value in if case .string(let text) = value { config[keyPath: path] = text } })
    }

    /// One of a fixed list of words, kept as text.
    static func word(_ key: String, _ path: WritableKeyPath<RunConfig, String>, _ choices: [String], hashed: Bool = false,
                     _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .choice(choices), hashed: hashed, help: help, read: { .string($0[keyPath: path]) },
                     write: { config, value in if case .string(let text) = value { config[keyPath: path] = text } })
    }

    static func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, _ path: WritableKeyPath<RunConfig, Choice>,
                                                                hashed: Bool = false, _ help: String) -> ConfigOption
    where Choice.RawValue == String {
        ConfigOption(key: key, kind: .choice(Choice.allCases.map(\.rawValue)), hashed: hashed, help: help,
                     read: { .string($0[keyPath: path].rawValue) },
                     write: { config, value in
                         if case .string(let text) = value, let choice = Choice(rawValue: text) { config[keyPath: path] = choice }
                     })
    }

    static func ints(_ key: String, _ path: WritableKeyPath<RunConfig, [Int]>, element: ClosedRange<Int>, count: ClosedRange<Int>,
                     hashed: Bool = false, _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .integers(element: element, count: count), hashed: hashed, help: help,
                     read: { .ints($0[keyPath: path]) },
                     write: { config, value in if case .ints(let integers) = value { config[keyPath: path] = integers } })
    }

    static func mapping(_ key: String, _ path: WritableKeyPath<RunConfig, String>, hashed: Bool = false, _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .mapping, hashed: hashed, help: help, read: { .json($0[keyPath: path]) },
                     write: { config, value in if case .json(let text) = value { config[keyPath: path] = text } })
    }

    static func schedule(_ key: String, _ path: WritableKeyPath<RunConfig, LearningRateSchedule?>, _ help: String) -> ConfigOption {
        ConfigOption(key: key, kind: .schedule, hashed: false, help: help,
                     read: { $0[keyPath: path].map(ConfigValue.schedule) ?? .null },
                     write: { config, value in
                         if case .schedule(let schedule) = value { config[keyPath: path] = schedule } else { config[keyPath: path] = nil }
                     })
    }

    /// The same key, marked as bookkeeping that `--resume` may change (`changeableOnResume`).
    var bookkeeping: ConfigOption {
        var option = self
        option.changeableOnResume = true
        return option
    }

    static func retired(_ key: String, _ replacement: String) -> ConfigOption {
        ConfigOption(key: key, kind: .retired(replacement), hashed: false, help: replacement, read: { _ in .null }, write: { _, _ in })
    }
}

// MARK: - docs/configuration.md

extension RunConfig {
    static let docsBegin = "<!-- begin generated: the declarations in Sources/Cluster/ConfigOptions.swift (dppo config docs --update docs/configuration.md) -->"
    static let docsEnd = "<!-- end generated -->"

    /// One table per section: key, default, what it accepts, whether it is hashed, and its help, between markers.
    public static func optionsMarkdown() -> String {
        var lines = [docsBegin]
        let sections: [(title: String, prefix: String)] = [("Top level", ""), ("`env`", "env."), ("`model`", "model."), ("`train`", "train."),
                                                           ("`pretrain`", "pretrain."), ("`offline`", "offline."), ("`cluster`", "cluster.")]
        func cell(_ text: String) -> String { text.replacingOccurrences(of: "|", with: "\\|") }
        for (title, prefix) in sections {
            let members = options.filter { option in
                if case .retired = option.kind { return false }
                return prefix.isEmpty ? !option.key.contains(".") : option.key.hasPrefix(prefix)
            }
            lines += ["", "## \(title)", "| key | default | accepts | hash | resume | meaning |", "|---|---|---|---|---|---|"]
            for option in members {
                let name = String(option.key.dropFirst(prefix.count))
                let shown = option.defaultValue.text
                let value = shown.isEmpty ? "\"\"" : "`\(shown)`"
                lines.append("| `\(name)` | \(cell(value)) | \(cell(option.kind.allowed)) | \(option.hashed ? "yes" : "") | "
                             + "\(option.changeableOnResume ? "may change" : "") | \(cell(option.help)) |")
            }
        }
        let retired = options.filter { if case .retired = $0.kind { return true } else { return false } }
        if !retired.isEmpty {
            lines += ["", "## Retired keys", "Refused with the message shown, so an old config fails loudly instead of being ignored.", ""]
            lines += retired.map { "- `\($0.key)`: \($0.help)" }
        }
        lines.append(docsEnd)
        return lines.joined(separator: "\n")
    }

    /// `text` with its generated block replaced by the current one (appended when it has none).
    public static func updatingOptionsMarkdown(in text: String) -> String {
        guard let begin = text.range(of: docsBegin), let end = text.range(of: docsEnd, range: begin.upperBound..<text.endIndex) else {
            return text + "\n" + optionsMarkdown() + "\n"
        }
        return String(text[..<begin.lowerBound]) + optionsMarkdown() + String(text[end.upperBound...])
    }
}
