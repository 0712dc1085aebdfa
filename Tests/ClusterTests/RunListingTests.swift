import XCTest
import Foundation
@testable import Cluster

/// `dppo runs`: states from a run directory's files and lock, and `--check` against the manifest.
final class RunListingTests: XCTestCase {
    func makeRun(_ root: URL, _ name: String, records: [String], summary: String?) throws -> RunDirectory {
        let run = try RunDirectory(url: root.appendingPathComponent(name))
        try "train: {n_train_itr: 3}\n".write(to: run.config, atomically: true, encoding: .utf8)
        try records.joined(separator: "\n").write(to: run.metrics, atomically: true, encoding: .utf8)
        if let summary { try summary.write(to: run.summary, atomically: true, encoding: .utf8) }
        return run
    }

    func testStatesProgressAndEvaluationsFromTheFiles() throws {
        let root = try makeTemporaryDirectory("dppo-runs")
        let records = ["{\"iteration\":0,\"env_steps\":0,\"eval/return\":-900.5}", "{\"iteration\":1,\"env_steps\":100}",
                       "{\"iteration\":2,\"env_steps\":200,\"eval/return\":-300.25,\"wall_seconds\":12.5}"]
        _ = try makeRun(root, "a-finished", records: records, summary: "{\"state\":\"finished\",\"final_eval_return\":-300.25,\"wall_seconds\":13}")
        _ = try makeRun(root, "b-preempted", records: records, summary: "{\"state\":\"stopped\",\"final_eval_return\":-300.25}")
        _ = try makeRun(root, "c-crashed", records: records + ["{\"iteration\":3,\"env_st"], summary: nil)
        let running = try makeRun(root, "d-running", records: Array(records.prefix(2)), summary: nil)
        let lock = try running.lock(job: "learner")
        _ = try makeRun(root, "sweep/e-null", records: ["{\"iteration\":0,\"eval/return\":null}"], summary: "{\"final_eval_return\":null}")
        let entries = RunListing.scan(root)
        withExtendedLifetime(lock) {}
        XCTAssertEqual(entries.map(\.name), ["a-finished", "b-preempted", "c-crashed", "d-running", "sweep/e-null"])
        XCTAssertEqual(entries.map(\.state), [.finished, .preempted, .failed, .running, .finished])
        XCTAssertEqual(entries[0].done, 2)
        XCTAssertEqual(entries[0].total, 3)
        XCTAssertEqual(entries[0].environmentSteps, 200)
        XCTAssertEqual(entries[0].finalEvaluation, -300.25)
        XCTAssertEqual(entries[0].bestEvaluation, -300.25)
        XCTAssertEqual(entries[0].wallSeconds, 13)
        XCTAssertEqual(entries[2].done, 2, "the half-written last line is skipped")
        XCTAssertNil(entries[4].finalEvaluation, "a null return stays empty")
        let table = RunListing.table(entries)
        XCTAssertEqual(table.split(separator: "\n").count, 6, table)
        XCTAssertTrue(table.contains("sweep/e-null"), table)
    }

    /// The bar of the issue: `dppo runs --check` notices a dataset that changed after the run used it.
    func testCheckDetectsAChangedDataset() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let directory = try makeTemporaryDirectory("dppo-manifest")
        let dataset = directory.appendingPathComponent("data.safetensors").path
        let output = directory.appendingPathComponent("pretrain").path
        let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs/pendulum/finetune.yaml").path
        func run(_ arguments: [String]) throws -> (status: Int32, output: String) { try runToEnd(binary, arguments) }
        let small = ["--set", "model.mlp_dims=[16, 16, 16]", "--set", "model.time_dim=4"]
        XCTAssertEqual(try run(["collect", "--config", config, "--episodes", "2", "--output", dataset] + small).status, 0)
        let pretrain = try run(["pretrain", "--config", config, "--output", output, "--set", "pretrain.dataset=\(dataset)",
                                "--set", "pretrain.n_epochs=1"] + small)
        XCTAssertEqual(pretrain.status, 0, pretrain.output)
        let manifest = try RunManifest.read(from: URL(fileURLWithPath: output))
        XCTAssertEqual(manifest.job, "pretrain")
        XCTAssertEqual(manifest.inputs["dataset"]?.path, URL(fileURLWithPath: dataset).standardizedFileURL.path)
        XCTAssertEqual(manifest.inputs["dataset"]?.sha256.count, 64)
        XCTAssertFalse(manifest.blasKernel.isEmpty)
        let clean = try run(["runs", "--check", output])
        XCTAssertEqual(clean.status, 0, clean.output)
        XCTAssertTrue(clean.output.contains("ok       dataset"), clean.output)

        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: dataset))
        handle.seekToEndOfFile()
        handle.write(Data([0]))
        try handle.close()
        let changed = try run(["runs", "--check", output])
        XCTAssertEqual(changed.status, 1, changed.output)
        XCTAssertTrue(changed.output.contains("CHANGED  dataset"), changed.output)
        // And `dppo runs` lists the pretraining run.
        let listing = try run(["runs", directory.path])
        XCTAssertTrue(listing.output.contains("pretrain  finished"), listing.output)
    }

    /// `dppo collect --checkpoint RUN/checkpoints/itr-50.safetensors` after a 50-iteration run: the message names what is there.
    func testAMissingCheckpointNamesTheOnesThere() throws {
        let folder = try makeTemporaryDirectory("dppo-missing")
        for name in ["itr-10", "itr-20", "final"] {
            try Data().write(to: folder.appendingPathComponent("\(name).safetensors"))
        }
        XCTAssertThrowsError(try Checkpoint.readInfo(from: folder.appendingPathComponent("itr-30.safetensors"))) { error in
            XCTAssertTrue("\(error)".contains("holds final, itr-10, itr-20 (a run's last iteration is saved as final)"), "\(error)")
        }
    }
}
