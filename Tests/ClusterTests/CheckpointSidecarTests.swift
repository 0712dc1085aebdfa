import XCTest
import Foundation
@testable import Cluster
import Algorithms
import Datasets
import Tensors

/// The sidecar is written in snake_case and read in either case: sidecars of earlier versions (camelCase) load.
final class CheckpointSidecarTests: XCTestCase {
    /// A sidecar with every optional field set, DDIM on (the one acronym) and drop reasons as dictionary keys.
    private func fullCheckpoint(in directory: URL) throws -> URL {
        let config = try RunConfig.parse(yaml: "model: {mlp_dims: [8, 8, 8], time_dim: 4, use_ddim: true, ddim_steps: 5, ft_denoising_steps: 5}")
        let model = PolicyModel(config: config)
        var random = Philox(seed: 3)
        model.initialize(random: &random)
        let observationDim = config.networkShape.observationDim, actionDim = config.networkShape.actionDim
        var info = CheckpointInfo(kind: "finetune", iteration: 7, policyVersion: 8, environmentSteps: 4_480, model: model,
                                  normalization: Normalization(obsMin: Array(repeating: -2, count: observationDim), obsMax: Array(repeating: 2, count: observationDim),
                                                               actionMin: Array(repeating: -1, count: actionDim), actionMax: Array(repeating: 1, count: actionDim)),
                                  actorOptimizerStep: 70, criticOptimizerStep: 71, rewardScaler: RunningRewardScaler(streams: 3), evalReturn: -321.5)
        info.learnerRandom = Philox(seed: 9)
        info.actorScheduleSteps = 7
        info.criticScheduleSteps = 7
        info.initialEvaluation = EvaluationResult(meanReturn: -900, stdReturn: 10, minReturn: -920, maxReturn: -880, episodes: 4)
        info.lastEvaluation = EvaluationResult(meanReturn: -321.5, stdReturn: 5, minReturn: -330, maxReturn: -310, episodes: 4)
        info.wallSeconds = 12.25
        info.droppedSegments = ["stale_version": 3, "Mixed_Case reason": 1]
        let url = directory.appendingPathComponent("itr-7.safetensors")
        try Checkpoint.save(model: model, update: nil, info: info, to: url)
        return url
    }

    private func keys(of value: Any, path: String = "", into result: inout [String]) {
        guard let object = value as? [String: Any] else { return }
        for (key, child) in object {
            result.append(path + key)
            if key != "dropped_segments" { keys(of: child, path: path + key + ".", into: &result) }
        }
    }

    func testEveryKeyIsSnakeCaseAndDropReasonsPassThrough() throws {
        let url = try fullCheckpoint(in: try makeTemporaryDirectory("dppo-sidecar"))
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: Checkpoint.sidecarURL(for: url))) as? [String: Any] ?? [:]
        var names: [String] = []
        keys(of: object, into: &names)
        XCTAssertGreaterThan(names.count, 40)
        for name in names { XCTAssertNotNil(name.range(of: #"^[a-z0-9_.]+$"#, options: .regularExpression), "\(name) is not snake_case") }
        for name in ["policy_version", "environment_steps", "denoising.use_ddim", "denoising.ddim_steps", "learner_random.counter",
                     "reward_scaler.running_returns", "last_evaluation.mean_return", "normalization.obs_min", "network.mlp_dims"] {
            XCTAssertTrue(names.contains(name), "sidecar lacks \(name)")
        }
        XCTAssertEqual(object["dropped_segments"] as? [String: Int], ["stale_version": 3, "Mixed_Case reason": 1])
    }

    /// Read back, the snake_case sidecar re-encodes to the same bytes; a camelCase sidecar (as earlier versions
    /// wrote it) decodes to the same values.
    func testSnakeAndCamelCaseSidecarsDecodeAlike() throws {
        let directory = try makeTemporaryDirectory("dppo-sidecar")
        let url = try fullCheckpoint(in: directory)
        let written = try Data(contentsOf: Checkpoint.sidecarURL(for: url))
        let info = try Checkpoint.readInfo(from: url)
        XCTAssertEqual(try SidecarCoding.encoder().encode(info), written)
        XCTAssertEqual(info.denoising?.useDDIM, true)

        let camel = JSONEncoder()
        camel.outputFormatting = [.sortedKeys]
        let old = try camel.encode(info)
        XCTAssertNotNil(String(decoding: old, as: UTF8.self).range(of: "\"useDDIM\":true"))
        try old.write(to: Checkpoint.sidecarURL(for: url))
        XCTAssertEqual(try SidecarCoding.encoder().encode(Checkpoint.readInfo(from: url)), written)
    }

    func testNameConversions() {
        for (camel, snake) in [("policyVersion", "policy_version"), ("useDDIM", "use_ddim"), ("ddimSteps", "ddim_steps"),
                               ("obsMin", "obs_min"), ("kind", "kind"), ("mlpDims", "mlp_dims")] {
            XCTAssertEqual(SidecarCoding.snakeCase(camel), snake)
            XCTAssertEqual(SidecarCoding.camelCase(snake), camel)
        }
        XCTAssertEqual(SidecarCoding.camelCase("policyVersion"), "policyVersion")
    }
}
