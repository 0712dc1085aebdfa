import XCTest
import Foundation
@testable import Cluster

/// `dppo compare`: the statistics, their bootstrap intervals, and a folder of awkward runs.
final class RunComparisonTests: XCTestCase {
    func testStatisticsByHand() {
        XCTAssertEqual(RunComparison.mean([1, 2, 3, 10]), 4)
        XCTAssertEqual(RunComparison.median([3, 1, 2]), 2)
        XCTAssertEqual(RunComparison.median([4, 1, 3, 2]), 2.5)
        XCTAssertEqual(RunComparison.standardDeviation([2, 4, 4, 4, 5, 5, 7, 9]), (32.0 / 7).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(RunComparison.standardDeviation([5]), 0)
        // IQM as rliable (scipy's trim_mean(x, 0.25)): ⌊n/4⌋ cut from each end. Of 8 values the 3rd to 6th; of 5 the
        // middle 3; of 3 all of them.
        XCTAssertEqual(RunComparison.interquartileMean([1, 2, 3, 4, 5, 6, 7, 100]), 4.5, accuracy: 1e-12)
        XCTAssertEqual(RunComparison.interquartileMean([100, 1, 2, 3, -50]), 2, accuracy: 1e-12)
        XCTAssertEqual(RunComparison.interquartileMean([0, 10, 100]), 110.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(RunComparison.interquartileMean([7]), 7, accuracy: 1e-12)
    }

    func testBootstrapIntervalsContainTheEstimateAndRepeat() {
        let values = [-180.0, -175, -210, -190, -172, -240]
        let first = RunComparison.bootstrap(values, resamples: 2_000, statistic: RunComparison.mean)
        let second = RunComparison.bootstrap(values, resamples: 2_000, statistic: RunComparison.mean)
        XCTAssertEqual(first, second, "a fixed stream: the same runs give the same interval")
        XCTAssertEqual(first.value, RunComparison.mean(values))
        XCTAssertLessThan(first.low, first.value)
        XCTAssertGreaterThan(first.high, first.value)
        XCTAssertGreaterThanOrEqual(first.low, values.min()!)
        XCTAssertLessThanOrEqual(first.high, values.max()!)
        let single = RunComparison.bootstrap([3], resamples: 100, statistic: RunComparison.mean)
        XCTAssertEqual([single.low, single.value, single.high], [3, 3, 3])
    }

    /// A folder with a finished run, a running one, a crashed one and one whose evaluation is null: the table is
    /// printed, its numbers are the finished runs' summaries, and the others are named as left out.
    func testAwkwardRunsGiveATableWithoutATraceback() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let root = try makeTemporaryDirectory("dppo-compare")
        func run(_ name: String, final: String?, records: [String], summary: Bool = true) throws -> RunDirectory {
            let run = try RunDirectory(url: root.appendingPathComponent("group/\(name)"))
            try "name: group\n".write(to: run.config, atomically: true, encoding: .utf8)
            try records.joined(separator: "\n").write(to: run.metrics, atomically: true, encoding: .utf8)
            if summary { try "{\"state\": \"finished\", \"final_eval_return\": \(final ?? "null")}".write(to: run.summary, atomically: true, encoding: .utf8) }
            return run
        }
        let curve = { (last: Double) in ["{\"iteration\":0,\"env_steps\":0,\"eval/return\":-900}", "{\"iteration\":1,\"env_steps\":100,\"eval/return\":\(last),\"charts/episodic_return\":-500}"] }
        _ = try run("a", final: "-200", records: curve(-200))
        _ = try run("b", final: "-100", records: curve(-100))
        let running = try run("c-running", final: nil, records: curve(-50), summary: false)
        let lock = try running.lock(job: "learner")
        _ = try run("d-crashed", final: nil, records: curve(-60) + ["{\"iter"], summary: false)
        _ = try run("e-null", final: nil, records: ["{\"iteration\":0,\"env_steps\":0,\"eval/return\":null}"])
        let process = Process()
        process.executableURL = binary
        process.arguments = ["compare", root.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        withExtendedLifetime(lock) {}
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertTrue(output.contains("| group | 2 of 5 | -150.0 ["), output)
        XCTAssertTrue(output.contains("c-running (running)") && output.contains("d-crashed (failed)") && output.contains("e-null (no evaluation)"), output)
        XCTAssertFalse(output.contains("Fatal") || output.contains("Traceback"), output)
        let csv = try String(contentsOfFile: root.appendingPathComponent("compare.csv").path, encoding: .utf8)
        XCTAssertTrue(csv.hasPrefix("group,runs,used,mean,"), csv)
        XCTAssertTrue(csv.contains("group,5,2,-150.0,"), csv)
        let svg = try String(contentsOfFile: root.appendingPathComponent("compare.svg").path, encoding: .utf8)
        XCTAssertTrue(svg.contains("<polygon") && svg.contains("<polyline"), "a band and a mean line")
    }

    /// `--group LABEL=GLOB`: a wildcard stays within one path component, so a run's nested pre-training run
    /// (`RUN/pretrain`) is not a member of the group.
    func testGlobsDoNotReachIntoNestedRuns() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let root = try makeTemporaryDirectory("dppo-compare-glob")
        for (name, final) in [("seed=1", -120), ("seed=2", -140)] {
            let run = try RunDirectory(url: root.appendingPathComponent(name))
            try "name: g\n".write(to: run.config, atomically: true, encoding: .utf8)
            try "{\"iteration\":1,\"env_steps\":100,\"eval/return\":\(final)}".write(to: run.metrics, atomically: true, encoding: .utf8)
            try "{\"state\": \"finished\", \"final_eval_return\": \(final)}".write(to: run.summary, atomically: true, encoding: .utf8)
            let pretrain = try RunDirectory(url: run.url.appendingPathComponent("pretrain"))
            try "name: g\n".write(to: pretrain.config, atomically: true, encoding: .utf8)
            try "{\"epoch\":1,\"loss\":0.5}".write(to: pretrain.metrics, atomically: true, encoding: .utf8)
        }
        let (status, output) = try runToEnd(binary, ["compare", root.path, "--group", "G=\(root.path)/seed=*"])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("| G | 2 of 2 | -130.0 ["), output)
        XCTAssertFalse(output.contains("pretrain"), output)
    }
}
