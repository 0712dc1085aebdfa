import Foundation

/// Why a dataset, its normalisation or a request for windows was refused. Every message names the
/// array and, where there is one, the index; most say what to do.
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    /// A required array is absent from a file.
    case missingArray(name: String, file: String)
    /// An array has the wrong number of dimensions or the wrong element type.
    case wrongLayout(array: String, expected: String, found: String)
    /// An array's row count differs from the number of steps.
    case rowCountMismatch(array: String, rows: Int, steps: Int)
    /// An array's values do not fill whole rows.
    case partialRow(array: String, values: Int, columns: Int)
    /// `traj_lengths` does not add up to the number of steps.
    case trajectoryLengthSumMismatch(sum: Int, steps: Int)
    /// An episode length is zero or negative.
    case nonPositiveTrajectoryLength(episode: Int, length: Int)
    /// A NaN or ±Inf value.
    case nonFinite(array: String, index: [Int], value: Float)
    /// The dataset has no steps or no episodes.
    case empty
    /// An array has zero columns.
    case zeroDimension(array: String)
    /// Two normalisation vectors (or a vector and the data) disagree on the dimension.
    case dimensionMismatch(array: String, expected: Int, found: Int)
    /// A normalisation range with max < min.
    case invertedRange(array: String, index: Int, minimum: Float, maximum: Float)
    /// The file is not a dataset of this format, or is of a newer version.
    case unsupportedFile(file: String, detail: String)
    /// Metadata uses a key the file format reserves.
    case reservedMetadataKey(String)
    /// Window sizes that cannot be cut from this dataset.
    case invalidWindow(String)

    /// The message shown to the user.
    public var description: String {
        switch self {
        case .missingArray(let name, let file):
            return "\(file) has no array \(name); a dataset needs states, actions and traj_lengths"
        case .wrongLayout(let array, let expected, let found):
            return "array \(array) is \(found); expected \(expected)"
        case .rowCountMismatch(let array, let rows, let steps):
            return "array \(array) has \(rows) rows but states has \(steps); every step needs exactly one row of each array"
        case .partialRow(let array, let values, let columns):
            return "array \(array) holds \(values) values, which is not a whole number of rows of \(columns)"
        case .trajectoryLengthSumMismatch(let sum, let steps):
            return "traj_lengths adds up to \(sum) steps but states has \(steps) rows; the episode lengths must cover every step exactly once"
        case .nonPositiveTrajectoryLength(let episode, let length):
            return "traj_lengths[\(episode)] is \(length); every episode needs at least one step"
        case .nonFinite(let array, let index, let value):
            return "\(array)[\(index.map(String.init).joined(separator: ", "))] is \(value), the first non-finite value in \(array); remove or repair that step before training"
        case .empty:
            return "the dataset holds no steps; it needs at least one episode"
        case .zeroDimension(let array):
            return "array \(array) has zero columns; every step needs at least one value"
        case .dimensionMismatch(let array, let expected, let found):
            return "\(array) has \(found) entries but \(expected) are expected (one per dimension); was it computed for another task?"
        case .invertedRange(let array, let index, let minimum, let maximum):
            return "\(array) dimension \(index) has max \(maximum) < min \(minimum); the normalisation file is corrupt"
        case .unsupportedFile(let file, let detail):
            return "\(file) cannot be read as a dataset: \(detail)"
        case .reservedMetadataKey(let key):
            return "metadata key \(key) is reserved by the dataset file format; rename it"
        case .invalidWindow(let detail):
            return "cannot cut training windows: \(detail)"
        }
    }
}

/// Behaviour-cloning data as the DPPO reference stores it (docs/algorithms.md §3): episodes concatenated,
/// `states [N, Do]` and `actions [N, Da]` row-major, `trajectoryLengths [E]` adding up to N.
///
/// States and actions are in environment units; normalisation is applied when windows are cut
/// (`chunkDataset`) and travels with the dataset in `normalization`.
public struct TrajectoryDataset: Sendable, Equatable {
    /// Observations, `[N, Do]` row-major.
    public var states: [Float]
    /// Do, the observation dimension.
    public var stateDimension: Int
    /// Actions, `[N, Da]` row-major; `actions` row i was taken in `states` row i.
    public var actions: [Float]
    /// Da, the action dimension.
    public var actionDimension: Int
    /// Steps per episode, in storage order; they add up to N.
    public var trajectoryLengths: [Int]
    /// Reward after each step, `[N]`, when the source has them.
    public var rewards: [Float]?
    /// Whether each step ended its episode in a terminal state, `[N]`, when the source has them.
    public var terminals: [Bool]?
    /// Free-form strings saved with the dataset; `task` and `source` are the keys tools read.
    public var metadata: [String: String]
    /// The statistics training normalises with; `save(to:)` computes them from the data when nil.
    public var normalization: Normalization?

    /// A dataset of the given arrays; call `validate()` before trusting it.
    public init(states: [Float], stateDimension: Int, actions: [Float], actionDimension: Int, trajectoryLengths: [Int],
                rewards: [Float]? = nil, terminals: [Bool]? = nil, metadata: [String: String] = [:], normalization: Normalization? = nil) {
        self.states = states
        self.stateDimension = stateDimension
        self.actions = actions
        self.actionDimension = actionDimension
        self.trajectoryLengths = trajectoryLengths
        self.rewards = rewards
        self.terminals = terminals
        self.metadata = metadata
        self.normalization = normalization
    }

    /// N, the number of steps (rows of `states`).
    public var stepCount: Int { stateDimension > 0 ? states.count / stateDimension : 0 }

    /// E, the number of episodes.
    public var episodeCount: Int { trajectoryLengths.count }

    /// The step range of every episode, in storage order.
    public var episodeRanges: [Range<Int>] {
        var start = 0
        return trajectoryLengths.map { length in
            defer { start += length }
            return start..<(start + length)
        }
    }

    /// Checks everything training relies on, in this order: non-zero dimensions, whole rows, at
    /// least one step, one row of every array per step, positive episode lengths that add up to N,
    /// finite values, and a normalisation (when present) of the data's dimensions.
    public func validate() throws {
        guard stateDimension > 0 else { throw DatasetError.zeroDimension(array: "states") }
        guard actionDimension > 0 else { throw DatasetError.zeroDimension(array: "actions") }
        guard states.count % stateDimension == 0 else { throw DatasetError.partialRow(array: "states", values: states.count, columns: stateDimension) }
        guard actions.count % actionDimension == 0 else { throw DatasetError.partialRow(array: "actions", values: actions.count, columns: actionDimension) }
        let steps = stepCount
        guard steps > 0, !trajectoryLengths.isEmpty else { throw DatasetError.empty }
        let actionRows = actions.count / actionDimension
        guard actionRows == steps else { throw DatasetError.rowCountMismatch(array: "actions", rows: actionRows, steps: steps) }
        if let rewards, rewards.count != steps { throw DatasetError.rowCountMismatch(array: "rewards", rows: rewards.count, steps: steps) }
        if let terminals, terminals.count != steps { throw DatasetError.rowCountMismatch(array: "terminals", rows: terminals.count, steps: steps) }
        if let episode = trajectoryLengths.firstIndex(where: { $0 <= 0 }) {
            throw DatasetError.nonPositiveTrajectoryLength(episode: episode, length: trajectoryLengths[episode])
        }
        let (sum, overflow) = trajectoryLengths.reduce((0, false)) { partial, length in
            let next = partial.0.addingReportingOverflow(length)
            return (next.partialValue, partial.1 || next.overflow)
        }
        guard !overflow, sum == steps else { throw DatasetError.trajectoryLengthSumMismatch(sum: overflow ? Int.max : sum, steps: steps) }
        try Self.requireFinite(states, array: "states", columns: stateDimension)
        try Self.requireFinite(actions, array: "actions", columns: actionDimension)
        if let rewards { try Self.requireFinite(rewards, array: "rewards", columns: nil) }
        if let normalization {
            try normalization.validate()
            try normalization.requireDimensions(states: stateDimension, actions: actionDimension)
        }
    }

    /// Throws for the first NaN or ±Inf, with its row and column (or flat index when `columns` is nil).
    static func requireFinite(_ values: [Float], array: String, columns: Int?) throws {
        guard let index = values.firstIndex(where: { !$0.isFinite }) else { return }
        let position = columns.map { [index / $0, index % $0] } ?? [index]
        throw DatasetError.nonFinite(array: array, index: position, value: values[index])
    }
}

/// Minimum, mean and maximum of a set of numbers.
public struct SummaryStatistics: Sendable, Equatable {
    /// The smallest value.
    public var minimum: Double
    /// The arithmetic mean.
    public var mean: Double
    /// The largest value.
    public var maximum: Double

    /// The statistics of `values`, or nil when there are none.
    public init?(_ values: [Double]) {
        guard let minimum = values.min(), let maximum = values.max() else { return nil }
        self.minimum = minimum
        self.mean = values.reduce(0, +) / Double(values.count)
        self.maximum = maximum
    }
}

/// What `dppo dataset inspect` prints: sizes, episode lengths and, when rewards exist, episode returns.
public struct DatasetSummary: Sendable, Equatable {
    /// N.
    public var stepCount: Int
    /// E.
    public var episodeCount: Int
    /// Do.
    public var stateDimension: Int
    /// Da.
    public var actionDimension: Int
    /// Steps per episode.
    public var episodeLength: SummaryStatistics?
    /// Undiscounted sum of rewards per episode; nil without rewards.
    public var episodeReturn: SummaryStatistics?
    /// Steps marked terminal; nil without terminals.
    public var terminalCount: Int?
}

extension TrajectoryDataset {
    /// Undiscounted return of every episode, in storage order; nil without rewards.
    public var episodeReturns: [Double]? {
        rewards.map { rewards in episodeRanges.map { range in range.reduce(0) { $0 + Double(rewards[$1]) } } }
    }

    /// Sizes and per-episode statistics of a validated dataset.
    public func summary() -> DatasetSummary {
        DatasetSummary(stepCount: stepCount, episodeCount: episodeCount, stateDimension: stateDimension, actionDimension: actionDimension,
                       episodeLength: SummaryStatistics(trajectoryLengths.map(Double.init)),
                       episodeReturn: episodeReturns.flatMap(SummaryStatistics.init),
                       terminalCount: terminals.map { $0.filter { $0 }.count })
    }
}
