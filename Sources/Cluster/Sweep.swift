import Foundation

/// A grid of config overrides, one run per combination, each a local cluster in its own directory under the sweep's
/// (`dppo sweep`). `sweep.json` holds the grid and every run's directory and state; running the same sweep again
/// skips finished runs, resumes the ones with a checkpoint and starts the others afresh.
public struct Sweep: Codable, Sendable, Equatable {
    public struct Run: Codable, Sendable, Equatable {
        public var name: String
        /// The grid's `key=value` for this run, in grid order.
        public var overrides: [String]
        public var directory: String
        /// pending, running, finished, preempted or failed.
        public var state: String
        public var attempts: Int
    }

    public var config: String
    /// The grid in the order given: key and its values as typed.
    public var grid: [Axis]
    /// The `--set` overrides every run gets.
    public var sets: [String]
    public var runs: [Run]

    public struct Axis: Codable, Sendable, Equatable {
        public var key: String
        public var values: [String]
    }

    /// `key=v1,v2,…` as `--grid` takes it; every value must resolve in the config (checked by the caller).
    public static func axis(_ text: String) throws -> Axis {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw ConfigError("--grid '\(text)' must look like key.path=value1,value2")
        }
        let key = String(text[..<equals])
        // Commas inside brackets belong to a list value (`model.mlp_dims=[64,64,64],[128,128,128]`).
        var values: [String] = [], current = "", depth = 0
        for character in text[text.index(after: equals)...] {
            if character == "[" || character == "{" { depth += 1 }
            if character == "]" || character == "}" { depth -= 1 }
            if character == "," && depth == 0 { values.append(current); current = ""; continue }
            current.append(character)
        }
        values.append(current)
        values = values.map { $0.trimmingCharacters(in: .whitespaces) }
        guard !values.contains(where: \.isEmpty) else { throw ConfigError("--grid '\(text)' has an empty value") }
        guard Set(values).count == values.count else { throw ConfigError("--grid '\(text)' repeats a value") }
        return Axis(key: key, values: values)
    }

    /// Every combination of the axes, the first axis varying slowest; each run named by its values, e.g.
    /// `seed=1,actor_lr=1e-4` (keys by their last component unless two axes share it).
    public static func plan(config: String, grid: [Axis], sets: [String], directory: URL) throws -> Sweep {
        guard !grid.isEmpty else { throw ConfigError("a sweep needs at least one --grid key=values") }
        let keys = grid.map(\.key)
        guard Set(keys).count == keys.count else { throw ConfigError("--grid names a key twice") }
        let lasts = keys.map { String($0.split(separator: ".").last ?? Substring($0)) }
        let short = Set(lasts).count == lasts.count ? lasts : keys
        var combinations: [[String]] = [[]]
        for axis in grid { combinations = combinations.flatMap { prefix in axis.values.map { prefix + [$0] } } }
        let runs = combinations.map { values -> Run in
            let name = zip(short, values).map { "\($0)=\($1)" }.joined(separator: ",")
                .map { "/ ".contains($0) ? "_" : String($0) }.joined()
            return Run(name: name, overrides: zip(keys, values).map { "\($0)=\($1)" }, directory: directory.appendingPathComponent(name).path,
                       state: "pending", attempts: 0)
        }
        let names = runs.map(\.name)
        if let clash = names.first(where: { name in names.filter { $0 == name }.count > 1 }) {
            throw ConfigError("two grid combinations would share the run directory \(clash) (values differing only in '/' or spaces)")
        }
        return Sweep(config: config, grid: grid, sets: sets, runs: runs)
    }

    public static let fileName = "sweep.json"

    public func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: directory.appendingPathComponent(Sweep.fileName), options: .atomic)
    }

    public static func read(from directory: URL) throws -> Sweep {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(fileName).path) else {
            throw ConfigError("\(directory.path) has no \(fileName)")
        }
        do { return try JSONDecoder().decode(Sweep.self, from: data) } catch {
            throw ConfigError("\(directory.appendingPathComponent(fileName).path) is not a sweep manifest: \(error)")
        }
    }

    /// What to do with a run now, from its directory: skip it (finished), resume it (it has a checkpoint), or start
    /// it (nothing there, or a failed start without a checkpoint, which is moved aside first).
    public enum Step: Equatable, Sendable { case skip, resume, start }

    public static func step(for run: Run) -> Step {
        let directory = URL(fileURLWithPath: run.directory)
        guard FileManager.default.fileExists(atPath: directory.path) else { return .start }
        if let summary = RunListing.readObject(directory.appendingPathComponent("summary.json")),
           (summary["state"] as? String ?? "finished") == "finished" { return .skip }
        let checkpoints = (try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("checkpoints").path)) ?? []
        return checkpoints.contains { $0.hasSuffix(".json") } ? .resume : .start
    }
}
