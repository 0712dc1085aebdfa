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

    /// `dppo config get` and `config show`: every key read resolves, to the file's value, an override's, or the
    /// default; the launchers rely on this instead of reading the YAML.
    func testResolvedValuesCoverFileOverridesAndDefaults() throws {
        let config = try RunConfig.parse(yaml: "name: resolved\ncluster: {actors: 2}\ntrain: {target_kl: 1}",
                                         overrides: ["cluster.actors=3", "pretrain.checkpoint=runs/a b.safetensors"])
        XCTAssertEqual(try config.resolvedValue(of: "name"), .string("resolved"))
        XCTAssertEqual(try config.resolvedValue(of: "cluster.actors"), .int(3), "the override wins over the file")
        XCTAssertEqual(try config.resolvedValue(of: "pretrain.checkpoint").text, "runs/a b.safetensors")
        XCTAssertEqual(try config.resolvedValue(of: "cluster.base_port"), .int(config.cluster.basePort), "a default")
        XCTAssertEqual(try config.resolvedValue(of: "model.mlp_dims").text, "[256, 256, 256]")
        XCTAssertEqual(try config.resolvedValue(of: "train.target_kl"), .double(1))
        XCTAssertEqual(try config.resolvedValue(of: "train.max_grad_norm"), .null, "an optional key left unset")
        XCTAssertEqual(try config.resolvedValue(of: "offline.method").text, config.offline.method)
        XCTAssertThrowsError(try config.resolvedValue(of: "cluster.actor")) { error in
            XCTAssertTrue("\(error)".contains("cluster.actors"), "the keys of the section are listed: \(error)")
        }
        let keys = config.resolvedValues.map(\.key)
        XCTAssertEqual(keys.count, Set(keys).count, "each key once")
        XCTAssertGreaterThan(keys.count, 100)
        let shown = try config.resolvedValuesYAML()
        XCTAssertTrue(shown.contains("actors: 3"), shown)
        XCTAssertEqual(try RunConfig.parse(yaml: shown).resolvedValues.map(\.value), config.resolvedValues.map(\.value),
                       "config show prints a config that resolves to the same values")
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
            ("threads: 0\n", "threads"),
            ("threads: many\n", "threads"),
            ("cluster:\n  learner_threads: 2\n", "top-level key threads"),
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

    /// `threads`: a count is used by every job; `auto` gives pretraining, offline training and a strict learner every
    /// core, and an async learner the cores its local actors leave. It does not enter the compatibility hash.
    func testThreadsResolvePerJob() throws {
        let fixed = try RunConfig.parse(yaml: "threads: 3")
        XCTAssertEqual(fixed.workerThreads(for: .learner, cores: 16), 3)
        XCTAssertEqual(fixed.workerThreads(for: .pretrain, cores: 16), 3)
        let strict = try RunConfig.parse(yaml: "cluster: {actors: 4}")
        XCTAssertNil(strict.threads, "auto is the default")
        XCTAssertEqual(strict.workerThreads(for: .learner, cores: 16), 16)
        XCTAssertEqual(strict.workerThreads(for: .offline, cores: 2), 2)
        let async = try RunConfig.parse(yaml: "threads: auto\ncluster: {actors: 4, sync: async}")
        XCTAssertEqual(async.workerThreads(for: .learner, cores: 16), 12)
        XCTAssertEqual(async.workerThreads(for: .learner, cores: 2), 1)
        XCTAssertEqual(async.workerThreads(for: .pretrain, cores: 16), 16)
        XCTAssertEqual(strict.workerThreads(for: .learner, cores: 16, localRanks: 4), 4, "ranks on one host share its cores")
        XCTAssertEqual(strict.workerThreads(for: .learner, cores: 2, localRanks: 4), 1)
        XCTAssertEqual(fixed.workerThreads(for: .learner, cores: 16, localRanks: 4), 3, "a count is a count")
        XCTAssertEqual(try RunConfig.parse(yaml: "threads: 5").compatibilityHash, strict.compatibilityHash)
    }

    func testCompatibilityHashTracksTheModel() throws {
        let a = try RunConfig.parse(yaml: "")
        let b = try RunConfig.parse(yaml: "", overrides: ["model.ft_denoising_steps=5"])
        let c = try RunConfig.parse(yaml: "", overrides: ["train.actor_lr=0.5"])
        XCTAssertNotEqual(a.compatibilityHash, b.compatibilityHash)
        XCTAssertEqual(a.compatibilityHash, c.compatibilityHash)
    }
}
