import XCTest
@testable import Cluster
import Algorithms
import Yams

/// Every declared key against values a user might type by mistake, and the CLI's answer to the reproductions of
/// the hardening issue: one line, exit 64, never a trap, a hang or a usage dump.
final class ConfigValidationTests: XCTestCase {
    /// The values the fuzz sets each key to, as `--set key=VALUE` text: negative, zero, huge, NaN, empty, a wrong
    /// type (a list, a mapping), a wrong word.
    static let fuzzValues = ["-1", "0", "1e300", "99999999999999999999", ".nan", "", "[1, 2]", "{a: 1}", "not-a-choice", "-0.5"]

    func testEveryKeyRefusesOutOfRangeValuesWithOneLineOrAcceptsThem() throws {
        var refused = 0, accepted = 0
        for option in RunConfig.options {
            for text in ConfigValidationTests.fuzzValues {
                let override = "\(option.key)=\(text)"
                do {
                    let config = try RunConfig.parse(yaml: "", overrides: [override])
                    accepted += 1
                    // Accepted: the value is what the key now resolves to, and it is inside what the key allows.
                    let resolved = try config.resolvedValue(of: option.key)
                    XCTAssertEqual(try option.value(from: Self.yaml(text)), resolved, override)
                    Self.assertInside(option.kind, resolved, override)
                } catch let error as ConfigError {
                    refused += 1
                    XCTAssertFalse(error.description.contains("\n"), "one line: \(error)")
                    XCTAssertTrue(error.description.contains(option.key) || error.description.contains("ft_denoising_steps")
                                  || error.description.contains("batch would hold") || error.description.contains("must be"),
                                  "\(override): the message names the key: \(error)")
                }
            }
        }
        XCTAssertGreaterThan(refused, 8 * RunConfig.options.count, "most fuzz values are refused")
        XCTAssertGreaterThan(accepted, 40, "in-range ones (0, -1 for a text key, empty paths) are accepted")
    }

    func testNonFiniteAndOutOfRangeNumbersAreRefusedForEveryNumericKey() {
        for option in RunConfig.options {
            let bad: [String]
            switch option.kind {
            case .number(let range), .optionalNumber(let range):
                bad = [".nan", ".inf", "-.inf", NumberRange.format(range.upper + max(1, abs(range.upper))), "[0.5]", "'0.5'"]
            case .integer(let range):
                bad = ["0.5", ".nan", "true", "'1'"] + (range.lowerBound > Int.min ? [String(range.lowerBound - 1)] : [])
                    + (range.upperBound < Int.max ? [String(range.upperBound + 1)] : [])
            default: continue
            }
            for text in bad {
                XCTAssertThrowsError(try RunConfig.parse(yaml: "", overrides: ["\(option.key)=\(text)"]), "\(option.key)=\(text)") { error in
                    XCTAssertTrue("\(error)".contains(option.key), "\(error)")
                }
            }
        }
    }

    /// The reproductions of the hardening issue, as the user typed them: one line on stderr naming the key, exit 64.
    func testReproductionsEndInOneLineAndExit64() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs/pendulum/finetune.yaml").path
        let cases: [([String], String)] = [
            (["pretrain", "--config", config, "--set", "seed=-1"], "seed"),
            (["pretrain", "--config", config, "--set", "pretrain.n_epochs=-2"], "pretrain.n_epochs"),
            (["pretrain", "--config", config, "--set", "pretrain.batch_size=0"], "pretrain.batch_size"),
            (["pretrain", "--config", config, "--set", "train.gamma=1.5"], "train.gamma"),
            (["pretrain", "--config", config, "--set", "train.actor_lr=-1"], "train.actor_lr"),
            (["pretrain", "--config", config, "--set", "pretrain.learning_rate=-1"], "pretrain.learning_rate"),
            (["pretrain", "--config", config, "--set", "pretrain.ema_decay=2"], "pretrain.ema_decay"),
            (["eval", "--config", config, "--checkpoint", "none.safetensors", "--episodes", "0"], "--episodes"),
            (["learner", "--config", config, "--set", "cluster.actors=0"], "cluster.actors"),
            (["config", "get", "--config", config, "--set", "train.n_train_itrs=3", "seed"], "train.n_train_itr"),
            (["pretrain", "--config", "/nonexistent/config.yaml"], "/nonexistent/config.yaml"),
        ]
        for (arguments, key) in cases {
            let process = Process()
            process.executableURL = binary
            process.arguments = arguments
            let errors = Pipe(), output = Pipe()
            process.standardError = errors
            process.standardOutput = output
            try process.run()
            let deadline = Date().addingTimeInterval(30)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit(); XCTFail("\(arguments) hung"); continue }
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(process.terminationStatus, 64, "\(arguments): \(text)")
            XCTAssertEqual(process.terminationReason, .exit, "\(arguments) ended by a signal")
            let lines = text.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(arguments): one line, no usage and no backtrace: \(text)")
            XCTAssertTrue(text.contains(key), "\(arguments): names \(key): \(text)")
            XCTAssertFalse(text.contains("Usage"), text)
        }
    }

    func testVersionNamesTheCommitAndTheBuild() throws {
        let process = Process()
        process.executableURL = try FaultRestartTests.dppoBinary()
        process.arguments = ["--version"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0)
        let pattern = #"^dppo [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{7,}(-dirty)?|unknown), (debug|release) build\)\n$"#
        XCTAssertNotNil(text.range(of: pattern, options: .regularExpression), text)
    }

    /// An absent optional key keeps its field's default; only an explicit null clears it (target_kl defaults to 1).
    func testAbsentOptionalKeysKeepTheirDefaults() throws {
        XCTAssertEqual(try RunConfig.parse(yaml: "").train.dppo.targetKL, 1)
        XCTAssertNil(try RunConfig.parse(yaml: "train: {target_kl: null}").train.dppo.targetKL)
        XCTAssertNil(try RunConfig.parse(yaml: "", overrides: ["train.target_kl=~"]).train.dppo.targetKL)
        XCTAssertNil(try RunConfig.parse(yaml: "").train.dppo.maxGradientNorm)
        XCTAssertEqual(try RunConfig.parse(yaml: "").resolvedValue(of: "train.target_kl"), .double(1))
    }

    func testTyposSuggestTheNearestKey() {
        XCTAssertThrowsError(try RunConfig.parse(yaml: "train:\n  actor_lrr: 1e-4\n")) { error in
            XCTAssertTrue("\(error)".contains("did you mean train.actor_lr?"), "\(error)")
        }
        XCTAssertThrowsError(try RunConfig.parse(yaml: "trian:\n  n_steps: 3\n")) { error in
            XCTAssertTrue("\(error)".contains("'trian'"), "\(error)")
        }
        XCTAssertEqual(RunConfig.editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(RunConfig.editDistance("", "abc"), 3)
    }

    /// The schedules keep their sub-keys checked, and `config show` prints a config that reads back the same.
    func testSchedulesAreCheckedAndRoundTrip() throws {
        let config = try RunConfig.parse(yaml: "train:\n  actor_lr_scheduler: {first_cycle_steps: 10, warmup_steps: 2, min_lr: 1e-5}\n")
        XCTAssertEqual(config.train.dppo.actorSchedule, LearningRateSchedule(firstCycleSteps: 10, warmupSteps: 2, minLearningRate: 1e-5))
        XCTAssertNil(config.train.dppo.criticSchedule)
        let again = try RunConfig.parse(yaml: try config.resolvedValuesYAML())
        XCTAssertEqual(again.train.dppo.actorSchedule, config.train.dppo.actorSchedule)
        for bad in ["{first_cycle_steps: 2, warmup_steps: 2}", "{first_cycle_steps: 3, min_lr: -1}", "{first_cycle_step: 3}", "3"] {
            XCTAssertThrowsError(try RunConfig.parse(yaml: "", overrides: ["train.actor_lr_scheduler=\(bad)"]), bad)
        }
    }

    /// The hash covers exactly the keys declared `hashed`: changing one changes it, changing another does not.
    func testCompatibilityHashFollowsTheDeclarations() throws {
        let base = try RunConfig.parse(yaml: "").compatibilityHash
        XCTAssertNotEqual(try RunConfig.parse(yaml: "", overrides: ["model.std_min=0.02"]).compatibilityHash, base,
                          "std_min is hashed (the hand-built hash missed it)")
        XCTAssertNotEqual(try RunConfig.parse(yaml: "", overrides: ["cluster.sync=async"]).compatibilityHash, base)
        XCTAssertEqual(try RunConfig.parse(yaml: "", overrides: ["train.actor_lr=0.001", "cluster.actors=5", "threads=2"]).compatibilityHash, base,
                       "learner-only and bookkeeping keys are not")
        // The documented algorithm (docs/wire-format.md): FNV-1a 64 over `key=value\n` lines of the hashed keys.
        var text = ""
        let config = try RunConfig.parse(yaml: "")
        for option in RunConfig.options where option.hashed { text += "\(option.key)=\(try config.resolvedValue(of: option.key).text)\n" }
        XCTAssertTrue(text.hasPrefix("env.task=pendulum\nenv.version=v5\nenv.gym_id=\nenv.gym_kwargs={}\nenv.n_envs=16\n"), text)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        XCTAssertEqual(hash, base)
    }

    /// Every declared key, changed to another valid value: the hash changes exactly when the key is declared
    /// `hashed`. So the hash follows the declarations, and no key's change reaches actors unnoticed by the hash
    /// unless its declaration says so.
    func testEveryKeyMovesTheHashExactlyWhenDeclaredHashed() throws {
        let base = try RunConfig.parse(yaml: "")
        var checked = 0
        for option in RunConfig.options {
            if case .retired = option.kind { continue }
            let current = option.read(base)
            var candidates: [String]
            switch option.kind {
            case .integer(let range):
                candidates = [range.lowerBound, range.lowerBound + 1, min(range.upperBound, 64), 2, 3].map(String.init)
            case .number(let range), .optionalNumber(let range):
                candidates = [0.5, 0.25, 2, range.upper, 0.9].filter(range.contains).map { "\($0)" }
            case .flag: candidates = ["true", "false"]
            case .text: candidates = ["other", "x.yaml"]
            case .choice(let choices): candidates = choices
            case .integers: candidates = ["[64, 64, 64]", "[32]"]
            case .mapping: candidates = ["{a: 1}"]
            case .schedule: candidates = ["{first_cycle_steps: 5, warmup_steps: 1}"]
            case .workers: candidates = ["2", "auto"]
            case .retired: continue
            }
            for candidate in candidates {
                guard let changed = try? RunConfig.parse(yaml: "", overrides: ["\(option.key)=\(candidate)"]),
                      option.read(changed) != current else { continue }
                XCTAssertEqual(changed.compatibilityHash != base.compatibilityHash, option.hashed,
                               "\(option.key)=\(candidate) \(option.hashed ? "must" : "must not") change the hash")
                checked += 1
                break
            }
        }
        XCTAssertGreaterThan(checked, RunConfig.options.count - 6, "almost every key could be changed on its own")
    }

    /// A batch too big for memory is refused before any work, with the keys to lower named.
    func testAnOversizedBatchIsRefusedUpFront() {
        XCTAssertThrowsError(try RunConfig.parse(yaml: "", overrides: ["cluster.actors=1024", "env.n_envs=4096", "train.n_steps=1000"])) { error in
            XCTAssertTrue("\(error)".contains("train.n_steps"), "\(error)")
        }
    }

    /// The tables of docs/configuration.md are the declarations, rendered.
    func testConfigurationDocsAreGeneratedFromTheDeclarations() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/configuration.md")
        let text = try String(contentsOf: path, encoding: .utf8)
        XCTAssertTrue(text.contains(RunConfig.optionsMarkdown()),
                      "docs/configuration.md is out of date: run `dppo config docs --update docs/configuration.md`")
        for option in RunConfig.options {
            XCTAssertTrue(text.contains("`\(option.key.split(separator: ".").last!)`") || text.contains("`\(option.key)`"), option.key)
        }
    }

    /// What `--set key=TEXT` puts in the YAML tree.
    static func yaml(_ text: String) -> Any? {
        var root: [String: Any] = [:]
        try? RunConfig.apply(override: "x=\(text)", to: &root)
        return root["x"]
    }

    static func assertInside(_ kind: ConfigKind, _ value: ConfigValue, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        switch (kind, value) {
        case (.integer(let range), .int(let integer)): XCTAssertTrue(range.contains(integer), message, file: file, line: line)
        case (.number(let range), .double(let number)), (.optionalNumber(let range), .double(let number)):
            XCTAssertTrue(range.contains(number), message, file: file, line: line)
        case (.choice(let choices), .string(let text)): XCTAssertTrue(choices.contains(text), message, file: file, line: line)
        default: break
        }
    }
}

/// A DPPO reference dataset is stored normalised; pretraining on it without its normalization.npz would train on the
/// wrong units, so it is refused with the fix in the message.
final class ReferenceDatasetTrapTests: XCTestCase {
    func testAReferenceNPZWithoutItsNormalizationIsRefused() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../DatasetsTests/Fixtures")
        let stored = fixtures.appendingPathComponent("train_stored.npz").path
        var config = try RunConfig.parse(yaml: "", overrides: ["pretrain.dataset=\(stored)"])
        XCTAssertThrowsError(try loadPretrainingData(config: config)) { error in
            XCTAssertTrue("\(error)".contains("pretrain.normalization_path"), "\(error)")
        }
        config.pretrain.normalizationPath = fixtures.appendingPathComponent("normalization.npz").path
        XCTAssertThrowsError(try loadPretrainingData(config: config)) { error in
            // Past the trap: this 2-D fixture then does not fit Pendulum's 3-D observations.
            XCTAssertTrue("\(error)".contains("state dim 2"), "\(error)")
        }
    }
}

/// `--resume` reads the run's config: bookkeeping may change, anything else needs `--allow-changes`, and every
/// accepted change lands in config-history.yaml.
final class ConfigResumeTests: XCTestCase {
    func makeRun() throws -> RunDirectory {
        let run = try RunDirectory(url: try makeTemporaryDirectory("dppo-resume"))
        try RunConfig.parse(yaml: "name: resumed\ntrain: {n_train_itr: 5, actor_lr: 1.0e-4}\n").resolvedYAML
            .write(to: run.config, atomically: true, encoding: .utf8)
        return run
    }

    func testBookkeepingChangesAreAcceptedAndRecorded() throws {
        let run = try makeRun()
        var lines: [String] = []
        let resumed = try ConfigResume.load(run: run, config: nil, overrides: ["train.n_train_itr=9", "threads=1"], allowChanges: false)
        let config = resumed.config
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.url.appendingPathComponent("config-history.yaml").path),
                       "recorded by the job once it holds the run, not when the config is read")
        try ConfigResume.record(resumed.changes, in: run, log: { lines.append($0) })
        XCTAssertEqual(config.train.iterations, 9)
        XCTAssertEqual(config.train.dppo.actorLearningRate, 1e-4, "the run's own value, not the default")
        XCTAssertEqual(lines, ["resume: threads auto → 1", "resume: train.n_train_itr 5 → 9"])
        let history = try String(contentsOf: run.url.appendingPathComponent("config-history.yaml"), encoding: .utf8)
        XCTAssertTrue(history.contains("train.n_train_itr:") && history.contains("from: '5'") && history.contains("to: '9'"), history)
        try ConfigResume.record(ConfigResume.load(run: run, config: nil, overrides: ["train.val_freq=3"], allowChanges: false).changes,
                                in: run, log: { _ in })
        let entries = try XCTUnwrap(try Yams.load(yaml: String(contentsOf: run.url.appendingPathComponent("config-history.yaml"),
                                                               encoding: .utf8)) as? [[String: Any]])
        XCTAssertEqual(entries.count, 2, "appended, oldest first")
    }

    func testComputationChangesNeedAllowChanges() throws {
        let run = try makeRun()
        XCTAssertThrowsError(try ConfigResume.load(run: run, config: nil, overrides: ["train.actor_lr=0.1"], allowChanges: false)) { error in
            XCTAssertTrue("\(error)".contains("train.actor_lr 0.0001 → 0.1"), "\(error)")
            XCTAssertTrue("\(error)".contains("--allow-changes"), "\(error)")
        }
        let resumed = try ConfigResume.load(run: run, config: nil, overrides: ["train.actor_lr=0.1"], allowChanges: true)
        XCTAssertEqual(resumed.config.train.dppo.actorLearningRate, 0.1)
        try ConfigResume.record(resumed.changes, in: run, log: { _ in })
        let history = try String(contentsOf: run.url.appendingPathComponent("config-history.yaml"), encoding: .utf8)
        XCTAssertTrue(history.contains("train.actor_lr"), history)
        // A whole other config file counts the same way: the shipped default differs from this run in its name and more.
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../configs/pendulum/finetune.yaml").path
        XCTAssertThrowsError(try ConfigResume.load(run: run, config: shipped, overrides: [], allowChanges: false))
    }

    /// A resume refused after its config was accepted (here: no checkpoint, and another process holding the run)
    /// leaves config-history.yaml untouched, for the learner and for dppo offline.
    func testARefusedResumeRecordsNothing() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let run = try makeRun()
        let history = run.url.appendingPathComponent("config-history.yaml")
        for arguments in [["learner", "--resume", run.url.path, "--set", "train.val_freq=3"],
                          ["offline", "--resume", run.url.path, "--set", "offline.eval_freq=3"]] {
            let (status, output) = try runToEnd(binary, arguments)
            XCTAssertEqual(status, 64, output)
            XCTAssertTrue(output.hasPrefix("config error:") || output.contains("resume"), output)
            XCTAssertFalse(FileManager.default.fileExists(atPath: history.path), "\(arguments[0]): \(output)")
        }
        let held = try run.lock(job: "test")
        let (status, output) = try runToEnd(binary, ["offline", "--resume", run.url.path, "--set", "offline.eval_freq=3"])
        withExtendedLifetime(held) {}
        XCTAssertNotEqual(status, 0, output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: history.path), output)
    }

    func testTheLearnerRefusesAChangedResumeWithOneLine() throws {
        let binary = try FaultRestartTests.dppoBinary()
        let run = try makeRun()
        let process = Process()
        process.executableURL = binary
        process.arguments = ["learner", "--resume", run.url.path, "--set", "model.mlp_dims=[64, 64, 64]"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 64, text)
        XCTAssertEqual(text.split(separator: "\n").count, 1, text)
        XCTAssertTrue(text.contains("model.mlp_dims [256, 256, 256] → [64, 64, 64]"), text)
    }
}
