import Foundation

extension TrajectoryDataset {
    /// Reads the DPPO reference's pre-training file (`train.npz`, written by `np.savez_compressed`
    /// in `script/dataset/get_d4rl_dataset.py` and `process_robomimic_dataset.py`): `states [N, Do]`,
    /// `actions [N, Da]`, integer `traj_lengths [E]`, and `rewards [N]` and `terminals [N]` when present.
    /// Float64 arrays are rounded to Float32. The result is validated.
    ///
    /// The reference's scripts write `normalization.npz` exactly when they store states and actions
    /// already normalised with it (x_n = 2(x − min)/(max − min + 1e−6) − 1). Pass that file's
    /// statistics as `normalization` and the values are mapped back to environment units by the
    /// inverse of that map, so that `chunkDataset` does not normalise them a second time; the
    /// statistics are kept in the dataset. Without `normalization` the values are kept as stored.
    public init(referenceNPZ url: URL, normalization: Normalization? = nil) throws {
        let archive = try NumpyArchive(contentsOf: url)
        let file = url.lastPathComponent
        func requiredArray(_ name: String) throws -> NumpyArray {
            guard archive.contains(name) else { throw DatasetError.missingArray(name: name, file: file) }
            return try archive.array(named: name)
        }
        func optionalArray(_ name: String) throws -> NumpyArray? {
            archive.contains(name) ? try archive.array(named: name) : nil
        }
        func layout(_ array: NumpyArray) -> String { "\(array.elementType.rawValue) shaped \(array.shape)" }
        func matrix(_ array: NumpyArray, columnsName: String) throws -> (values: [Float], columns: Int) {
            guard array.shape.count == 2 else { throw DatasetError.wrongLayout(array: array.name, expected: "2-D [N, \(columnsName)]", found: layout(array)) }
            return (array.floatValues, array.shape[1])
        }
        func integerVector(_ array: NumpyArray, expected: String) throws -> [Int] {
            guard array.shape.count == 1, let values = array.integerValues else {
                throw DatasetError.wrongLayout(array: array.name, expected: expected, found: layout(array))
            }
            return values
        }

        var states = try matrix(requiredArray("states"), columnsName: "Do")
        var actions = try matrix(requiredArray("actions"), columnsName: "Da")
        let trajectoryLengths = try integerVector(requiredArray("traj_lengths"), expected: "an integer vector [E]")
        let rewards = try optionalArray("rewards").map { array -> [Float] in
            guard array.shape.count == 1 else { throw DatasetError.wrongLayout(array: "rewards", expected: "a vector [N]", found: layout(array)) }
            return array.floatValues
        }
        let terminals = try optionalArray("terminals").map { try integerVector($0, expected: "a boolean or integer vector [N]").map { $0 != 0 } }

        if let normalization {
            try normalization.validate()
            try normalization.requireDimensions(states: states.columns, actions: actions.columns)
            states.values = Self.invertPreprocessing(states.values, minimum: normalization.obsMin, maximum: normalization.obsMax)
            actions.values = Self.invertPreprocessing(actions.values, minimum: normalization.actionMin, maximum: normalization.actionMax)
        }
        self.init(states: states.values, stateDimension: states.columns, actions: actions.values, actionDimension: actions.columns,
                  trajectoryLengths: trajectoryLengths, rewards: rewards, terminals: terminals,
                  metadata: ["source": file], normalization: normalization)
        try validate()
    }

    /// x = (x_n + 1)/2·(max − min + 1e−6) + min: the exact inverse of the reference's preprocessing,
    /// which keeps the 1e−6 (unlike `denormalizeAction`, the environment wrapper's map). Computed in
    /// Double so that normalising again reproduces the stored values to within Float32 rounding.
    private static func invertPreprocessing(_ values: [Float], minimum: [Float], maximum: [Float]) -> [Float] {
        values.indices.map { index in
            let column = index % minimum.count
            let scale = (Double(maximum[column]) - Double(minimum[column]) + 1e-6) / 2
            return Float((Double(values[index]) + 1) * scale + Double(minimum[column]))
        }
    }
}
