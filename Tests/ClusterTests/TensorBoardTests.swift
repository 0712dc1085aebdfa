import XCTest
import Foundation
@testable import Cluster

/// TensorBoard event files: the framing and its checksums, and every scalar of metrics.jsonl in RUN/tb/, read back
/// by this code and by TensorBoard's own EventAccumulator.
final class TensorBoardTests: XCTestCase {
    func testCRC32CAndTheRecordFraming() throws {
        XCTAssertEqual(TFRecord.crc32c(Data("123456789".utf8)), 0xE306_9283, "the CRC32C check value")
        XCTAssertEqual(TFRecord.crc32c(Data()), 0)
        let payload = Data("an event".utf8)
        let framed = TFRecord.frame(payload)
        XCTAssertEqual(framed.count, payload.count + 16)
        XCTAssertEqual(TFRecord.records(in: framed + framed), [payload, payload])
        var damaged = framed
        damaged[14] ^= 1
        XCTAssertNil(TFRecord.records(in: damaged), "a flipped bit fails the data CRC")
        XCTAssertNil(TFRecord.records(in: framed.dropLast()), "a truncated record is refused")
    }

    func testEventsRoundTripThroughSwiftProtobuf() throws {
        let event = TensorBoardEvent(wallTime: 1.5, step: 7, summary: TensorBoardSummary(values: [.init(tag: "a/b", simpleValue: 0),
                                                                                               .init(tag: "c", simpleValue: -2.5)]))
        XCTAssertEqual(try TensorBoardEvent(serializedBytes: try event.serializedBytes() as [UInt8]), event)
    }

    /// A whole in-process run: every numeric field of every metrics.jsonl record is a scalar at its iteration.
    func testARunsEventsHoldEveryMetric() throws {
        let run = try tinyRun(portBlock: 19_000)
        let scalars = try Self.decodedScalars(run)
        try Self.assertEqualsMetrics(scalars, run: run)
    }

    /// The same run read by TensorBoard itself (`scripts/tensorboard_readback.py`, the `tensorboard` package).
    func testTensorBoardReadsBackWhatMetricsHold() throws {
        guard pythonHas("tensorboard") else {
            throw XCTSkip("the Python tensorboard package is not installed (pip install -r scripts/requirements-test.txt)")
        }
        let run = try tinyRun(portBlock: 22_000)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../scripts/tensorboard_readback.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, run.url.path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let read = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: [String: Double]])
        let scalars = read.mapValues { steps in
            Dictionary(uniqueKeysWithValues: steps.map { (Int($0.key)!, Float($0.value)) })
        }
        try Self.assertEqualsMetrics(scalars, run: run)
    }

    // MARK: - Support

    /// `portBlock`: the base of this test's 900 ports, below Linux's ephemeral range and apart from the other tests'.
    func tinyRun(portBlock: Int) throws -> RunDirectory {
        let directory = try makeTemporaryDirectory("dppo-tb")
        let config = try RunConfig.parse(yaml: """
            seed: 3
            env: {task: pendulum, n_envs: 3, act_steps: 2, horizon_steps: 2}
            model: {denoising_steps: 4, ft_denoising_steps: 2, time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
            train: {n_train_itr: 3, n_steps: 30, batch_size: 60, update_epochs: 2, val_freq: 2, eval_episodes: 2, save_model_freq: 0}
            cluster: {actors: 2, base_port: \(portBlock + Int(getpid() % 300) * 3), segment_steps: 10, batch_timeout_s: 60}
            """)
        let start = try writeRandomPolicy(config: config, to: directory)
        return try runInProcessCluster(config: config, start: start, in: directory).run
    }

    /// Every scalar of the run's event files, by tag and step, decoded here.
    static func decodedScalars(_ run: RunDirectory) throws -> [String: [Int: Float]] {
        let files = try FileManager.default.contentsOfDirectory(at: run.tensorBoard, includingPropertiesForKeys: nil)
        XCTAssertEqual(files.count, 1, "one event file per learner process")
        var scalars: [String: [Int: Float]] = [:]
        for file in files {
            XCTAssertTrue(file.lastPathComponent.hasPrefix("events.out.tfevents."), file.path)
            let records = try XCTUnwrap(TFRecord.records(in: try Data(contentsOf: file)), "framing and CRCs")
            let events = try records.map { try TensorBoardEvent(serializedBytes: $0) }
            XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
            for event in events { for value in event.summary?.values ?? [] { scalars[value.tag, default: [:]][Int(event.step)] = value.simpleValue } }
        }
        return scalars
    }

    /// Every number (and flag) in every metrics.jsonl record is the scalar with its key at its iteration, and nothing else is.
    static func assertEqualsMetrics(_ scalars: [String: [Int: Float]], run: RunDirectory, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = try String(contentsOf: run.metrics, encoding: .utf8)
        var expected: [String: [Int: Float]] = [:]
        for line in text.split(separator: "\n") {
            let record = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let step = try XCTUnwrap(record["iteration"] as? Int)
            func add(_ key: String, _ value: Any) {
                switch value {
                case let flag as Bool where type(of: value) == Bool.self: expected[key, default: [:]][step] = flag ? 1 : 0
                case let integer as Int: expected[key, default: [:]][step] = Float(integer)
                case let number as Double: expected[key, default: [:]][step] = Float(number)
                case let nested as [String: Any]: for (name, inner) in nested { add("\(key)/\(name)", inner) }
                default: break
                }
            }
            for (key, value) in record { add(key, value) }
        }
        XCTAssertGreaterThan(expected.count, 30, "the learner's metrics", file: file, line: line)
        XCTAssertEqual(Set(scalars.keys), Set(expected.keys), file: file, line: line)
        for (tag, steps) in expected {
            XCTAssertEqual(scalars[tag], steps, tag, file: file, line: line)
        }
    }
}
