import Foundation
import Tensors

/// `dppo compare`: runs grouped (by a sweep's grid, or by globs), each group's final evaluations summarised with
/// 95% bootstrap confidence intervals (rliable's recommendation for few seeds), and its curves.
public enum RunComparison {
    public struct Statistic: Sendable, Equatable {
        public var value: Double
        public var low: Double
        public var high: Double
    }

    public struct Group: Sendable {
        public var label: String
        public var runs: [RunEntry]
        /// The runs in the statistics and curves (finished, with an evaluation), and their final evaluations.
        public var used: [RunEntry]
        public var finals: [Double]
        public var mean: Statistic?
        public var standardDeviation: Statistic?
        public var median: Statistic?
        public var interquartileMean: Statistic?
        /// Runs left out of the statistics: still running, failed, or without an evaluation.
        public var excluded: [String]
    }

    /// Groups a sweep's runs by every grid value but the seed's.
    public static func groups(sweep: Sweep, root: URL) -> [(label: String, runs: [RunEntry])] {
        var order: [String] = [], members: [String: [RunEntry]] = [:]
        for run in sweep.runs {
            let label = run.overrides.filter { !$0.hasPrefix("seed=") }.joined(separator: ",")
            let name = label.isEmpty ? "all" : label
            if members[name] == nil { order.append(name) }
            members[name, default: []].append(RunListing.entry(for: URL(fileURLWithPath: run.directory), root: root))
        }
        return order.map { ($0, members[$0]!) }
    }

    public static func summarise(label: String, runs: [RunEntry], resamples: Int = 2_000) -> Group {
        let usable = runs.filter { $0.state == .finished && $0.finalEvaluation != nil }
        let finals = usable.map { $0.finalEvaluation! }
        let excluded = runs.filter { run in !usable.contains { $0.path == run.path } }
            .map { "\($0.name) (\($0.finalEvaluation == nil ? "no evaluation" : $0.state.rawValue))" }
        var group = Group(label: label, runs: runs, used: usable, finals: finals, excluded: excluded)
        guard !finals.isEmpty else { return group }
        group.mean = bootstrap(finals, resamples: resamples, statistic: mean)
        group.standardDeviation = bootstrap(finals, resamples: resamples, statistic: standardDeviation)
        group.median = bootstrap(finals, resamples: resamples, statistic: median)
        group.interquartileMean = bootstrap(finals, resamples: resamples, statistic: interquartileMean)
        return group
    }

    /// The statistic of `values`, with the 2.5th and 97.5th percentiles of it over `resamples` resamples drawn
    /// with replacement (a fixed Philox stream: the same runs give the same interval).
    public static func bootstrap(_ values: [Double], resamples: Int, statistic: ([Double]) -> Double) -> Statistic {
        var random = Philox(seed: 0xB007, stream: UInt64(values.count))
        var estimates: [Double] = []
        estimates.reserveCapacity(resamples)
        var sample = [Double](repeating: 0, count: values.count)
        for _ in 0..<resamples {
            for index in sample.indices { sample[index] = values[Int(random.nextUInt64() % UInt64(values.count))] }
            estimates.append(statistic(sample))
        }
        estimates.sort()
        func percentile(_ p: Double) -> Double { estimates[min(estimates.count - 1, max(0, Int((p * Double(estimates.count - 1)).rounded())))] }
        return Statistic(value: statistic(values), low: percentile(0.025), high: percentile(0.975))
    }

    public static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(values.count) }

    /// The sample standard deviation (n − 1); 0 for one value.
    public static func standardDeviation(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let m = mean(values)
        return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)).squareRoot()
    }

    public static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted(), n = sorted.count
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }

    /// The interquartile mean as rliable computes it (`scipy.stats.trim_mean(x, 0.25)`): the mean of the sorted
    /// values with ⌊n/4⌋ cut from each end.
    public static func interquartileMean(_ values: [Double]) -> Double {
        let sorted = values.sorted(), cut = sorted.count / 4
        return mean(Array(sorted[cut..<(sorted.count - cut)]))
    }

    // MARK: - Tables

    static func cell(_ statistic: Statistic?) -> String {
        guard let statistic else { return "—" }
        return String(format: "%.1f [%.1f, %.1f]", statistic.value, statistic.low, statistic.high)
    }

    public static func markdown(_ groups: [Group]) -> String {
        var lines = ["| group | runs | final eval: mean [95% CI] | std | median | IQM |", "|---|---:|---:|---:|---:|---:|"]
        for group in groups {
            lines.append("| \(group.label) | \(group.finals.count) of \(group.runs.count) | \(cell(group.mean)) | \(cell(group.standardDeviation)) | "
                         + "\(cell(group.median)) | \(cell(group.interquartileMean)) |")
        }
        let notes = groups.flatMap { group in group.excluded.map { "\(group.label): \($0)" } }
        if !notes.isEmpty { lines += ["", "Left out: " + notes.joined(separator: "; ") + "."] }
        lines += ["", "Intervals: 95% percentile bootstrap over the runs, 2,000 resamples (a fixed stream)."]
        return lines.joined(separator: "\n")
    }

    public static func csv(_ groups: [Group]) -> String {
        var lines = ["group,runs,used,mean,mean_low,mean_high,std,std_low,std_high,median,median_low,median_high,iqm,iqm_low,iqm_high"]
        func fields(_ statistic: Statistic?) -> String {
            guard let statistic else { return ",," }
            return "\(statistic.value),\(statistic.low),\(statistic.high)"
        }
        for group in groups {
            let label = group.label.contains(",") || group.label.contains("\"") ? "\"\(group.label.replacingOccurrences(of: "\"", with: "\"\""))\"" : group.label
            lines.append("\(label),\(group.runs.count),\(group.finals.count),\(fields(group.mean)),\(fields(group.standardDeviation)),"
                         + "\(fields(group.median)),\(fields(group.interquartileMean))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: - Curves

    /// One group's curve: at each environment-step count where every run it uses has a value, the mean and
    /// a 95% bootstrap interval of the mean over the runs.
    public static func curve(_ group: Group, key: String) -> [(steps: Double, mean: Double, low: Double, high: Double)] {
        let series = group.used.map { run -> [Int: Double] in
            var points: [Int: Double] = [:]
            for record in RunListing.metricsRecords(URL(fileURLWithPath: run.path).appendingPathComponent("metrics.jsonl")) {
                if let steps = record["env_steps"] as? Int, let value = RunListing.number(record[key]) { points[steps] = value }
            }
            return points
        }.filter { !$0.isEmpty }
        guard let first = series.first else { return [] }
        let shared = first.keys.filter { step in series.allSatisfy { $0[step] != nil } }.sorted()
        return shared.map { step in
            let values = series.map { $0[step]! }
            let statistic = bootstrap(values, resamples: 500, statistic: mean)
            return (Double(step), statistic.value, statistic.low, statistic.high)
        }
    }

    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]

    /// Two panels, evaluation and training return against environment steps, each group's mean with its 95% CI as
    /// a band.
    public static func svg(_ groups: [Group]) -> String {
        let height = 420.0, panel = 440.0, margin = 60.0
        let width = 2 * panel + 3 * margin + 20
        var out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"]
        for (column, (key, title)) in [("eval/return", "evaluation return"), ("charts/episodic_return", "training episode return")].enumerated() {
            let left = margin + Double(column) * (panel + margin), top = 40.0, plotHeight = height - 100
            let curves = groups.map { curve($0, key: key) }
            let points = curves.flatMap { $0 }
            out.append("<text x=\"\(left + panel / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">\(title) (mean, 95% CI)</text>")
            out.append("<rect x=\"\(left)\" y=\"\(top)\" width=\"\(panel)\" height=\"\(plotHeight)\" fill=\"none\" stroke=\"#444\"/>")
            guard !points.isEmpty else {
                out.append("<text x=\"\(left + panel / 2)\" y=\"\(top + plotHeight / 2)\" text-anchor=\"middle\">no data</text>")
                continue
            }
            let xMax = max(points.map(\.steps).max()!, 1)
            var yMin = points.map(\.low).min()!, yMax = points.map(\.high).max()!
            let pad = 0.05 * max(yMax - yMin, 1)
            yMin -= pad; yMax += pad
            func x(_ value: Double) -> Double { left + panel * value / xMax }
            func y(_ value: Double) -> Double { top + plotHeight * (yMax - value) / (yMax - yMin) }
            for tick in 0...4 {
                let value = yMin + (yMax - yMin) * Double(tick) / 4, steps = xMax * Double(tick) / 4
                out.append(String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>", left - 6, y(value) + 4, value))
                out.append(String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f</text>", x(steps), top + plotHeight + 16, steps))
            }
            out.append("<text x=\"\(left + panel / 2)\" y=\"\(top + plotHeight + 36)\" text-anchor=\"middle\">environment steps</text>")
            for (index, curve) in curves.enumerated() where !curve.isEmpty {
                let color = colors[index % colors.count]
                let upper = curve.map { String(format: "%.1f,%.1f", x($0.steps), y($0.high)) }
                let lower = curve.reversed().map { String(format: "%.1f,%.1f", x($0.steps), y($0.low)) }
                out.append("<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(color)\" fill-opacity=\"0.2\" stroke=\"none\"/>")
                let line = curve.map { String(format: "%.1f,%.1f", x($0.steps), y($0.mean)) }.joined(separator: " ")
                out.append("<polyline points=\"\(line)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>")
                if column == 0 {
                    let position = String(format: "x=\"%.1f\" y=\"%.1f\"", left + 8, top + 16 + 16 * Double(index))
                    out.append("<text \(position) fill=\"\(color)\">\(escaped(groups[index].label)) (\(groups[index].finals.count) runs)</text>")
                }
            }
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
