import Foundation
import Tensors

/// Seeded chain transport on the learner's side (`ChainTransport`, docs/wire-format.md "Seeded chains"): rebuilds a
/// seeded segment's denoising chains with its version's weights, checks the segments that also carry their recorded
/// chains, and switches the run to full chains when a check fails.
final class ChainResolver {
    /// What rebuilding cost and found while one batch was collected.
    struct Counts {
        var rebuiltDecisions = 0
        var rebuildSeconds = 0.0
        var checks = 0
        var maxCheckDifference: Float = 0
    }

    /// The run's current choice: `cluster.chain_transport` at first, `full` after a fallback (`fallbackReason`).
    private(set) var transport: ChainTransport
    private(set) var fallbackReason: String?
    /// The start-up self-test's result, when the run asked for seeded chains.
    private(set) var selfTest: SeededChainSampler.SelfTest?
    var counts = Counts()
    /// The sampler that rebuilds chains (present when the config asks for seeded chains), and the version it holds.
    let rebuilder: SeededChainSampler?
    private var rebuilderVersion: UInt64 = 0
    private let observations: Matrix
    private let scratch: Matrix
    private let observationWidth: Int
    private let recordWidth: Int
    private let tolerance: Float

    init(transport: ChainTransport, rebuilder: SeededChainSampler?, observationWidth: Int, recordWidth: Int, tolerance: Double) {
        self.transport = transport
        self.rebuilder = rebuilder
        self.observationWidth = observationWidth
        self.recordWidth = recordWidth
        self.tolerance = Float(tolerance)
        observations = Matrix(rows: 0, columns: observationWidth)
        scratch = Matrix(rows: 0, columns: recordWidth)
    }

    /// The start-up determinism self-test: samples `steps` decisions of `environments` environments with the starting
    /// policy as an actor does and rebuilds them as the learner does; a difference above `cluster.chain_tolerance`
    /// turns seeded transport off for the run before any actor joins.
    func runSelfTest(weights: WeightStore, environments: Int, steps: Int, seed: UInt64, log: (String) -> Void) {
        guard let rebuilder, load(version: weights.version, from: weights) else { return }
        let result = rebuilder.selfTest(observationWidth: observationWidth, environments: environments, steps: steps, seed: seed)
        selfTest = result
        let verdict = result.chainDifference <= tolerance ? "seeded chains on" : "falling back to full chains"
        log(String(format: "learner: seeded-chain self-test over %d decisions: max |Δ chain| %.2e, max |Δ log-prob| %.2e (tolerance %.0e): %@",
                   result.decisions, result.chainDifference, result.logProbabilityDifference, tolerance, verdict))
        if result.chainDifference > tolerance {
            fallBack(String(format: "start-up self-test: rebuilt chains differ by %.2e > chain_tolerance %.0e", result.chainDifference, tolerance),
                     log: log)
        }
    }

    /// Loads `version`'s fine-tuned weights into the rebuilder; false when the learner no longer holds them.
    private func load(version: UInt64, from weights: WeightStore) -> Bool {
        guard let rebuilder else { return false }
        if rebuilderVersion == version { return true }
        guard weights.copyWeights(of: version, into: rebuilder.policy.fineTuned.parameters) else { return false }
        rebuilderVersion = version
        return true
    }

    /// Makes `segment.chains` the chains to train on. A seeded segment's chains are rebuilt from its seeds with its
    /// version's weights. One that also carries its recorded chains (a sampled check) keeps those, and is rebuilt only to
    /// compare: a difference above `cluster.chain_tolerance` switches the run to full chains, after which segments with
    /// seeds only are no longer trusted (dropped as `seeded_after_fallback`: strict mode's redo has the actor roll the
    /// version again, with full chains). Returns the reason to drop the segment, nil to use it.
    func resolve(_ segment: inout Segment, weights: WeightStore, log: (String) -> Void) -> String? {
        guard !segment.chainSeeds.isEmpty else { return nil }
        let recorded = !segment.chains.isEmpty
        guard let rebuilder else { return recorded ? nil : "unexpected_chain_seeds" }
        if !recorded && fallbackReason != nil { return "seeded_after_fallback" }
        guard load(version: segment.policyVersion, from: weights) else { return recorded ? nil : "stale_version" }
        let started = Date()
        let rows = segment.steps * segment.environments
        observations.resize(rows: rows)
        segment.observations.withUnsafeBufferPointer { observations.data.update(from: $0.baseAddress!, count: rows * observationWidth) }
        rebuilder.sample(observations: observations, seeds: segment.chainSeeds, environments: segment.environments, chains: scratch)
        counts.rebuildSeconds += Date().timeIntervalSince(started)
        counts.rebuiltDecisions += rows
        let rebuilt = UnsafeBufferPointer(start: scratch.data, count: rows * recordWidth)
        guard recorded else {
            // Finite observations can still drive the network to NaN or infinity: the `non_finite` rule holds for rebuilt
            // chains as for sent ones.
            guard rebuilt.allSatisfy(\.isFinite) else { return "non_finite" }
            segment.chains = Array(rebuilt)
            return nil
        }
        let difference = segment.chains.withUnsafeBufferPointer { SeededChainSampler.maxDifference($0, rebuilt) }
        counts.checks += 1
        counts.maxCheckDifference = max(counts.maxCheckDifference, difference)
        if !(difference <= tolerance) && transport == .seeded {
            fallBack(String(format: "sampled check of actor %d's segment %@: rebuilt chains differ by %.2e > chain_tolerance %.0e",
                            segment.actorIndex, "\(segment.stepOffset)", difference, tolerance), log: log)
        }
        return nil
    }

    /// Switches the run to full chains; the learner announces it with the weights (`WeightStore.announce`).
    private func fallBack(_ reason: String, log: (String) -> Void) {
        transport = .full
        fallbackReason = reason
        log("learner: falling back to full chains: \(reason)")
    }
}
