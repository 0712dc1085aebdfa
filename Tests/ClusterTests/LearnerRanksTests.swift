import XCTest
@testable import Cluster

/// Several learner processes (MPI ranks, docs/learner-scaling.md): `mpirun -np 2` against one rank on the same batch,
/// the same rank count twice, and a whole cluster run through `cluster/launch.sh --learner-ranks 2`. Skipped with a
/// message where Open MPI's `mpirun` is missing (scripts/install-deps.sh installs it, so CI runs them).
final class LearnerRanksTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func mpirun() throws -> URL { try Self.mpirun() }

    static func mpirun() throws -> URL {
        for directory in ["/usr/bin", "/usr/local/bin"] {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw XCTSkip("mpirun is missing: install openmpi-bin (scripts/install-deps.sh) to run the learner-rank tests")
    }

    /// Runs `executable arguments` with a deadline; the process is killed by its PID when it overruns.
    func run(_ executable: URL, _ arguments: [String], seconds: Double, log: URL) throws -> Int32 {
        // The child inherits this process's environment, which setUp prepared for mpirun as root.
        let child = try Child(binary: executable, arguments: arguments, log: log)
        guard child.wait(seconds: seconds) else {
            child.kill()
            throw FaultRestartTests.Failure("\(executable.lastPathComponent) \(arguments.joined(separator: " ")) ran past \(seconds) s:\n\(child.logTail())")
        }
        if child.status != 0 { XCTFail("exit \(child.status ?? -1):\n\(child.logTail())") }
        return child.status ?? -1
    }

    override func setUp() {
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1)
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1)
    }

    func rankCheck(_ binary: URL, ranks: Int, threads: Int, in directory: URL) throws -> RankCheckResult {
        let output = directory.appendingPathComponent("check-\(ranks)x\(threads)-\(UUID().uuidString.prefix(6)).json")
        let arguments = ["learner-rank-check", "--threads", String(threads), "--output", output.path]
        if ranks == 1 {
            _ = try run(binary, arguments, seconds: 120, log: directory.appendingPathComponent("check.log"))
        } else {
            _ = try run(try mpirun(), ["-np", String(ranks), "--bind-to", "none", "--oversubscribe", binary.path] + arguments, seconds: 120,
                        log: directory.appendingPathComponent("mpirun.log"))
        }
        return try JSONDecoder().decode(RankCheckResult.self, from: Data(contentsOf: output))
    }

    func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        XCTAssertEqual(a.count, b.count)
        var difference = 0.0, norm = 0.0
        for (x, y) in zip(a, b) { difference += Double(x - y) * Double(x - y); norm += Double(x) * Double(x) }
        return (difference / max(norm, 1e-30)).squareRoot()
    }

    /// 2 ranks against 1 on the same batches: parameters and losses within 1e-5 relative; 2 ranks twice: the same bits;
    /// 2 ranks × 1 thread against 1 rank × 2 threads: the same bits too (the same shards; gradients summed in the same
    /// tree, which holds whenever the threads per rank are a power of two; scalars in global shard order, always).
    func testTwoRanksAgreeWithOneRankAndRepeatBitForBit() throws {
        _ = try mpirun()
        let binary = try FaultRestartTests.dppoBinary()
        let directory = try makeTemporaryDirectory("dppo-learner-ranks")
        let one = try rankCheck(binary, ranks: 1, threads: 1, in: directory)
        let two = try rankCheck(binary, ranks: 2, threads: 1, in: directory)
        let again = try rankCheck(binary, ranks: 2, threads: 1, in: directory)
        let threads = try rankCheck(binary, ranks: 1, threads: 2, in: directory)
        XCTAssertEqual(two.ranks, 2)
        XCTAssertLessThan(relativeDifference(one.actor, two.actor), 1e-5)
        XCTAssertLessThan(relativeDifference(one.critic, two.critic), 1e-5)
        for (a, b) in zip(one.policyLoss + one.valueLoss, two.policyLoss + two.valueLoss) {
            XCTAssertLessThanOrEqual(abs(a - b), 1e-5 * max(abs(a), abs(b), 1))
        }
        XCTAssertEqual(two.checksum, again.checksum)
        XCTAssertTrue(two.actor.elementsEqual(again.actor) { $0.bitPattern == $1.bitPattern }, "2 ranks, twice")
        XCTAssertTrue(two.actor.elementsEqual(threads.actor) { $0.bitPattern == $1.bitPattern }, "2 ranks × 1 thread against 1 rank × 2 threads")
        XCTAssertTrue(two.critic.elementsEqual(threads.critic) { $0.bitPattern == $1.bitPattern })
    }

    /// A small Pendulum run of the default config for the launcher tests: a random starting policy in `directory`, and
    /// the `--set` arguments (32-wide networks, 4 environments, one thread per rank, `port`, that start) plus `extra`.
    func smallRun(in directory: URL, port: Int, extra: [String]) throws -> [String] {
        let sizes = ["model.mlp_dims=[32,32,32]", "model.critic_dims=[32,32,32]"]
        let config = try RunConfig.load(path: Self.repository.appendingPathComponent("configs/pendulum/finetune.yaml").path, overrides: sizes)
        let start = try writeRandomPolicy(config: config, to: directory)
        return (sizes + ["env.n_envs=4", "train.val_freq=0", "train.eval_episodes=2", "threads=1", "cluster.base_port=\(port)",
                         "pretrain.checkpoint=\(start.path)"] + extra).flatMap { ["--set", $0] }
    }

    /// The `iteration` of each record of a run's metrics.jsonl (0: the initial evaluation).
    func metricsIterations(_ run: URL) -> [Int] {
        ((try? String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)) ?? "").split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["iteration"] as? Int }
    }

    /// `cluster/launch.sh --learner-ranks 2`: the learner runs as 2 MPI ranks (rank 0 with the sockets), 2 actors
    /// connect to it, every iteration is written once, and the run finishes.
    func testLaunchWithTwoLearnerRanks() throws {
        _ = try mpirun()
        let binary = try FaultRestartTests.dppoBinary()
        let directory = try makeTemporaryDirectory("dppo-learner-ranks-run")
        let runDirectory = directory.appendingPathComponent("run")
        let arguments = [Self.repository.appendingPathComponent("cluster/launch.sh").path, "configs/pendulum/finetune.yaml", "--bin", binary.path,
                         "--learner-ranks", "2", "--run-dir", runDirectory.path]
            + (try smallRun(in: directory, port: FaultRestartTests.basePort(block: 3), extra: ["train.n_train_itr=3", "train.n_steps=20"]))
        let previous = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(Self.repository.path)
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
        XCTAssertEqual(try run(URL(fileURLWithPath: "/bin/bash"), arguments, seconds: 240, log: directory.appendingPathComponent("launch.log")), 0)
        let learnerLog = try String(contentsOf: runDirectory.appendingPathComponent("logs/learner.log"), encoding: .utf8)
        XCTAssertTrue(learnerLog.contains("× 2 ranks"), learnerLog)
        XCTAssertTrue(learnerLog.contains("learner rank 1/2"), learnerLog)
        XCTAssertEqual(metricsIterations(runDirectory), [0, 1, 2, 3], "the initial evaluation, then each iteration once")
        XCTAssertTrue(FileManager.default.fileExists(atPath: runDirectory.appendingPathComponent("summary.json").path))
    }

    /// A learner rank killed mid-run ends the whole learner within a bounded time (mpirun stops the other ranks, the
    /// launcher its actors); the last checkpoint is intact, and `--resume` with another rank count finishes the run with
    /// every iteration written once.
    func testDeadRankStopsTheLearnerAndTheRunResumesWithOneRank() throws {
        _ = try mpirun()
        let binary = try FaultRestartTests.dppoBinary()
        let directory = try makeTemporaryDirectory("dppo-learner-ranks-death")
        let runDirectory = directory.appendingPathComponent("run")
        let sets = try smallRun(in: directory, port: FaultRestartTests.basePort(block: 4),
                                extra: ["train.n_train_itr=8", "train.n_steps=40", "train.save_model_freq=1"])
        let launch = Self.repository.appendingPathComponent("cluster/launch.sh").path
        let previous = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(Self.repository.path)
        defer { FileManager.default.changeCurrentDirectoryPath(previous) }
        let cluster = try Child(binary: URL(fileURLWithPath: "/bin/bash"),
                                arguments: [launch, "configs/pendulum/finetune.yaml", "--bin", binary.path, "--learner-ranks", "2",
                                            "--run-dir", runDirectory.path] + sets,
                                log: directory.appendingPathComponent("launch.log"))
        defer { cluster.kill() }
        let learnerLog = runDirectory.appendingPathComponent("logs/learner.log")
        func iterations() -> [Int] { metricsIterations(runDirectory) }
        let deadline = Date().addingTimeInterval(120)
        while (iterations().max() ?? 0) < 2 {
            guard cluster.isRunning, Date() < deadline else { throw FaultRestartTests.Failure("no second iteration:\n\(cluster.logTail())") }
            usleep(50_000)
        }
        let text = try String(contentsOf: learnerLog, encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.contains("learner rank 1/2 (pid ") }),
              let pid = Int32(line.split(separator: "(pid ")[1].prefix { $0.isNumber }) else {
            throw FaultRestartTests.Failure("rank 1 did not log its pid:\n\(text)")
        }
        XCTAssertEqual(kill(pid, SIGKILL), 0, "rank 1 (pid \(pid)) is this test's grandchild")
        XCTAssertTrue(cluster.wait(seconds: 60), "the learner's other rank and the launcher must exit within 60 s of a rank's death")
        XCTAssertNotEqual(cluster.status, 0, "a dead rank is a failed run")
        let written = Set(iterations())
        XCTAssertLessThan(written.max() ?? 0, 8, "the run was cut short")

        let resumed = try Child(binary: URL(fileURLWithPath: "/bin/bash"),
                                arguments: [launch, "configs/pendulum/finetune.yaml", "--bin", binary.path, "--resume", runDirectory.path] + sets,
                                log: directory.appendingPathComponent("resume.log"))
        defer { resumed.kill() }
        XCTAssertTrue(resumed.wait(seconds: 180), "the resumed run finishes:\n\(resumed.logTail())")
        XCTAssertEqual(resumed.status, 0, resumed.logTail())
        XCTAssertEqual(iterations(), Array(0...8), "every iteration once, the initial evaluation first")
    }

    /// A rank whose config differs from rank 0's refuses to start, and the whole learner exits with an error instead of
    /// waiting (mpirun's MPMD form gives rank 1 another learning rate).
    func testRanksWithDifferentConfigsRefuseToStart() throws {
        let mpirun = try mpirun()
        let binary = try FaultRestartTests.dppoBinary()
        let directory = try makeTemporaryDirectory("dppo-learner-ranks-mismatch")
        let configPath = Self.repository.appendingPathComponent("configs/pendulum/finetune.yaml").path
        let sets = ["model.mlp_dims=[32,32,32]", "model.critic_dims=[32,32,32]", "train.eval_episodes=1", "threads=1",
                    "cluster.base_port=\(FaultRestartTests.basePort(block: 5))"]
        let start = try writeRandomPolicy(config: try RunConfig.load(path: configPath, overrides: sets), to: directory)
        let learner = [binary.path, "learner", "--config", configPath] + sets.flatMap { ["--set", $0] }
        let child = try Child(binary: mpirun, arguments: ["--bind-to", "none", "--oversubscribe", "-np", "1"] + learner
                                + ["--run-dir", directory.appendingPathComponent("run").path, "--base-policy", start.path]
                                + [":", "-np", "1"] + learner + ["--set", "train.actor_lr=0.5"],
                              log: directory.appendingPathComponent("mpirun.log"))
        defer { child.kill() }
        XCTAssertTrue(child.wait(seconds: 60), "the learner must not wait for a rank that refused:\n\(child.logTail())")
        XCTAssertNotEqual(child.status, 0)
        XCTAssertTrue(child.log().contains("differs from rank 0's"), child.logTail())
    }
}
