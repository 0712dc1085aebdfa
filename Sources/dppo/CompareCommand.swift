import ArgumentParser
import Cluster
import Foundation

/// `dppo compare DIR`: groups of runs, their final evaluations with bootstrap intervals, and their curves.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare groups of runs: final evaluation mean, std, median and IQM with 95% bootstrap intervals (Markdown, CSV) and return curves with bands (SVG).",
        discussion: """
        Groups: a sweep directory's runs by every grid value but the seed; otherwise --group LABEL=GLOB (repeatable, \
        globs over run directories, e.g. DPPO='runs/pendulum-dppo/*'); otherwise runs by their config's name. Runs that are \
        still running, failed, or have no evaluation are listed and left out of the statistics.
        """)
    @Argument(help: "A sweep directory, or a folder of runs.")
    var directory: String = "runs"
    @Option(name: .customLong("group"), help: "LABEL=GLOB: the runs whose directory matches GLOB form group LABEL (repeatable).")
    var groups: [String] = []
    @Option(help: "Write PREFIX.md, PREFIX.csv and PREFIX.svg (default: DIR/compare).")
    var output: String?

    func run() throws {
        let root = URL(fileURLWithPath: directory)
        guard FileManager.default.fileExists(atPath: root.path) else { throw ValidationError("no folder \(directory)") }
        var grouped: [(label: String, runs: [RunEntry])] = []
        if !groups.isEmpty {
            let entries = RunListing.scan(roots: try groups.map(globRoot))
            for group in groups {
                guard let equals = group.firstIndex(of: "="), equals != group.startIndex else { throw ValidationError("--group '\(group)' must be LABEL=GLOB") }
                let label = String(group[..<equals]), pattern = URL(fileURLWithPath: String(group[group.index(after: equals)...])).path
                // FNM_PATHNAME: a wildcard stays within one path component, so runs/x/* does not take in runs/x/*/pretrain.
                grouped.append((label, entries.filter { fnmatch(pattern, $0.path, FNM_PATHNAME) == 0 }))
            }
        } else if let sweep = try? Sweep.read(from: root) {
            grouped = RunComparison.groups(sweep: sweep, root: root)
        } else {
            var order: [String] = [], members: [String: [RunEntry]] = [:]
            for entry in RunListing.scan(root) where entry.job != "pretrain" {
                let name = (try? RunConfig.load(path: entry.path + "/config.yaml").name) ?? URL(fileURLWithPath: entry.path).deletingLastPathComponent().lastPathComponent
                if members[name] == nil { order.append(name) }
                members[name, default: []].append(entry)
            }
            grouped = order.map { ($0, members[$0]!) }
        }
        guard grouped.contains(where: { !$0.runs.isEmpty }) else { throw ValidationError("no runs to compare under \(directory)") }
        let summaries = grouped.map { RunComparison.summarise(label: $0.label, runs: $0.runs) }
        let prefix = output ?? root.appendingPathComponent("compare").path
        let table = RunComparison.markdown(summaries)
        try (table + "\n").write(toFile: prefix + ".md", atomically: true, encoding: .utf8)
        try RunComparison.csv(summaries).write(toFile: prefix + ".csv", atomically: true, encoding: .utf8)
        try RunComparison.svg(summaries).write(toFile: prefix + ".svg", atomically: true, encoding: .utf8)
        print(table)
        var written = "\(prefix).md, \(prefix).csv, \(prefix).svg"
        // The PNG is the SVG rendered by rsvg-convert (librsvg2-bin, which scripts/install-deps.sh installs).
        if let converter = ["/usr/bin/rsvg-convert", "/usr/local/bin/rsvg-convert"].first(where: FileManager.default.isExecutableFile) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: converter)
            process.arguments = ["-o", prefix + ".png", prefix + ".svg"]
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus == 0 { written += ", \(prefix).png" }
        } else {
            written += " (no PNG: rsvg-convert is missing; scripts/install-deps.sh installs librsvg2-bin)"
        }
        print("\nwrote " + written)
    }

    /// The fixed folder a glob starts from (its part before the first wildcard).
    func globRoot(_ group: String) throws -> URL {
        guard let equals = group.firstIndex(of: "=") else { throw ValidationError("--group '\(group)' must be LABEL=GLOB") }
        let pattern = String(group[group.index(after: equals)...])
        let fixed = pattern.split(separator: "/", omittingEmptySubsequences: false).prefix { !$0.contains(where: { "*?[".contains($0) }) }
        return URL(fileURLWithPath: fixed.joined(separator: "/"))
    }
}
