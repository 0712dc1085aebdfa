import XCTest
@testable import Cluster

final class ConfigTests: XCTestCase {
    func testDefaultConfigParsesAndOverridesApply() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs/pendulum/finetune.yaml").path
        let config = try RunConfig.load(path: path, overrides: ["train.n_train_itr=3", "cluster.actors=4", "model.mlp_dims=[64,64,64]"])
        XCTAssertEqual(config.train.iterations, 3)
        XCTAssertEqual(config.cluster.actors, 4)
        XCTAssertEqual(config.model.mlpDims, [64, 64, 64])
        XCTAssertEqual(config.streams, 4 * config.environment.environmentsPerActor)
        XCTAssertTrue(config.resolvedYAML.contains("n_train_itr: 3"))
    }

    /// Every shipped config parses, and its task resolves to the sizes the model is built for.
    func testShippedConfigsParse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs")
        let files = try FileManager.default.subpathsOfDirectory(atPath: root.path).filter { $0.hasSuffix(".yaml") }
        XCTAssertGreaterThanOrEqual(files.count, 5)
        for file in files {
            let config = try RunConfig.load(path: root.appendingPathComponent(file).path)
            if file.hasPrefix("hopper/") {
                XCTAssertEqual(config.environment.task, .hopper, file)
                XCTAssertEqual(config.environment.description.observationDim, 11, file)
                XCTAssertEqual(config.environment.description.actionDim, 3, file)
            }
        }
    }

    func testMalformedConfigsAreRefusedWithTheKeyNamed() {
        let cases: [(String, String)] = [
            ("train:\n  n_train_itrs: 3\n", "train.n_train_itrs"),
            ("train:\n  n_steps: many\n", "train.n_steps"),
            ("env:\n  task: cartpole\n", "env.task"),
            ("model:\n  ft_denoising_steps: 30\n", "ft_denoising_steps"),
            ("model:\n  mlp_dims: [64, 64]\n", "model.mlp_dims"),
            ("cluster: 3\n", "cluster"),
            ("train: [1, 2\n", "YAML"),
            ("env:\n  task: hopper\n  version: v3\n", "env.version"),
            ("env:\n  task: gymnasium\n", "env.gym_id"),
            ("env:\n  task: gymnasium\n  gym_id: Pendulum-v1\n  gym_kwargs: [1, 2]\n", "env.gym_kwargs"),
            ("env:\n  task: gymnasium\n  gym_id: Pendulum-v1\n  python: /nonexistent/python3\n", "/nonexistent/python3"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try RunConfig.parse(yaml: yaml), yaml) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error) should mention \(expected)")
            }
        }
        XCTAssertThrowsError(try RunConfig.parse(yaml: "", overrides: ["train.n_steps"])) { error in
            XCTAssertTrue("\(error)".contains("key.path=value"))
        }
    }

    func testCompatibilityHashTracksTheModel() throws {
        let a = try RunConfig.parse(yaml: "")
        let b = try RunConfig.parse(yaml: "", overrides: ["model.ft_denoising_steps=5"])
        let c = try RunConfig.parse(yaml: "", overrides: ["train.actor_lr=0.5"])
        XCTAssertNotEqual(a.compatibilityHash, b.compatibilityHash)
        XCTAssertEqual(a.compatibilityHash, c.compatibilityHash)
    }
}
