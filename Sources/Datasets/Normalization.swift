import Foundation

/// Per-dimension min/max of observations and actions, and the maps of docs/algorithms.md §3 that use them:
/// x_n = 2(x − min)/(max − min + 1e−6) − 1 for observations and actions, and
/// a = (a_n + 1)/2·(max − min) + min (without the 1e−6) to turn a policy output back into an action.
public struct Normalization: Codable, Equatable, Sendable {
    /// Per-dimension minimum of the observations, `[Do]`.
    public var obsMin: [Float]
    /// Per-dimension maximum of the observations, `[Do]`.
    public var obsMax: [Float]
    /// Per-dimension minimum of the actions, `[Da]`.
    public var actionMin: [Float]
    /// Per-dimension maximum of the actions, `[Da]`.
    public var actionMax: [Float]

    /// The statistics as given; call `validate()` before trusting them.
    public init(obsMin: [Float], obsMax: [Float], actionMin: [Float], actionMax: [Float]) {
        self.obsMin = obsMin
        self.obsMax = obsMax
        self.actionMin = actionMin
        self.actionMax = actionMax
    }

    /// The per-dimension min/max of a dataset's states and actions, as the reference's
    /// preprocessing computes them. The dataset is validated first.
    public init(dataset: TrajectoryDataset) throws {
        var unnormalized = dataset
        unnormalized.normalization = nil
        try unnormalized.validate()
        let observationRange = Self.columnRanges(dataset.states, columns: dataset.stateDimension)
        let actionRange = Self.columnRanges(dataset.actions, columns: dataset.actionDimension)
        self.init(obsMin: observationRange.minimum, obsMax: observationRange.maximum, actionMin: actionRange.minimum, actionMax: actionRange.maximum)
    }

    /// Reads the reference's `normalization.npz` (arrays `obs_min`, `obs_max`, `action_min`,
    /// `action_max`, as `np.savez` or `np.savez_compressed` write them) and validates it.
    public init(referenceFile url: URL) throws {
        let archive = try NumpyArchive(contentsOf: url)
        func vector(_ name: String) throws -> [Float] {
            guard archive.contains(name) else { throw DatasetError.missingArray(name: name, file: url.lastPathComponent) }
            let array = try archive.array(named: name)
            guard array.shape.count == 1 else {
                throw DatasetError.wrongLayout(array: name, expected: "a vector (one value per dimension)", found: "shaped \(array.shape)")
            }
            return array.floatValues
        }
        self.init(obsMin: try vector("obs_min"), obsMax: try vector("obs_max"),
                  actionMin: try vector("action_min"), actionMax: try vector("action_max"))
        try validate()
    }

    /// Do, the observation dimension these statistics are for.
    public var stateDimension: Int { obsMin.count }

    /// Da, the action dimension these statistics are for.
    public var actionDimension: Int { actionMin.count }

    /// Checks that min and max have one matching, non-zero length for observations and for actions,
    /// that every value is finite, and that max ≥ min in every dimension.
    public func validate() throws {
        for (name, minimum, maximum) in [("obs", obsMin, obsMax), ("action", actionMin, actionMax)] {
            guard !minimum.isEmpty else { throw DatasetError.zeroDimension(array: "\(name)_min") }
            guard maximum.count == minimum.count else {
                throw DatasetError.dimensionMismatch(array: "\(name)_max", expected: minimum.count, found: maximum.count)
            }
            try TrajectoryDataset.requireFinite(minimum, array: "\(name)_min", columns: nil)
            try TrajectoryDataset.requireFinite(maximum, array: "\(name)_max", columns: nil)
            if let index = minimum.indices.first(where: { maximum[$0] < minimum[$0] }) {
                throw DatasetError.invertedRange(array: name, index: index, minimum: minimum[index], maximum: maximum[index])
            }
        }
    }

    /// Throws unless these statistics are for Do = `states` and Da = `actions`.
    func requireDimensions(states: Int, actions: Int) throws {
        guard stateDimension == states else { throw DatasetError.dimensionMismatch(array: "obs_min", expected: states, found: stateDimension) }
        guard actionDimension == actions else { throw DatasetError.dimensionMismatch(array: "action_min", expected: actions, found: actionDimension) }
    }

    /// x_n = 2(x − obsMin)/(obsMax − obsMin + 1e−6) − 1 for observations `[k, Do]`, row-major (usually k = 1).
    public func normalizeObservation(_ observation: [Float]) -> [Float] {
        Self.normalize(observation, minimum: obsMin, maximum: obsMax)
    }

    /// a_n = 2(a − actionMin)/(actionMax − actionMin + 1e−6) − 1 for actions `[k, Da]`, row-major (usually k = 1).
    public func normalizeAction(_ action: [Float]) -> [Float] {
        Self.normalize(action, minimum: actionMin, maximum: actionMax)
    }

    /// a = (a_n + 1)/2·(actionMax − actionMin) + actionMin for one normalised action `[Da]`. No 1e−6 and
    /// no clipping, as the reference's environment wrapper (docs/algorithms.md §8, point 17).
    public func denormalizeAction(_ normalizedAction: [Float]) -> [Float] {
        precondition(normalizedAction.count == actionDimension, "action has \(normalizedAction.count) values, normalisation is for \(actionDimension)")
        return normalizedAction.indices.map { (normalizedAction[$0] + 1) / 2 * (actionMax[$0] - actionMin[$0]) + actionMin[$0] }
    }

    /// The forward map shared by observations and actions; `values` may hold several rows.
    static func normalize(_ values: [Float], minimum: [Float], maximum: [Float]) -> [Float] {
        precondition(!minimum.isEmpty && values.count % minimum.count == 0, "\(values.count) values are not whole rows of \(minimum.count)")
        return values.indices.map { index in
            let column = index % minimum.count
            return 2 * (values[index] - minimum[column]) / (maximum[column] - minimum[column] + 1e-6) - 1
        }
    }

    /// Per-column minimum and maximum of a non-empty row-major block.
    private static func columnRanges(_ values: [Float], columns: Int) -> (minimum: [Float], maximum: [Float]) {
        var minimum = Array(values[0..<columns]), maximum = minimum
        for (index, value) in values.enumerated() {
            let column = index % columns
            minimum[column] = min(minimum[column], value)
            maximum[column] = max(maximum[column], value)
        }
        return (minimum, maximum)
    }
}
