/// How GAE treats an episode that was cut by the time limit (docs/algorithms.md §4.5, §8.11).
public enum TruncationHandling: String, Sendable, Codable, CaseIterable {
    /// Bootstrap from V(final observation) and stop the recursion at the episode boundary (correct).
    case bootstrap
    /// The reference's behaviour: only `terminated` gates; V of the next episode's first observation is used.
    case reference
}

/// Generalised advantage estimation over one environment stream of decisions (docs/algorithms.md §4.5).
///
/// - rewards, values, terminated, truncated: one entry per decision, in time order.
/// - nextValues: V of the observation that follows each decision (the next decision's observation,
///   the bootstrap observation after the last one, or, for `bootstrap` handling, the final observation of a truncated episode).
/// - advantages, returns: written, one per decision.
public func generalizedAdvantages(
    rewards: UnsafePointer<Float>, values: UnsafePointer<Float>, nextValues: UnsafePointer<Float>,
    terminated: UnsafePointer<UInt8>, truncated: UnsafePointer<UInt8>, count: Int,
    gamma: Float, lambda: Float, truncation: TruncationHandling,
    advantages: UnsafeMutablePointer<Float>, returns: UnsafeMutablePointer<Float>
) {
    var running: Float = 0
    for step in stride(from: count - 1, through: 0, by: -1) {
        let nonTerminal: Float = terminated[step] != 0 ? 0 : 1
        let continues: Float
        switch truncation {
        case .bootstrap: continues = (terminated[step] != 0 || truncated[step] != 0) ? 0 : 1
        case .reference: continues = nonTerminal
        }
        let delta = rewards[step] + gamma * nextValues[step] * nonTerminal - values[step]
        running = delta + gamma * lambda * continues * running
        advantages[step] = running
        returns[step] = running + values[step]
    }
}

/// Running reward scaling of the reference (docs/algorithms.md §4.5 step 1): a discounted running return per
/// stream, whose running variance (parallel merge, initial mean 0, var 1, count 1e−4, merged variance M2/(n − 1)) scales rewards.
public struct RunningRewardScaler: Sendable, Codable, Equatable {
    public var gamma: Double
    public var clip: Double
    public var epsilon: Double
    public var mean: Double = 0
    public var variance: Double = 1
    public var count: Double = 1e-4
    /// Discounted running return per stream; persists across iterations.
    public var runningReturns: [Double]

    public init(streams: Int, gamma: Double = 0.99, clip: Double = 10, epsilon: Double = 1e-8) {
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon
        runningReturns = [Double](repeating: 0, count: streams)
    }

    /// Scales `rewards` [streams × steps, stream-major] in place; `firsts` marks decisions that start an episode.
    public mutating func scale(rewards: UnsafeMutablePointer<Float>, firsts: UnsafePointer<UInt8>, streams: Int, steps: Int) {
        precondition(streams == runningReturns.count, "reward scaler has \(runningReturns.count) streams, batch has \(streams)")
        var batch = [Double](repeating: 0, count: streams * steps)
        for stream in 0..<streams {
            var running = runningReturns[stream]
            for step in 0..<steps {
                let index = stream * steps + step
                running = Double(rewards[index]) + gamma * (firsts[index] != 0 ? 0 : 1) * running
                batch[index] = running
            }
            runningReturns[stream] = running
        }
        let batchMean = batch.reduce(0, +) / Double(batch.count)
        let batchVariance = batch.reduce(0) { $0 + ($1 - batchMean) * ($1 - batchMean) } / Double(batch.count)
        let batchCount = Double(batch.count)
        let delta = batchMean - mean
        let total = count + batchCount
        let merged = variance * count + batchVariance * batchCount + delta * delta * count * batchCount / total
        mean += delta * batchCount / total
        // The reference divides the merged sum of squares by n_total − 1 (docs/algorithms.md §8.15).
        variance = merged / (total - 1)
        count = total
        let scale = 1 / (variance + epsilon).squareRoot()
        for index in 0..<(streams * steps) {
            rewards[index] = Float(min(max(Double(rewards[index]) * scale, -clip), clip))
        }
    }
}
