import Foundation

/// The shared secret of a run: the learner and its actors sign every message with it
/// (HMAC-SHA256, docs/wire-format.md) and drop whatever is not signed with it.
///
/// The key is written as hexadecimal text, at least 16 bytes (32 hex digits); whitespace around
/// it, such as a trailing newline, is ignored. `openssl rand -hex 32 > cluster.key` makes a good one.
/// It comes from, first match wins:
///
/// 1. `DPPO_CLUSTER_KEY`, the key itself;
/// 2. `DPPO_CLUSTER_KEY_FILE`, a file holding it;
/// 3. the config key `cluster.key_file`, a file holding it.
///
/// Never from the command line, where every user of the machine can read it in the process list.
/// The key is not part of `RunConfig.compatibilityHash`: a peer with another key learns nothing
/// from the hash, and is refused by the tag check instead.
public struct ClusterKey: Sendable, CustomStringConvertible {
    /// The fewest key bytes accepted.
    public static let minimumBytes = 16
    /// The environment variable holding the key itself.
    public static let keyVariable = "DPPO_CLUSTER_KEY"
    /// The environment variable naming a file that holds the key.
    public static let keyFileVariable = "DPPO_CLUSTER_KEY_FILE"

    /// The key, for `WireCodec(key:)`. Never log it.
    public let bytes: [UInt8]

    /// Parses hexadecimal key text; `source` names where it came from in error messages.
    public init(hex text: String, source: String) throws {
        let digits = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        let values = digits.map(Self.hexValue)
        guard digits.count % 2 == 0, !values.contains(nil) else {
            throw ConfigError("the cluster key from \(source) is not hexadecimal (an even number of 0-9, a-f digits); make one with `openssl rand -hex 32`")
        }
        bytes = stride(from: 0, to: values.count, by: 2).map { values[$0]! << 4 | values[$0 + 1]! }
        guard bytes.count >= Self.minimumBytes else {
            throw ConfigError("the cluster key from \(source) has \(bytes.count) bytes, it needs at least \(Self.minimumBytes) (\(2 * Self.minimumBytes) hex digits); make one with `openssl rand -hex 32`")
        }
    }

    /// The run's key, or nil when none is configured (messages are then not authenticated).
    ///
    /// Throws when both environment variables are set, or the key file cannot be read or holds no
    /// valid key; warns through `warn` when the key file is readable by every user of the machine.
    public static func load(
        config: RunConfig,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        warn: (String) -> Void = Cluster.log
    ) throws -> ClusterKey? {
        let key = environment[keyVariable]
        let keyFile = environment[keyFileVariable]
        // Set but empty is a mistake (an unset shell variable, a failed `$(cat …)`), never "no key": fail closed.
        for (name, value) in [(keyVariable, key), (keyFileVariable, keyFile)] where value?.trimmingCharacters(in: .whitespaces).isEmpty == true {
            throw ConfigError("\(name) is set but empty: give it the key\(name == keyFileVariable ? " file's path" : ""), or unset it")
        }
        if key != nil && keyFile != nil {
            throw ConfigError("both \(keyVariable) and \(keyFileVariable) are set: set only one")
        }
        if let key { return try ClusterKey(hex: key, source: keyVariable) }
        if let keyFile { return try read(file: keyFile, source: keyFileVariable, warn: warn) }
        if !config.cluster.keyFile.isEmpty { return try read(file: config.cluster.keyFile, source: "cluster.key_file", warn: warn) }
        return nil
    }

    /// Reads a key file, warning when every user of the machine may read it.
    static func read(file path: String, source: String, warn: (String) -> Void) throws -> ClusterKey {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("cannot read the cluster key file \(path) (from \(source)): check the path and that this user may read it")
        }
        let permissions = (try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions]
        if let mode = (permissions as? Int) ?? (permissions as? NSNumber)?.intValue, mode & 0o004 != 0 {
            warn("warning: the cluster key file \(path) is readable by every user of this machine (mode \(String(mode & 0o777, radix: 8))): run chmod 600 \(path)")
        }
        return try ClusterKey(hex: String(decoding: data, as: UTF8.self), source: "\(path) (\(source))")
    }

    /// Whether `host` is a loopback address, which only this machine can reach.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// The learner's key, refusing to listen beyond loopback without one unless `cluster.allow_unauthenticated`.
    public static func forLearner(config: RunConfig, environment: [String: String] = ProcessInfo.processInfo.environment,
                                  warn: (String) -> Void = Cluster.log) throws -> ClusterKey? {
        let key = try load(config: config, environment: environment, warn: warn)
        if key == nil && !isLoopback(config.cluster.host) {
            guard config.cluster.allowUnauthenticated else {
                throw ConfigError("cluster.host \(config.cluster.host) is reachable from other machines and the run has no cluster key: anyone "
                                  + "who reaches the ports could send it data. Set \(keyFileVariable) or cluster.key_file (openssl rand -hex 32), "
                                  + "or cluster.allow_unauthenticated: true on a network you trust")
            }
            warn("warning: cluster.host \(config.cluster.host) without a cluster key (cluster.allow_unauthenticated): messages are not authenticated")
        }
        return key
    }

    /// The key's size only, so that printing a key by mistake does not leak it.
    public var description: String { "ClusterKey(\(bytes.count) bytes)" }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
