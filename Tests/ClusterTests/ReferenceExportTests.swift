import XCTest
import Foundation
@testable import Cluster
import Networks
import Algorithms
import Tensors

/// `dppo export --format reference`: every network tensor under the DPPO reference's name, values unchanged.
final class ReferenceExportTests: XCTestCase {
    func testNamesFollowTheReferenceModules() throws {
        XCTAssertEqual(try ReferenceExport.referenceName("time_embedding.0.weight", blocks: 1), "time_embedding.1.weight")
        XCTAssertEqual(try ReferenceExport.referenceName("time_embedding.1.bias", blocks: 1), "time_embedding.3.bias")
        XCTAssertEqual(try ReferenceExport.referenceName("mlp_mean.input.weight", blocks: 2), "mlp_mean.layers.0.weight")
        XCTAssertEqual(try ReferenceExport.referenceName("mlp_mean.block1.b.bias", blocks: 2), "mlp_mean.layers.2.l2.bias")
        XCTAssertEqual(try ReferenceExport.referenceName("mlp_mean.output.weight", blocks: 2), "mlp_mean.layers.3.weight")
        XCTAssertEqual(try ReferenceExport.referenceName("Q1.block0.a.weight", blocks: 1), "Q1.layers.1.l1.weight")
        XCTAssertThrowsError(try ReferenceExport.referenceName("logvar", blocks: 0))
    }

    /// A fine-tuning checkpoint with two residual blocks: the export holds actor, actor_ft and critic under the
    /// reference's names (ResidualMLP's layers.0, layers.1-2 with l1/l2, layers.3), with the same shapes and values.
    func testAFineTuningCheckpointExportsAllThreeModules() throws {
        let directory = try makeTemporaryDirectory("dppo-export")
        let config = try RunConfig.parse(yaml: "model: {mlp_dims: [16, 16, 16, 16, 16], critic_dims: [8, 8, 8], time_dim: 4}")
        let model = PolicyModel(config: config)
        var random = Philox(seed: 4)
        model.initialize(random: &random)
        let critic = CriticMLP(observationDim: config.networkShape.observationDim, mlpDims: config.model.criticDims)
        critic.initialize(random: &random)
        let update = PPOUpdate(actor: model.makePPOActor(), critic: critic, hyperparameters: config.train.dppo, streams: 2, seed: 1)
        let url = directory.appendingPathComponent("itr-1.safetensors")
        try Checkpoint.save(model: model, update: update, info: CheckpointInfo(kind: "finetune", iteration: 1, policyVersion: 2, environmentSteps: 0,
                                                                             model: model, normalization: nil), to: url)
        let exported = try ReferenceExport.stateDict(of: url)
        let names = Set(exported.map(\.name))
        var expected: Set<String> = []
        for module in ["actor", "actor_ft"] {
            for kind in ["weight", "bias"] {
                expected.formUnion(["\(module).time_embedding.1.\(kind)", "\(module).time_embedding.3.\(kind)", "\(module).mlp_mean.layers.0.\(kind)",
                                    "\(module).mlp_mean.layers.1.l1.\(kind)", "\(module).mlp_mean.layers.1.l2.\(kind)",
                                    "\(module).mlp_mean.layers.2.l1.\(kind)", "\(module).mlp_mean.layers.2.l2.\(kind)",
                                    "\(module).mlp_mean.layers.3.\(kind)"])
            }
        }
        for kind in ["weight", "bias"] {
            expected.formUnion(["critic.Q1.layers.0.\(kind)", "critic.Q1.layers.1.l1.\(kind)", "critic.Q1.layers.1.l2.\(kind)", "critic.Q1.layers.2.\(kind)"])
        }
        XCTAssertEqual(names, expected)
        let ours = try Safetensors.read(from: url).tensors
        let byName = Dictionary(uniqueKeysWithValues: exported.map { ($0.name, $0) })
        XCTAssertEqual(byName["actor_ft.mlp_mean.layers.2.l2.weight"], { var t = ours["ft.mlp_mean.block1.b.weight"]!; t.name = "actor_ft.mlp_mean.layers.2.l2.weight"; return t }())
        XCTAssertEqual(byName["actor.mlp_mean.layers.0.weight"]?.shape, [16, config.networkShape.observationDim + 4 + config.networkShape.actionDim * config.networkShape.horizonSteps])
        XCTAssertEqual(byName["critic.Q1.layers.2.weight"]?.values, ours["critic.Q1.output.weight"]?.values)
        XCTAssertFalse(names.contains { $0.contains("optimizer") })

        // The reference's own modules, as scripts/generate_reference_names.py recorded them (torch, DiffusionMLP and
        // CriticObs with residual_style=True at these sizes): the same names with the same shapes, no more, no fewer.
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/reference-state-dict.json")
        let recorded = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixture)) as? [String: Any])
        let shapes = try XCTUnwrap(recorded["tensors"] as? [String: [Int]])
        XCTAssertEqual(Set(shapes.keys), names, "strict=True: exactly the reference's keys")
        for tensor in exported { XCTAssertEqual(shapes[tensor.name], tensor.shape, tensor.name) }
    }
}
