import XCTest
import Foundation
@testable import Cluster
import Tensors
import Transport

/// Real `dppo` processes on loopback, killed with SIGKILL mid-run: a replaced actor and a resumed learner must
/// still complete the run with exactly the configured environment steps and policy versions. Processes are
/// started and killed only by their PIDs, and every one of them is gone when a test returns.
final class FaultRestartTests: XCTestCase {
    static let iterations = 4
    /// Environment steps per iteration: 2 actors × 3 environments × 200 decisions × 2 actions per decision.
    static let stepsPerIteration = 2 * 3 * 200 * 2

    var children: [Child] = []
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dppo-fault-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for child in children { child.kill() }
        children = []
        try? FileManager.default.removeItem(at: directory)
    }

    /// SIGKILL actor 1 during the second iteration and start a new process with the same index: it rejoins, gets
    /// the current weights, re-sends the iteration from its first step, and the learner completes the run.
    func testKilledActorIsReplaced() throws {
        let binary = try Self.dppoBinary()
        let (config, start) = try prepare(port: Self.basePort(block: 0))
        let run = directory.appendingPathComponent("run")
        let learner = try launch(binary, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start], log: "learner")
        for index in 0..<2 { try launchActor(binary, config: config, index: index) }

        try waitFor("the first iteration", in: learner) { self.metricsIterations(run).contains(1) }
        children[2].kill() // actor 1
        XCTAssertTrue(learner.isRunning, "the run must still be going when the actor is killed; make the test's run longer")
        try launchActor(binary, config: config, index: 1)

        XCTAssertTrue(learner.wait(seconds: 60), "learner did not finish:\n\(logs())")
        XCTAssertEqual(learner.status, 0, "learner failed:\n\(logs())")
        let summary = try readJSON(run.appendingPathComponent("summary.json"))
        XCTAssertEqual(summary["env_steps"] as? Int, Self.iterations * Self.stepsPerIteration)
        XCTAssertEqual(summary["policy_version"] as? Int, Self.iterations + 1)
        XCTAssertEqual(metricsIterations(run), Array(0...Self.iterations))
        XCTAssertTrue(children[2].log().contains("actor 1: joined"), children[2].logTail())
        for actor in [children[2], children[3]] {
            XCTAssertTrue(actor.wait(seconds: 20), "actors exit when the run is over:\n\(actor.logTail())")
        }
    }

    /// SIGKILL the learner and restart it with `--resume`: the still-running actors reconnect by themselves, and
    /// iterations, policy versions and environment steps continue from the checkpoint. The checkpoints after the
    /// first are removed before the restart, as if the learner had died after publishing version 3 but before
    /// checkpointing it: actors that already hold a newer version than the checkpoint's must follow it back, and
    /// the metrics the killed learner wrote past the checkpoint must be replaced.
    func testKilledLearnerResumesFromItsCheckpoint() throws {
        let binary = try Self.dppoBinary()
        let (config, start) = try prepare(port: Self.basePort(block: 1))
        let run = directory.appendingPathComponent("run")
        let learner = try launch(binary, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start], log: "learner")
        for index in 0..<2 { try launchActor(binary, config: config, index: index) }

        let secondCheckpoint = run.appendingPathComponent("checkpoints/itr-2.json")
        try waitFor("the second checkpoint", in: learner) { FileManager.default.fileExists(atPath: secondCheckpoint.path) }
        learner.kill()
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.appendingPathComponent("checkpoints/final.json").path),
                       "the learner must be killed before the end; make the test's run longer")
        for later in 2..<Self.iterations {
            for suffix in ["safetensors", "json"] { try? FileManager.default.removeItem(at: run.appendingPathComponent("checkpoints/itr-\(later).\(suffix)")) }
        }
        XCTAssertTrue(metricsIterations(run).contains(2), "the killed learner logged iteration 2")
        let latest = try Checkpoint.readInfo(from: Checkpoint.latest(in: RunDirectory(url: run)))
        XCTAssertEqual(latest.iteration, 1)
        XCTAssertEqual(latest.policyVersion, 2)

        let resumed = try launch(binary, ["learner", "--config", config, "--resume", run.path], log: "learner-resumed")
        XCTAssertTrue(resumed.wait(seconds: 60), "resumed learner did not finish:\n\(logs())")
        XCTAssertEqual(resumed.status, 0, "resumed learner failed:\n\(logs())")
        XCTAssertFalse(resumed.log().contains("discarded 0 metrics records"), resumed.logTail())

        let summary = try readJSON(run.appendingPathComponent("summary.json"))
        XCTAssertEqual(summary["env_steps"] as? Int, Self.iterations * Self.stepsPerIteration)
        XCTAssertEqual(summary["policy_version"] as? Int, Self.iterations + 1)
        XCTAssertEqual(summary["iterations"] as? Int, Self.iterations)
        XCTAssertEqual(summary["resumed_from_iteration"] as? Int, latest.iteration)
        XCTAssertNotNil(summary["initial_eval_return"] as? Double)

        // One record per iteration, the killed learner's records past its checkpoint replaced by the resumed ones.
        let records = try metricsRecords(run)
        XCTAssertEqual(records.compactMap { $0["iteration"] as? Int }, Array(0...Self.iterations))
        for record in records {
            let iteration = record["iteration"] as! Int
            XCTAssertEqual(record["policy_version"] as? Int, iteration + 1, "version after iteration \(iteration)")
            XCTAssertEqual(record["env_steps"] as? Int, iteration * Self.stepsPerIteration, "env steps after iteration \(iteration)")
        }
        let firstResumed = records.first { $0["resumed_from_iteration"] != nil }
        XCTAssertEqual(firstResumed?["iteration"] as? Int, latest.iteration + 1)
        XCTAssertEqual(firstResumed?["policy_version"] as? Int, Int(latest.policyVersion) + 1)

        let final = try Checkpoint.readInfo(from: run.appendingPathComponent("checkpoints/final.safetensors"))
        XCTAssertEqual(final.iteration, Self.iterations)
        XCTAssertEqual(final.policyVersion, UInt64(Self.iterations + 1))
        XCTAssertEqual(final.environmentSteps, Self.iterations * Self.stepsPerIteration)
        XCTAssertEqual(final.actorOptimizerStep, final.criticOptimizerStep, "both optimizers stepped on every minibatch")

        for actor in children[1...2] {
            XCTAssertTrue(actor.log().contains("saying hello again"), "actors must notice the restart:\n\(actor.logTail())")
            XCTAssertTrue(actor.wait(seconds: 20), "actors exit when the run is over:\n\(actor.logTail())")
            XCTAssertEqual(actor.status, 0, actor.logTail())
        }
    }

    /// SIGTERM the learner mid-run: within 10 s it writes a checkpoint of its last whole iteration and summary.json
    /// (state `stopped`), tells the actors to shut down and exits 0; `--resume` with new actors then completes the run
    /// with every iteration in metrics.jsonl exactly once. A second signal within the grace window changes nothing.
    func testSIGTERMCheckpointsAndTheResumedRunCompletes() throws {
        let binary = try Self.dppoBinary()
        let (config, start) = try prepare(port: Self.basePort(block: 7))
        let run = directory.appendingPathComponent("run")
        let learner = try launch(binary, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start], log: "learner")
        for index in 0..<2 { try launchActor(binary, config: config, index: index) }

        try waitFor("the first iteration", in: learner) { self.metricsIterations(run).contains(1) }
        kill(learner.process.processIdentifier, SIGTERM)
        usleep(200_000)
        kill(learner.process.processIdentifier, SIGTERM) // within the grace window: the same request
        XCTAssertTrue(learner.wait(seconds: 10), "the learner must stop within 10 s of SIGTERM:\n\(logs())")
        XCTAssertEqual(learner.status, 0, logs())
        XCTAssertEqual(learner.process.terminationReason, .exit, "it exits, not killed by the signal")
        let summary = try readJSON(run.appendingPathComponent("summary.json"))
        XCTAssertEqual(summary["state"] as? String, "stopped")
        XCTAssertEqual(summary["stopped_by"] as? String, "SIGTERM")
        let done = try XCTUnwrap(summary["iterations_done"] as? Int)
        XCTAssertLessThan(done, Self.iterations, "stopped before the end; make the test's run longer")
        let checkpoint = try XCTUnwrap(summary["checkpoint"] as? String)
        XCTAssertEqual(try Checkpoint.readInfo(from: URL(fileURLWithPath: checkpoint)).iteration, done)
        XCTAssertEqual(try Checkpoint.latest(in: RunDirectory(url: run)).path, checkpoint)
        XCTAssertEqual(metricsIterations(run), Array(0...done), "no record of an abandoned update")
        for actor in children[1...2] {
            XCTAssertTrue(actor.wait(seconds: 20), "actors are told to shut down:\n\(actor.logTail())")
        }

        let resumed = try launch(binary, ["learner", "--config", config, "--resume", run.path], log: "learner-resumed")
        for index in 0..<2 { try launchActor(binary, config: config, index: index) }
        XCTAssertTrue(resumed.wait(seconds: 60), "resumed learner did not finish:\n\(logs())")
        XCTAssertEqual(resumed.status, 0, logs())
        let final = try readJSON(run.appendingPathComponent("summary.json"))
        XCTAssertEqual(final["state"] as? String, "finished")
        XCTAssertEqual(final["env_steps"] as? Int, Self.iterations * Self.stepsPerIteration)
        XCTAssertEqual(metricsIterations(run), Array(0...Self.iterations), "every iteration exactly once")
    }

    /// SIGTERM while the learner waits for its first batch (blocked in a socket receive, which the signal interrupts):
    /// it still checkpoints iteration 0 and exits 0 within 10 s, and the run resumes from that checkpoint.
    func testSIGTERMWhileWaitingForTheFirstBatch() throws {
        let binary = try Self.dppoBinary()
        let (config, start) = try prepare(port: Self.basePort(block: 7) + 150)
        let run = directory.appendingPathComponent("run")
        let learner = try launch(binary, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start], log: "learner")
        try waitFor("the initial evaluation", in: learner) { self.metricsIterations(run).contains(0) }
        usleep(300_000)
        kill(learner.process.processIdentifier, SIGTERM)
        XCTAssertTrue(learner.wait(seconds: 10), learner.logTail())
        XCTAssertEqual(learner.status, 0, learner.logTail())
        let summary = try readJSON(run.appendingPathComponent("summary.json"))
        XCTAssertEqual(summary["iterations_done"] as? Int, 0)
        XCTAssertEqual(try Checkpoint.readInfo(from: Checkpoint.latest(in: RunDirectory(url: run))).iteration, 0)
    }

    /// Two learners on one run directory: the second is refused (the directory is locked) and the first goes on.
    func testASecondLearnerOnTheSameRunDirectoryIsRefused() throws {
        let binary = try Self.dppoBinary()
        let (config, start) = try prepare(port: Self.basePort(block: -1)) // 23000–23900: no other test binds there
        let run = directory.appendingPathComponent("run")
        let first = try launch(binary, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start], log: "learner")
        try waitFor("the initial evaluation", in: first) { self.metricsIterations(run).contains(0) }
        // Refused before it binds its ports, so it may name the same ones.
        let second = try launch(binary, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start], log: "second")
        XCTAssertTrue(second.wait(seconds: 30), second.logTail())
        XCTAssertNotEqual(second.status, 0)
        XCTAssertTrue(second.log().contains("is in use by learner pid \(first.process.processIdentifier)"), second.logTail())
        XCTAssertTrue(first.isRunning, first.logTail())
        first.kill()
        // Once it is gone, a new run in the same directory is refused for holding one, and --resume is the way on.
        let third = try launch(binary, ["learner", "--config", config, "--run-dir", run.path, "--base-policy", start], log: "third")
        XCTAssertTrue(third.wait(seconds: 30), third.logTail())
        XCTAssertNotEqual(third.status, 0)
        XCTAssertTrue(third.log().contains("holds a run already"), third.logTail())
    }

    /// The batch rule of `Learner.collectBatch`, message by message: a stream restarted from step 0 replaces the
    /// partial one, a segment that does not continue its stream is dropped, and so is anything after a complete one.
    func testBatchKeepsOnlyCompleteContiguousStreams() throws {
        let port = Self.basePort(block: 2)
        let config = try RunConfig.parse(yaml: """
        name: fault
        env: {task: pendulum, n_envs: 1, act_steps: 2, horizon_steps: 2}
        model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: 1, n_steps: 4, batch_size: 8, update_epochs: 1, eval_episodes: 1, save_model_freq: 0}
        cluster: {actors: 2, base_port: \(port), segment_steps: 2, batch_timeout_s: 20}
        """)
        let model = PolicyModel(config: config)
        var random = Philox(seed: 1)
        model.initialize(random: &random)
        let start = directory.appendingPathComponent("start.safetensors")
        try Checkpoint.save(model: model, update: nil, info: CheckpointInfo(kind: "pretrain", iteration: 0, policyVersion: 0, environmentSteps: 0,
                                                                            model: model, normalization: nil), to: start)
        let learner = try Learner(config: config, run: try RunDirectory(url: directory.appendingPathComponent("run")), basePolicy: start)
        let chainWidth = config.recordWidth
        func segment(actor: Int, offset: Int, sequence: UInt64, marker: Float) throws -> [UInt8] {
            let data = Segment(policyVersion: 1, actorIndex: actor, stepOffset: offset, steps: 2, environments: 1,
                               observations: [Float](repeating: marker, count: 6), chains: [Float](repeating: 0, count: 2 * chainWidth),
                               rewards: [0, 0], terminated: [0, 0], truncated: [0, 0], firsts: [offset == 0 ? 1 : 0, 0],
                               nextObservations: [0, 0, 0], finalIndices: [], finalObservations: [], episodeReturns: [], episodeLengths: [])
            return try learner.codec.encode(data.message(sequence: sequence, observationWidth: 3, chainWidth: chainWidth))
        }
        let messages = [
            try segment(actor: 1, offset: 0, sequence: 1, marker: 5), try segment(actor: 1, offset: 2, sequence: 2, marker: 5),
            try segment(actor: 1, offset: 0, sequence: 3, marker: 6),   // after a complete stream: duplicate
            try segment(actor: 0, offset: 0, sequence: 1, marker: 1),
            try segment(actor: 0, offset: 2, sequence: 7, marker: 1),   // sequence gap: out of order
            try segment(actor: 0, offset: 0, sequence: 1, marker: 2),   // a restarted actor: replaces the partial stream
            try segment(actor: 0, offset: 2, sequence: 2, marker: 2),
        ]
        let push = try Socket(.push)
        try push.connect(Endpoints(basePort: port).trajectories)
        let sender = Thread {
            usleep(1_500_000) // the learner binds inside run
            for bytes in messages { _ = try? push.send(bytes) }
        }
        sender.start()
        let summary = try learner.run(log: { _ in })
        XCTAssertEqual(summary["env_steps"] as? Int, 2 * 4 * 2)
        XCTAssertEqual(learner.dropped, ["duplicate": 1, "out_of_order": 1, "restarted_stream": 1])
        for (stream, marker) in [(0, Float(2)), (1, Float(5))] {
            for step in 0..<4 {
                XCTAssertEqual(learner.assembler.batch.observations.row(learner.assembler.batch.row(stream: stream, step: step))[0], marker, "stream \(stream) step \(step)")
            }
        }
    }

    /// A resumed learner drops the killed learner's records past the checkpoint, and a half-written last line.
    func testResumeDiscardsMetricsPastTheCheckpoint() throws {
        let url = directory.appendingPathComponent("metrics.jsonl")
        try "{\"iteration\":0}\n{\"iteration\":1}\n{\"iteration\":2}\n{\"iteration\":3}\n{\"itera".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try MetricsWriter.discardRecords(after: 1, in: url), 3)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "{\"iteration\":0}\n{\"iteration\":1}\n")
        XCTAssertEqual(try MetricsWriter.discardRecords(after: 1, in: url), 0)
    }

    // MARK: - Support

    /// Writes the tiny run's config and a random starting policy; returns their paths.
    func prepare(port: Int) throws -> (config: String, start: String) {
        let yaml = """
        name: fault
        env: {task: pendulum, n_envs: 3, act_steps: 2, horizon_steps: 2}
        model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: \(Self.iterations), n_steps: 200, batch_size: 400, update_epochs: 2, val_freq: 100, eval_episodes: 2, save_model_freq: 1}
        cluster: {actors: 2, base_port: \(port), segment_steps: 20, batch_timeout_s: 40, learner_timeout_s: 3, reconnect_timeout_s: 60}
        """
        let configURL = directory.appendingPathComponent("config.yaml")
        try yaml.write(to: configURL, atomically: true, encoding: .utf8)
        let config = try RunConfig.parse(yaml: yaml)
        let model = PolicyModel(config: config)
        var random = Philox(seed: 1)
        model.initialize(random: &random)
        let start = directory.appendingPathComponent("start.safetensors")
        try Checkpoint.save(model: model, update: nil, info: CheckpointInfo(kind: "pretrain", iteration: 0, policyVersion: 0, environmentSteps: 0,
                                                                            model: model, normalization: nil), to: start)
        return (configURL.path, start.path)
    }

    /// Each test's own three ports: below Linux's ephemeral range (32768–60999), so no outgoing connection holds
    /// them, and apart from the other cluster tests' ranges.
    static func basePort(block: Int) -> Int { 24_000 + block * 1_000 + Int(getpid() % 300) * 3 }

    /// The `dppo` executable this test build produced, next to the test bundle (or `DPPO_BIN`).
    static func dppoBinary() throws -> URL {
        var candidates = ProcessInfo.processInfo.environment["DPPO_BIN"].map { [URL(fileURLWithPath: $0)] } ?? []
        for place in [Bundle.main.bundleURL, Bundle(for: FaultRestartTests.self).bundleURL, URL(fileURLWithPath: CommandLine.arguments[0])] {
            candidates += [place.appendingPathComponent("dppo"), place.deletingLastPathComponent().appendingPathComponent("dppo")]
        }
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) && !$0.hasDirectoryPath }) else {
            throw XCTSkip("no dppo executable next to the test bundle (looked at \(candidates.map(\.path))): build it with `swift build --build-tests`, or set DPPO_BIN")
        }
        return binary
    }

    @discardableResult
    func launch(_ binary: URL, _ arguments: [String], log name: String) throws -> Child {
        let child = try Child(binary: binary, arguments: arguments, log: directory.appendingPathComponent("\(name).log"))
        children.append(child)
        return child
    }

    func launchActor(_ binary: URL, config: String, index: Int) throws {
        try launch(binary, ["actor", "--config", config, "--index", String(index)], log: "actor-\(index)-\(children.count)")
    }

    /// Polls `condition` every 50 ms for up to 60 s; fails early when `process` exits first.
    func waitFor(_ what: String, in process: Child, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(60)
        while !condition() {
            guard process.isRunning else { throw Failure("\(what): the learner exited first:\n\(process.logTail())") }
            guard Date() < deadline else { throw Failure("\(what) did not happen within 60 s:\n\(process.logTail())") }
            usleep(50_000)
        }
    }

    /// The end of every child's log, for failure messages.
    func logs() -> String {
        children.map { "== \($0.logURL.lastPathComponent) (status \($0.status.map(String.init) ?? "running")):\n\($0.logTail())" }.joined(separator: "\n")
    }

    func metricsRecords(_ run: URL) throws -> [[String: Any]] {
        let text = (try? String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func metricsIterations(_ run: URL) -> [Int] {
        ((try? metricsRecords(run)) ?? []).compactMap { $0["iteration"] as? Int }
    }

    func readJSON(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], url.path)
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}

/// One child process of a test, with its output in a log file. Killed only by its own PID.
final class Child {
    let process = Process()
    let logURL: URL

    init(binary: URL, arguments: [String], log: URL) throws {
        logURL = log
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = binary
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var isRunning: Bool { process.isRunning }
    var status: Int32? { process.isRunning ? nil : process.terminationStatus }

    /// SIGKILL, then wait until it is gone.
    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        _ = wait(seconds: 10)
    }

    /// Waits up to `seconds` for the process to exit; true when it did.
    func wait(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    func log() -> String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func logTail(lines: Int = 25) -> String { log().split(separator: "\n").suffix(lines).joined(separator: "\n") }
}
