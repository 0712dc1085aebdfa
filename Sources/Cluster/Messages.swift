import Foundation
import Datasets
import Tensors
import Transport

/// The contents of each message kind (documented in docs/wire-format.md, "Message contents").
enum Messages {
    static func floats(_ name: String, _ pointer: UnsafePointer<Float>, count: Int, shape: [Int]) -> WireTensor {
        WireTensor(name: name, floats: UnsafeBufferPointer(start: pointer, count: count), shape: shape)
    }

    static func bytes(_ name: String, _ values: [UInt8], shape: [Int]) -> WireTensor {
        WireTensor(name: name, dtype: .uint8, shape: shape, bytes: values)
    }

    /// The policy's observation/action normalisation, sent in `welcome` so actors map observations and actions
    /// exactly as the policy was trained (none: the task's declared bounds).
    static func normalizationTensors(_ normalization: Normalization?) -> [WireTensor] {
        guard let normalization else { return [] }
        return [("normalization.obs_min", normalization.obsMin), ("normalization.obs_max", normalization.obsMax),
                ("normalization.action_min", normalization.actionMin), ("normalization.action_max", normalization.actionMax)]
            .map { name, values in values.withUnsafeBufferPointer { floats(name, $0.baseAddress!, count: values.count, shape: [values.count]) } }
    }

    static func readNormalization(_ message: WireMessage) throws -> Normalization? {
        guard message.tensors.contains(where: { $0.name == "normalization.obs_min" }) else { return nil }
        let normalization = Normalization(obsMin: try message.tensor(named: "normalization.obs_min").floats(),
                                          obsMax: try message.tensor(named: "normalization.obs_max").floats(),
                                          actionMin: try message.tensor(named: "normalization.action_min").floats(),
                                          actionMax: try message.tensor(named: "normalization.action_max").floats())
        try normalization.validate()
        return normalization
    }
}

/// One actor's decisions [steps × envs] for one policy version, decoded and checked against the run's shapes.
package struct Segment {
    var policyVersion: UInt64
    var actorIndex: Int
    var stepOffset: Int
    var steps: Int
    var environments: Int
    package var observations: [Float]      // [T, E, O]
    package var chains: [Float]            // [T, E, C]
    var rewards: [Float]           // [T, E]
    var terminated: [UInt8]
    var truncated: [UInt8]
    var firsts: [UInt8]
    var nextObservations: [Float]  // [E, O]
    var finalIndices: [Int32]      // flat t·E + e of truncated decisions
    var finalObservations: [Float] // [M, O]
    var episodeReturns: [Float]
    var episodeLengths: [Int32]
    /// Seeded chain transport: the noise seed of each decision step [T] (`SeededChainSampler`); empty with full chains.
    package var chainSeeds: [UInt64] = []

    /// The segment message. With `chainSeeds`, `chains` travel only when `includeChains` (a sampled check); without,
    /// always.
    package func message(sequence: UInt64, observationWidth: Int, chainWidth: Int, includeChains: Bool = true) -> WireMessage {
        let t = steps, e = environments
        var tensors = [
            WireTensor(name: "step_offset", int32s: [Int32(stepOffset)], shape: [1]),
            WireTensor(name: "observations", floats: observations, shape: [t, e, observationWidth]),
        ]
        if chainSeeds.isEmpty || includeChains { tensors.append(WireTensor(name: "chains", floats: chains, shape: [t, e, chainWidth])) }
        if !chainSeeds.isEmpty { tensors.append(WireTensor(name: "chain_seeds", int64s: chainSeeds.map { Int64(bitPattern: $0) }, shape: [t])) }
        tensors += [
            WireTensor(name: "rewards", floats: rewards, shape: [t, e]),
            Messages.bytes("terminated", terminated, shape: [t, e]),
            Messages.bytes("truncated", truncated, shape: [t, e]),
            Messages.bytes("firsts", firsts, shape: [t, e]),
            WireTensor(name: "next_observations", floats: nextObservations, shape: [e, observationWidth]),
            WireTensor(name: "final_indices", int32s: finalIndices, shape: [finalIndices.count]),
            WireTensor(name: "final_observations", floats: finalObservations, shape: [finalIndices.count, observationWidth]),
        ]
        tensors.append(WireTensor(name: "episode_returns", floats: episodeReturns, shape: [episodeReturns.count]))
        tensors.append(WireTensor(name: "episode_lengths", int32s: episodeLengths, shape: [episodeLengths.count]))
        return WireMessage(kind: .segment, policyVersion: policyVersion, actorIndex: UInt32(actorIndex), sequence: sequence, tensors: tensors)
    }

}

extension Segment {
    /// Decodes and validates every shape against the run's configuration; throws on anything inconsistent.
    package init(message: WireMessage, observationWidth: Int, chainWidth: Int, environments expected: Int, maxSteps: Int) throws {
        func require(_ condition: Bool, _ what: String) throws { if !condition { throw SegmentError(reason: "bad_shape", detail: what) } }
        policyVersion = message.policyVersion
        actorIndex = Int(message.actorIndex)
        let offset = try message.tensor(named: "step_offset").int32s()
        try require(offset.count == 1, "step_offset")
        stepOffset = Int(offset[0])
        let observationTensor = try message.tensor(named: "observations")
        try require(observationTensor.shape.count == 3 && observationTensor.shape[1] == expected && observationTensor.shape[2] == observationWidth, "observations \(observationTensor.shape)")
        let stepCount = observationTensor.shape[0]
        steps = stepCount
        environments = expected
        try require(steps >= 1 && stepOffset >= 0 && stepOffset + steps <= maxSteps, "steps \(stepOffset)+\(steps) of \(maxSteps)")
        observations = try observationTensor.floats()
        // Chains, their seeds, or both (a seeded segment carrying its chains for the learner's check).
        let hasChains = message.tensors.contains { $0.name == "chains" }, hasSeeds = message.tensors.contains { $0.name == "chain_seeds" }
        try require(hasChains || hasSeeds, "neither chains nor chain_seeds")
        if hasChains {
            let chainTensor = try message.tensor(named: "chains")
            try require(chainTensor.shape == [steps, expected, chainWidth], "chains \(chainTensor.shape)")
            chains = try chainTensor.floats()
        } else {
            chains = []
        }
        if hasSeeds {
            let seedTensor = try message.tensor(named: "chain_seeds")
            try require(seedTensor.shape == [steps], "chain_seeds \(seedTensor.shape)")
            chainSeeds = try seedTensor.int64s().map { UInt64(bitPattern: $0) }
        } else {
            chainSeeds = []
        }
        let rewardTensor = try message.tensor(named: "rewards")
        try require(rewardTensor.shape == [steps, expected], "rewards \(rewardTensor.shape)")
        rewards = try rewardTensor.floats()
        func flags(_ name: String) throws -> [UInt8] {
            let tensor = try message.tensor(named: name)
            try require(tensor.dtype == .uint8 && tensor.shape == [stepCount, expected], "\(name) \(tensor.shape)")
            return tensor.bytes
        }
        terminated = try flags("terminated")
        truncated = try flags("truncated")
        firsts = try flags("firsts")
        let next = try message.tensor(named: "next_observations")
        try require(next.shape == [expected, observationWidth], "next_observations \(next.shape)")
        nextObservations = try next.floats()
        let indices = try message.tensor(named: "final_indices").int32s()
        finalIndices = indices
        let finals = try message.tensor(named: "final_observations")
        try require(finals.shape == [indices.count, observationWidth], "final_observations \(finals.shape)")
        try require(indices.allSatisfy { $0 >= 0 && Int($0) < stepCount * expected }, "final_indices out of range")
        finalObservations = try finals.floats()
        episodeReturns = try message.tensor(named: "episode_returns").floats()
        episodeLengths = try message.tensor(named: "episode_lengths").int32s()
        try require(episodeReturns.count == episodeLengths.count, "episode statistics")
        // A NaN or infinity would poison the whole update: refuse the segment instead.
        if !Segment.allFinite([observations, chains, rewards, nextObservations, finalObservations]) { throw SegmentError(reason: "non_finite", detail: "segment holds NaN or infinite values") }
    }
}

extension Segment {
    static func allFinite(_ arrays: [[Float]]) -> Bool { arrays.allSatisfy { $0.allSatisfy(\.isFinite) } }
}

struct SegmentError: Error, CustomStringConvertible {
    let reason: String
    let detail: String
    var description: String { "\(reason): \(detail)" }
}

/// A message that decoded but says something it may not: which message, which field, what was wrong.
struct MessageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: WireMessage, _ problem: String) { description = "\(message.kind) (policy version \(message.policyVersion)): \(problem)" }
    init(_ message: WireMessage, field: String, _ value: Any?, expected: String) {
        self.init(message, "meta field \(field) is \(value.map { "'\($0)'" } ?? "missing"), expected \(expected)")
    }
}
