import XCTest
import Foundation
@testable import Cluster
import Tensors
import Transport

/// A freshly initialised policy of `config`'s kind, saved as `start.safetensors` in `directory`: the starting
/// checkpoint of the in-process cluster tests.
func writeRandomPolicy(config: RunConfig, to directory: URL) throws -> URL {
    let model = PolicyModel(config: config)
    var random = Philox(seed: 1)
    model.initialize(random: &random)
    let url = directory.appendingPathComponent("start.safetensors")
    try Checkpoint.save(model: model, update: nil, info: CheckpointInfo(kind: "pretrain", iteration: 0, policyVersion: 0, environmentSteps: 0,
                                                                        model: model, normalization: nil), to: url)
    return url
}

/// Runs a learner and two actors (threads of this process, over loopback TCP) to the end of `config`'s run in
/// `directory/run`; fails when an actor reports an error or does not exit within 30 s of the learner.
func runInProcessCluster(config: RunConfig, start: URL, in directory: URL,
                         file: StaticString = #filePath, line: UInt = #line) throws -> (run: RunDirectory, summary: [String: Any], lines: [String]) {
    let run = try RunDirectory(url: directory.appendingPathComponent("run"))
    let learner = try Learner(config: config, run: run, basePolicy: start)
    let finished = DispatchGroup()
    let actorErrors = ErrorCollector()
    for index in 0..<2 {
        finished.enter()
        Thread.detachNewThread {
            defer { finished.leave() }
            do { try Actor(config: config, learnerHost: "127.0.0.1", requestedIndex: index).run(giveUpSeconds: 30, log: { _ in }) }
            catch { actorErrors.append(error) }
        }
    }
    var lines: [String] = []
    let summary = try learner.run(log: { lines.append($0) })
    XCTAssertEqual(finished.wait(timeout: .now() + 30), .success, "actors must exit when the learner finishes", file: file, line: line)
    XCTAssertTrue(actorErrors.errors.isEmpty, "\(actorErrors.errors)", file: file, line: line)
    return (run, summary, lines)
}

/// Errors reported from actor threads.
final class ErrorCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [Error] = []
    func append(_ error: Error) { lock.lock(); collected.append(error); lock.unlock() }
    var errors: [Error] { lock.lock(); defer { lock.unlock() }; return collected }
}

/// Whether `python3` can import `modules` (e.g. "numpy, lz4.frame"): the tests that need Python packages skip without them.
func pythonHas(_ modules: String) -> Bool {
    let check = Process()
    check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    check.arguments = ["python3", "-c", "import \(modules)"]
    check.standardOutput = FileHandle.nullDevice
    check.standardError = FileHandle.nullDevice
    guard (try? check.run()) != nil else { return false }
    check.waitUntilExit()
    return check.terminationStatus == 0
}

/// Runs a short command to its end and returns its status and output (stdout and stderr together); `environment`
/// is added to this process's.
func runToEnd(_ executable: URL, _ arguments: [String], in directory: URL? = nil,
              environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

extension Messages {
    /// A `meta` tensor holding any JSON object: how tests forge control messages that the typed metas
    /// (`ControlMessages.swift`) would never produce.
    static func meta(_ object: [String: Any]) -> WireTensor {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return WireTensor(name: "meta", utf8: String(decoding: data, as: UTF8.self))
    }

    /// The `meta` of a reply as a plain JSON object, for assertions on its raw fields.
    static func readMeta(_ message: WireMessage) throws -> [String: Any] {
        let text = try message.tensor(named: "meta").text()
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "meta of \(message.kind)")
    }
}
