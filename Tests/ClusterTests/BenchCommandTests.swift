import Foundation
import XCTest

/// `dppo bench` runs from any directory and its `--json` is one machine-readable document. Only the cheapest
/// subcommand runs here (environments, a few seconds); the figures themselves are checked for sense, not for speed:
/// speed is measured by the benchmarks, never asserted by a test.
final class BenchCommandTests: XCTestCase {
    func testEnvsBenchmarkWritesOneJSONDocumentFromAnyDirectory() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = binary
        process.arguments = ["bench", "envs", "--seconds", "0.05", "--json"]
        process.currentDirectoryURL = directory
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate(); XCTFail("dppo bench envs ran past 120 s") }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)

        struct Rate: Decodable {
            let task: String
            let frame_skip: Int
            let env_steps_per_second: Double
            let raw_mj_step_env_steps_per_second: Double
        }
        let rates = try JSONDecoder().decode([Rate].self, from: data)
        XCTAssertEqual(Set(rates.map(\.task)), ["hopper", "walker2d", "halfcheetah", "lift", "place"])
        for rate in rates {
            XCTAssertGreaterThan(rate.frame_skip, 0, rate.task)
            for value in [rate.env_steps_per_second, rate.raw_mj_step_env_steps_per_second] {
                XCTAssertTrue(value.isFinite && value > 0, "\(rate.task): \(value)")
            }
        }
    }
}
