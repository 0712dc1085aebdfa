import Foundation
import Algorithms
import Networks
import Transport

/// The policy versions the learner keeps: the current version's `weights` reply, encoded once per version (and again
/// only when the chain transport it announces changes), and in async mode the fine-tuned weights of the last
/// `max_policy_lag` + 1 versions, which sampled the batch rows that are not the current version's.
final class WeightStore {
    private let codec: WireCodec
    private let parameters: Parameters
    /// Versions kept besides the current one: `max_policy_lag` in async mode, none in strict mode.
    private let keptLag: UInt64?
    private let chainCheckEvery: Int
    private var snapshots: [UInt64: [Float]] = [:]
    /// The current version, its encoded `weights` reply, and the chain transport that reply announces.
    private(set) var version: UInt64
    private(set) var message: [UInt8] = []
    private(set) var chainTransport: ChainTransport

    /// A store of `parameters`' versions (the live fine-tuned weights) from `version` on. `keptLag` is nil in strict
    /// mode, where no older version is kept.
    init(parameters: Parameters, version: UInt64, keptLag: UInt64?, codec: WireCodec, chainTransport: ChainTransport,
         chainCheckEvery: Int) {
        self.parameters = parameters
        self.version = version
        self.keptLag = keptLag
        self.codec = codec
        self.chainTransport = chainTransport
        self.chainCheckEvery = chainCheckEvery
    }

    /// Takes the current weights as `version` (the update just changed them, or the run starts): keeps a copy when
    /// older versions are kept, forgets versions past the lag, and encodes the `weights` reply, which tells actors
    /// `chainTransport`.
    func advance(to version: UInt64, chainTransport: ChainTransport) throws {
        self.version = version
        self.chainTransport = chainTransport
        if let keptLag {
            snapshots[version] = Array(parameters.valueBuffer)
            for kept in snapshots.keys where kept + keptLag < version { snapshots[kept] = nil }
        }
        try encode()
    }

    /// Encodes the current version's reply again, announcing `transport` (the run fell back to full chains).
    func announce(chainTransport transport: ChainTransport) throws {
        chainTransport = transport
        try encode()
    }

    private func encode() throws {
        let meta = try ChainSettingsMeta(chainTransport: chainTransport, chainCheckEvery: chainCheckEvery).tensor()
        let weights = Messages.floats("fine_tuned", parameters.values, count: parameters.count, shape: [parameters.count])
        message = try codec.encode(WireMessage(kind: .weights, policyVersion: version, actorIndex: 0, sequence: version,
                                               tensors: [weights, meta]))
    }

    /// Whether `version`'s weights are at hand: the current version's always, older ones while kept.
    func holds(_ version: UInt64) -> Bool { version == self.version || snapshots[version] != nil }

    /// Copies `version`'s fine-tuned weights into `target`; false when they are no longer kept.
    func copyWeights(of version: UInt64, into target: Parameters) -> Bool {
        if version == self.version {
            target.copy(from: parameters)
            return true
        }
        guard let weights = snapshots[version], weights.count == target.count else { return false }
        weights.withUnsafeBufferPointer { target.values.update(from: $0.baseAddress!, count: target.count) }
        return true
    }

    /// The weights that sampled each batch row when some rows are older than the current version; nil when every row
    /// is the current version's (always in strict mode), so the update uses the current weights. A row of a version
    /// no longer kept cannot happen (the batch assembler takes only kept versions) and is a programming error.
    func behaviourPolicies(rowVersions: [UInt64]) -> BehaviourPolicies? {
        guard keptLag != nil, rowVersions.contains(where: { $0 != version }) else { return nil }
        var chosen: [[Float]] = []
        var indices: [UInt64: Int] = [:]
        let rows = rowVersions.map { rowVersion -> Int in
            guard rowVersion != version else { return -1 }
            if let index = indices[rowVersion] { return index }
            guard let weights = snapshots[rowVersion] else { preconditionFailure("no weights kept for policy version \(rowVersion)") }
            chosen.append(weights)
            indices[rowVersion] = chosen.count - 1
            return chosen.count - 1
        }
        return BehaviourPolicies(snapshots: chosen, rowSnapshots: rows)
    }
}
