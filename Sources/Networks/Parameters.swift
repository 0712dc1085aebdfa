import Tensors

/// Where one named parameter tensor lives inside a network's flat parameter buffer.
public struct ParameterEntry: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Records parameter shapes while a network is being built; `Parameters(layout)` then allocates them.
public struct ParameterLayout {
    public private(set) var entries: [ParameterEntry] = []
    public private(set) var count = 0
    public init() {}

    public mutating func add(_ name: String, shape: [Int]) -> Int {
        precondition(!entries.contains { $0.name == name }, "duplicate parameter \(name)")
        let entry = ParameterEntry(name: name, shape: shape, offset: count)
        entries.append(entry)
        count += entry.count
        return entry.offset
    }
}

/// All parameters of one network in a single contiguous buffer, with a gradient buffer of the same layout.
///
/// One buffer makes the optimizer a single loop, the gradient norm a single reduction, a weight
/// broadcast a single copy, and a frozen copy of a network a single `copy(from:)`.
public final class Parameters {
    public let entries: [ParameterEntry]
    public let count: Int
    public let values: UnsafeMutablePointer<Float>
    public let gradients: UnsafeMutablePointer<Float>
    /// The parameters whose values these read (a shard's replica), nil when the values are this object's own.
    public let valueOwner: Parameters?

    public init(layout: ParameterLayout) {
        entries = layout.entries
        count = layout.count
        values = .allocate(capacity: max(count, 1))
        values.initialize(repeating: 0, count: max(count, 1))
        gradients = .allocate(capacity: max(count, 1))
        gradients.initialize(repeating: 0, count: max(count, 1))
        valueOwner = nil
    }

    /// A shard's view of `owner`: the same values (every write to them is seen by both), its own gradient buffer.
    /// Data-parallel workers accumulate into their own gradients, which are then summed into the owner's.
    public init(sharingValuesOf owner: Parameters) {
        entries = owner.entries
        count = owner.count
        values = owner.values
        gradients = .allocate(capacity: max(count, 1))
        gradients.initialize(repeating: 0, count: max(count, 1))
        valueOwner = owner.valueOwner ?? owner
    }

    deinit {
        if valueOwner == nil { values.deallocate() }
        gradients.deallocate()
    }

    public func entry(named name: String) -> ParameterEntry? { entries.first { $0.name == name } }

    public func zeroGradients() { gradients.update(repeating: 0, count: count) }

    public func copy(from other: Parameters) {
        precondition(other.count == count && other.entries == entries, "parameter layouts differ")
        values.update(from: other.values, count: count)
    }

    public var valueBuffer: UnsafeMutableBufferPointer<Float> { .init(start: values, count: count) }

    /// Euclidean norm of the gradient, accumulated in Float64.
    public func gradientNorm() -> Double {
        var sum = 0.0
        for index in 0..<count { sum += Double(gradients[index]) * Double(gradients[index]) }
        return sum.squareRoot()
    }

    /// Named tensors for safetensors export.
    public func namedTensors(prefix: String = "") -> [NamedTensor] {
        entries.map { NamedTensor(name: prefix + $0.name, shape: $0.shape, values: Array(UnsafeBufferPointer(start: values + $0.offset, count: $0.count))) }
    }

    /// Loads values from named tensors; every parameter must be present with the right shape.
    public func load(_ tensors: [String: NamedTensor], prefix: String = "") throws {
        for entry in entries {
            guard let tensor = tensors[prefix + entry.name] else {
                throw SafetensorsError.missingTensor(prefix + entry.name)
            }
            guard tensor.shape == entry.shape else {
                throw SafetensorsError.shapeMismatch(name: prefix + entry.name, expected: entry.shape, found: tensor.shape)
            }
            tensor.values.withUnsafeBufferPointer { (values + entry.offset).update(from: $0.baseAddress!, count: entry.count) }
        }
    }

    /// PyTorch's default initialisation: every weight and bias ~ U(−1/√fan_in, 1/√fan_in).
    public func initializeUniform(fanIn: [String: Int], random: inout Philox) {
        for entry in entries {
            guard let inputs = fanIn[entry.name] else { continue }
            let bound = 1 / Float(inputs).squareRoot()
            random.fillUniform(values + entry.offset, count: entry.count, low: -bound, high: bound)
        }
    }
}
