import XCTest
import Foundation
@testable import Cluster
import Tensors

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
