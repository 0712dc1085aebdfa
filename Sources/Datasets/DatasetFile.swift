import Foundation
import Networks

/// The project's dataset file: one safetensors file (docs/datasets.md).
///
/// | tensor | dtype | shape |
/// |---|---|---|
/// | `states` | F32 | [N, Do] |
/// | `actions` | F32 | [N, Da] |
/// | `traj_lengths` | I64 | [E] |
/// | `rewards` (optional) | F32 | [N] |
/// | `terminals` (optional) | BOOL | [N] |
/// | `normalization.obs_min`, `normalization.obs_max` | F32 | [Do] |
/// | `normalization.action_min`, `normalization.action_max` | F32 | [Da] |
///
/// Metadata: `format` = `dppo-swift-dataset`, `version` = `1`, and the dataset's own strings
/// (`task`, `source`, …).
extension TrajectoryDataset {
    /// The `format` metadata value that marks a dataset file.
    public static let fileFormat = "dppo-swift-dataset"
    /// The newest file version this build writes and reads. It goes up only when a reader of the
    /// previous version would misread a new file; optional tensors and metadata keys do not bump it.
    public static let fileVersion = 1

    /// Metadata keys the file format owns; a dataset's own metadata may not use them.
    public static let reservedMetadataKeys: Set<String> = ["format", "version"]

    /// Validates the dataset and writes it, with its normalisation (computed from the data when
    /// `normalization` is nil), atomically to `url`.
    public func save(to url: URL) throws {
        try validate()
        if let key = metadata.keys.sorted().first(where: Self.reservedMetadataKeys.contains) { throw DatasetError.reservedMetadataKey(key) }
        let statistics = try normalization ?? Normalization(dataset: self)
        let steps = stepCount
        var tensors = [
            NamedTensor(name: "states", shape: [steps, stateDimension], values: states),
            NamedTensor(name: "actions", shape: [steps, actionDimension], values: actions),
            NamedTensor(name: "normalization.obs_min", shape: [stateDimension], values: statistics.obsMin),
            NamedTensor(name: "normalization.obs_max", shape: [stateDimension], values: statistics.obsMax),
            NamedTensor(name: "normalization.action_min", shape: [actionDimension], values: statistics.actionMin),
            NamedTensor(name: "normalization.action_max", shape: [actionDimension], values: statistics.actionMax),
        ]
        if let rewards { tensors.append(NamedTensor(name: "rewards", shape: [steps], values: rewards)) }
        var integerTensors = [NamedIntegerTensor(name: "traj_lengths", shape: [episodeCount], values: trajectoryLengths.map(Int64.init))]
        if let terminals {
            integerTensors.append(NamedIntegerTensor(name: "terminals", shape: [steps], elementType: .bool, values: terminals.map { $0 ? 1 : 0 }))
        }
        let fileMetadata = metadata.merging(["format": Self.fileFormat, "version": String(Self.fileVersion)]) { $1 }
        try Safetensors.write(tensors, integerTensors: integerTensors, metadata: fileMetadata, to: url)
    }

    /// Reads a file written by `save(to:)` and validates it. Refuses files of another format and of
    /// a newer version, naming what it found.
    public init(contentsOf url: URL) throws {
        let file = url.lastPathComponent
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            throw DatasetError.unsupportedFile(file: file, detail: "there is no readable file at \(url.path)")
        }
        let contents: SafetensorsContents
        do {
            contents = try Safetensors.readContents(from: url)
        } catch let error as SafetensorsError {
            throw DatasetError.unsupportedFile(file: file, detail: error.description)
        }
        guard let format = contents.metadata["format"] else {
            throw DatasetError.unsupportedFile(file: file, detail: "it has no `format` metadata; convert reference data with `dppo dataset import`")
        }
        guard format == Self.fileFormat else {
            throw DatasetError.unsupportedFile(file: file, detail: "its format is \(format), not \(Self.fileFormat)")
        }
        guard let versionText = contents.metadata["version"], let version = Int(versionText), version >= 1 else {
            throw DatasetError.unsupportedFile(file: file, detail: "its `version` metadata is \(contents.metadata["version"] ?? "missing"), not a positive integer")
        }
        guard version <= Self.fileVersion else {
            throw DatasetError.unsupportedFile(file: file, detail: "it is version \(version) and this build reads up to version \(Self.fileVersion); update dppo")
        }

        func floatTensor(_ name: String, rank: Int) throws -> NamedTensor? {
            if let integer = contents.integerTensors[name] {
                throw DatasetError.wrongLayout(array: name, expected: "F32", found: integer.elementType.rawValue)
            }
            guard let tensor = contents.tensors[name] else { return nil }
            guard tensor.shape.count == rank else {
                throw DatasetError.wrongLayout(array: name, expected: "\(rank)-D", found: "shaped \(tensor.shape)")
            }
            return tensor
        }
        func requiredFloatTensor(_ name: String, rank: Int) throws -> NamedTensor {
            guard let tensor = try floatTensor(name, rank: rank) else { throw DatasetError.missingArray(name: name, file: file) }
            return tensor
        }
        func integerVector(_ name: String, type: NamedIntegerTensor.ElementType) throws -> [Int64]? {
            if contents.tensors[name] != nil { throw DatasetError.wrongLayout(array: name, expected: type.rawValue, found: "F32") }
            guard let tensor = contents.integerTensors[name] else { return nil }
            guard tensor.elementType == type, tensor.shape.count == 1 else {
                throw DatasetError.wrongLayout(array: name, expected: "a \(type.rawValue) vector", found: "\(tensor.elementType.rawValue) shaped \(tensor.shape)")
            }
            return tensor.values
        }

        let states = try requiredFloatTensor("states", rank: 2)
        let actions = try requiredFloatTensor("actions", rank: 2)
        guard let trajectoryLengths = try integerVector("traj_lengths", type: .int64) else { throw DatasetError.missingArray(name: "traj_lengths", file: file) }
        let normalization = Normalization(obsMin: try requiredFloatTensor("normalization.obs_min", rank: 1).values,
                                          obsMax: try requiredFloatTensor("normalization.obs_max", rank: 1).values,
                                          actionMin: try requiredFloatTensor("normalization.action_min", rank: 1).values,
                                          actionMax: try requiredFloatTensor("normalization.action_max", rank: 1).values)
        self.init(states: states.values, stateDimension: states.shape[1], actions: actions.values, actionDimension: actions.shape[1],
                  trajectoryLengths: trajectoryLengths.map { Int($0) },
                  rewards: try floatTensor("rewards", rank: 1)?.values,
                  terminals: try integerVector("terminals", type: .bool)?.map { $0 != 0 },
                  metadata: contents.metadata.filter { !Self.reservedMetadataKeys.contains($0.key) },
                  normalization: normalization)
        try validate()
    }
}
