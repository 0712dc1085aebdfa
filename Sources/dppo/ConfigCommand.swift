import ArgumentParser
import Cluster

/// `dppo config show|get`: the resolved config (file, then `--set`, then defaults), as the jobs see it. The launchers
/// ask it for the values they need instead of reading the YAML themselves.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the resolved config: every key with its value from the file, --set or its default.",
        subcommands: [Show.self, Get.self, Hash.self, RunDir.self, Docs.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every resolved key as YAML (sections nested, keys sorted).")
        @OptionGroup var options: ConfigOptions

        func run() throws {
            print(try options.load().resolvedValuesYAML(), terminator: "")
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the resolved value of one key, e.g. cluster.actors (a list prints as [a, b], no value as null).")
        @OptionGroup var options: ConfigOptions
        @Argument(help: "The key path, e.g. cluster.actors or pretrain.checkpoint.")
        var key: String

        func run() throws {
            let config = try options.load()
            print(try config.resolvedValue(of: key).text)
        }
    }

    struct Hash: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the config hash actors send in hello (decimal u64; docs/wire-format.md, The config hash).")
        @OptionGroup var options: ConfigOptions

        func run() throws { print(try options.load().compatibilityHash) }
    }

    struct RunDir: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run-dir",
            abstract: "Create a fresh run directory for the config, runs/<name>/<UTC time>-s<seed> (a suffix -2, -3, … when taken), and print its path.",
            discussion: "Created atomically, so launchers started in the same second never share one; the launchers use it.")
        @OptionGroup var options: ConfigOptions
        @Option(help: "The folder that holds the runs.")
        var root: String = "runs"

        func run() throws {
            let config = try options.load()
            print(try RunDirectory.create(root: root, name: config.name, seed: config.seed).url.path)
        }
    }

    struct Docs: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the reference tables of every key (default, accepted values, hash, meaning) as Markdown.",
            discussion: "They are generated from the key declarations; --update rewrites the generated block of a file in place.")
        @Option(help: "A Markdown file whose generated block to replace, e.g. docs/configuration.md.")
        var update: String?

        func run() throws {
            guard let update else { print(RunConfig.optionsMarkdown()); return }
            guard let text = try? String(contentsOfFile: update, encoding: .utf8) else { throw ValidationError("cannot read \(update)") }
            try RunConfig.updatingOptionsMarkdown(in: text).write(toFile: update, atomically: true, encoding: .utf8)
        }
    }
}
