import Foundation
import Crypto
import Tensors

/// `manifest.json` in every run directory: what produced the run, so that it can be reproduced and its inputs
/// checked later (`dppo runs --check RUN`). Results are deterministic for the same binary, machine kind (the CPU
/// model and BLAS kernel below), thread count and rank count; README, "Determinism".
public struct RunManifest: Codable, Sendable, Equatable {
    public struct Input: Codable, Sendable, Equatable {
        public var path: String
        public var sha256: String
        public var bytes: Int
    }

    public var dppo: String
    public var job: String
    public var createdAt: String
    public var config: String
    public var configHash: String
    /// Role → file: `dataset`, `normalization`, `starting_checkpoint`, `init_critics`.
    public var inputs: [String: Input]
    public var host: String
    public var cpu: String
    public var blas: String
    public var blasKernel: String
    public var threads: Int
    public var ranks: Int

    enum CodingKeys: String, CodingKey {
        case dppo, job, createdAt = "created_at", config, configHash = "config_hash", inputs, host, cpu, blas
        case blasKernel = "blas_kernel", threads, ranks
    }

    public static func fileName() -> String { "manifest.json" }

    /// The manifest of `job` with the given input files (missing or empty paths are left out).
    public static func make(job: String, config: RunConfig, inputs: [String: String], threads: Int, ranks: Int = 1) throws -> RunManifest {
        var hashed: [String: Input] = [:]
        for (role, path) in inputs where !path.isEmpty && FileManager.default.fileExists(atPath: path) {
            hashed[role] = try hash(path)
        }
        let formatter = ISO8601DateFormatter()
        let blas = BLAS.library
        return RunManifest(dppo: Build.description, job: job, createdAt: formatter.string(from: Date()), config: "config.yaml",
                           configHash: String(config.compatibilityHash), inputs: hashed,
                           host: ProcessInfo.processInfo.hostName, cpu: cpuModel(), blas: blas.configuration, blasKernel: blas.kernel,
                           threads: threads, ranks: ranks)
    }

    /// SHA-256 of a file, read in 1 MiB pieces.
    public static func hash(_ path: String) throws -> Input {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw RunDirectoryError("cannot read \(path) to hash it") }
        defer { try? handle.close() }
        var hasher = SHA256()
        var bytes = 0
        while let piece = try handle.read(upToCount: 1 << 20), !piece.isEmpty {
            hasher.update(data: piece)
            bytes += piece.count
        }
        let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return Input(path: URL(fileURLWithPath: path).standardizedFileURL.path, sha256: digest, bytes: bytes)
    }

    /// `model name` of /proc/cpuinfo (or `unknown`).
    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return "unknown" }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    public func write(to directory: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(self).write(to: directory.appendingPathComponent(RunManifest.fileName()), options: .atomic)
    }

    public static func read(from directory: URL) throws -> RunManifest {
        let url = directory.appendingPathComponent(fileName())
        guard let data = FileManager.default.contents(atPath: url.path) else { throw RunDirectoryError("\(directory.path) has no \(fileName())") }
        do { return try JSONDecoder().decode(RunManifest.self, from: data) } catch {
            throw RunDirectoryError("\(url.path) is not a run manifest: \(error)")
        }
    }

    /// Each input hashed again: the roles whose file is gone or changed, with what was found.
    public func verify() -> [(role: String, problem: String)] {
        inputs.keys.sorted().compactMap { role in
            let input = inputs[role]!
            guard let now = try? RunManifest.hash(input.path) else { return (role, "\(input.path) is gone or unreadable") }
            guard now.sha256 == input.sha256 else {
                return (role, "\(input.path) changed: sha256 \(now.sha256.prefix(12))… (\(now.bytes) bytes), the run used \(input.sha256.prefix(12))… (\(input.bytes) bytes)")
            }
            return nil
        }
    }
}
