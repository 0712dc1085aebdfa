import Foundation
import Tensors

/// Seeded chain transport on the learner's side (`ChainTransport`, docs/wire-format.md "Seeded chains").
extension Learner {
    /// The start-up determinism self-test: samples one segment's worth of decisions with the starting policy as an
    /// actor does and rebuilds them as the learner does; a difference above `cluster.chain_tolerance` turns seeded
    /// transport off for the run before any actor joins.
    func runChainSelfTest(log: (String) -> Void) {
        guard let rebuilder = chainRebuilder, loadRebuilder(version: policyVersion) else { return }
        let environments = config.environment.environmentsPerActor
        let steps = min(config.cluster.segmentSteps, config.train.stepsPerIteration)
        let result = rebuilder.selfTest(observationWidth: observationWidth, environments: environments, steps: steps, seed: config.seed)
        chainSelfTest = result
        let tolerance = Float(config.cluster.chainTolerance)
        let verdict = result.chainDifference <= tolerance ? "seeded chains on" : "falling back to full chains"
        log(String(format: "learner: seeded-chain self-test over %d decisions: max |Δ chain| %.2e, max |Δ log-prob| %.2e (tolerance %.0e): %@",
                   result.decisions, result.chainDifference, result.logProbabilityDifference, tolerance, verdict))
        if result.chainDifference > tolerance {
            fallBackToFullChains(String(format: "start-up self-test: rebuilt chains differ by %.2e > chain_tolerance %.0e", result.chainDifference, tolerance), log: log)
        }
    }

    /// Loads `version`'s fine-tuned weights into the rebuilder; false when the learner no longer holds them.
    func loadRebuilder(version: UInt64) -> Bool {
        guard let rebuilder = chainRebuilder else { return false }
        if chainRebuilderVersion == version { return true }
        let target = rebuilder.policy.fineTuned.parameters
        if version == policyVersion {
            target.copy(from: model.trainableParameters)
        } else if let weights = versionWeights[version], weights.count == target.count {
            weights.withUnsafeBufferPointer { target.values.update(from: $0.baseAddress!, count: target.count) }
        } else {
            return false
        }
        chainRebuilderVersion = version
        return true
    }

    /// Makes `segment.chains` the chains to train on. A seeded segment's chains are rebuilt from its seeds with its
    /// version's weights. One that also carries its recorded chains (a sampled check) keeps those, and is rebuilt only to
    /// compare: a difference above `cluster.chain_tolerance` switches the run to full chains, after which segments with
    /// seeds only are no longer trusted (dropped as `seeded_after_fallback`: strict mode's redo has the actor roll the
    /// version again, with full chains). Returns the reason to drop the segment, nil to use it.
    func resolveChains(_ segment: inout Segment, log: (String) -> Void) -> String? {
        guard !segment.chainSeeds.isEmpty else { return nil }
        let recorded = !segment.chains.isEmpty
        guard let rebuilder = chainRebuilder else { return recorded ? nil : "unexpected_chain_seeds" }
        if !recorded && chainFallbackReason != nil { return "seeded_after_fallback" }
        guard loadRebuilder(version: segment.policyVersion) else { return recorded ? nil : "stale_version" }
        let started = Date()
        let rows = segment.steps * segment.environments
        chainObservations.resize(rows: rows)
        segment.observations.withUnsafeBufferPointer { chainObservations.data.update(from: $0.baseAddress!, count: rows * observationWidth) }
        rebuilder.sample(observations: chainObservations, seeds: segment.chainSeeds, environments: segment.environments, chains: chainScratch)
        traffic.rebuildSeconds += Date().timeIntervalSince(started)
        traffic.rebuiltDecisions += rows
        let rebuilt = UnsafeBufferPointer(start: chainScratch.data, count: rows * config.recordWidth)
        guard recorded else {
            // Finite observations can still drive the network to NaN or infinity: the `non_finite` rule holds for rebuilt
            // chains as for sent ones.
            guard rebuilt.allSatisfy(\.isFinite) else { return "non_finite" }
            segment.chains = Array(rebuilt)
            return nil
        }
        let difference = segment.chains.withUnsafeBufferPointer { SeededChainSampler.maxDifference($0, rebuilt) }
        traffic.chainChecks += 1
        traffic.chainCheckMaxDifference = max(traffic.chainCheckMaxDifference, difference)
        let tolerance = Float(config.cluster.chainTolerance)
        if !(difference <= tolerance) && chainTransport == .seeded {
            fallBackToFullChains(String(format: "sampled check of actor %d's segment %@: rebuilt chains differ by %.2e > chain_tolerance %.0e",
                                        segment.actorIndex, "\(segment.stepOffset)", difference, tolerance), log: log)
        }
        return nil
    }

    /// Switches the run to full chains: actors hear it in their next heartbeat reply, weights or welcome (the current
    /// version's weights reply is encoded again to say so).
    func fallBackToFullChains(_ reason: String, log: (String) -> Void) {
        chainTransport = .full
        chainFallbackReason = reason
        let weights = encodedWeights()
        controlServer?.publish { snapshot in
            snapshot.chainTransport = .full
            if let weights, !snapshot.weightsMessage.isEmpty { snapshot.weightsMessage = weights }
        }
        log("learner: falling back to full chains: \(reason)")
    }
}
