import ArgumentParser
import Cluster

/// `dppo config show|get`: the resolved config (file, then `--set`, then defaults), as the jobs see it. The launchers
/// ask it for the values they need instead of reading the YAML themselves.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the resolved config: every key with its value from the file, --set or its default.",
        subcommands: [Show.self, Get.self])

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
            do { print(try config.resolvedValue(of: key).text) } catch let error as ConfigError { throw ValidationError(error.description) }
        }
    }
}
