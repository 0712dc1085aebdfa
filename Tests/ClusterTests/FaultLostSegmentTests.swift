import XCTest
import Foundation
@testable import Cluster
import Tensors

/// Strict mode loses nothing to a segment that never arrives: the actor's heartbeats say it sent more than arrived, the
/// learner asks it to roll the version again, and the batch is completed with a whole, contiguous stream.
final class FaultLostSegmentTests: XCTestCase {
    func testLostSegmentIsRolledAgain() throws {
        let config = try RunConfig.parse(yaml: """
        name: test
        env: {task: pendulum, n_envs: 3, act_steps: 2, horizon_steps: 2}
        model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: 3, n_steps: 30, batch_size: 60, update_epochs: 1, val_freq: 3, eval_episodes: 2, save_model_freq: 3}
        cluster: {actors: 2, base_port: 24_730, segment_steps: 10, batch_timeout_s: 30, stall_timeout_s: 1}
        """)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let start = try writeRandomPolicy(config: config, to: directory)
        let learner = try Learner(config: config, run: try RunDirectory(url: directory.appendingPathComponent("run")), basePolicy: start)
        let finished = DispatchGroup()
        let errors = ErrorCollector()
        let actorLines = LineCollector()
        for index in 0..<2 {
            finished.enter()
            Thread.detachNewThread {
                defer { finished.leave() }
                do {
                    let actor = try Actor(config: config, learnerHost: "127.0.0.1", requestedIndex: index)
                    // Actor 1's 2nd segment (the middle of version 1's three) is lost, and so is the 6th, the last of
                    // version 1's second roll: two redos.
                    if index == 1 { actor.losesSegment = { $0 == 2 || $0 == 6 } }
                    try actor.run(giveUpSeconds: 30, log: actorLines.append)
                } catch { errors.append(error) }
            }
        }
        var lines: [String] = []
        let summary = try learner.run(log: { lines.append($0) })
        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success)
        XCTAssertTrue(errors.errors.isEmpty, "\(errors.errors)")
        XCTAssertEqual(summary["env_steps"] as? Int, 3 * 2 * 3 * 30 * 2)
        XCTAssertEqual(summary["policy_version"] as? UInt64, 4)
        XCTAssertEqual(summary["redo_requests"] as? Int, 2, lines.joined(separator: "\n"))
        let dropped = summary["dropped_segments"] as? [String: Int] ?? [:]
        // The first roll's segment before the lost one and the second roll's two are discarded when the stream restarts;
        // the first roll's 3rd segment did not continue the stream.
        XCTAssertEqual(dropped["restarted_stream"], 3, "\(dropped)")
        XCTAssertEqual(dropped["out_of_order"], 1, "\(dropped)")
        XCTAssertEqual(lines.filter { $0.contains("asking it to roll the version again") }.count, 2, lines.joined(separator: "\n"))
        XCTAssertEqual(actorLines.lines.filter { $0.contains("rolling it again") }.count, 2, actorLines.lines.joined(separator: "\n"))
        // The heartbeats that reported the loss also carried the actor's statistics, which reach the metrics.
        let records = try String(contentsOf: directory.appendingPathComponent("run/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let reported = records.compactMap { $0["actors/1/env_steps"] as? Int }
        XCTAssertFalse(reported.isEmpty, "no actor statistics in \(records)")
        XCTAssertGreaterThanOrEqual(reported.max() ?? 0, 30 * 3 * 2, "at least one version rolled by actor 1")
        XCTAssertTrue(records.contains { ($0["actors/env_steps_per_second"] as? Double ?? 0) > 0 })
    }
}

/// Log lines from actor threads.
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var collected: [String] = []
    func append(_ line: String) { lock.lock(); collected.append(line); lock.unlock() }
    var lines: [String] { lock.lock(); defer { lock.unlock() }; return collected }
}
