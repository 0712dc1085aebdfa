import Tensors

/// One minibatch of (decision, likelihood term) pairs with everything the PPO loss reads, per pair. For DPPO a term
/// is one fine-tuned denoising transition of the decision's chain; a Gaussian policy has one term, its action chunk.
/// Buffers are kept and reused from minibatch to minibatch.
public final class PPOMinibatch {
    /// [P, To·Do]: the conditioning observation of each pair's decision.
    public let observations: Matrix
    /// [P, Tp·Da]: DPPO: chain[j] and chain[j+1] of each pair; Gaussian: the action chunk in `outputs`.
    public let inputs: Matrix
    public let outputs: Matrix
    /// Term index of each pair: DPPO's chain index j (denoising step t = K′−1−j); 0 for a Gaussian policy.
    public var terms: [Int] = []
    /// Pairs with the same id come from the same decision (same observation, return and old value), which lets
    /// the critic run once per decision. Any ids work; distinct ids for every pair are always correct.
    public var decisions: [Int] = []
    public var returns: [Float] = []
    public var oldValues: [Float] = []
    /// GAE advantages of the decisions, before normalisation.
    public var advantages: [Float] = []
    /// The clamped log-likelihood of each pair under the behaviour weights (DPPO: mean over the first Ta rows).
    public var oldLogProbabilities: [Float] = []

    public init(observationWidth: Int, chunkWidth: Int) {
        observations = Matrix(rows: 0, columns: observationWidth)
        inputs = Matrix(rows: 0, columns: chunkWidth)
        outputs = Matrix(rows: 0, columns: chunkWidth)
    }

    public var count: Int { terms.count }

    /// Sizes the matrices for `pairs` rows and empties the per-pair arrays, keeping their capacity.
    public func resize(_ pairs: Int) {
        observations.resize(rows: pairs)
        inputs.resize(rows: pairs)
        outputs.resize(rows: pairs)
        terms.removeAll(keepingCapacity: true)
        decisions.removeAll(keepingCapacity: true)
        returns.removeAll(keepingCapacity: true)
        oldValues.removeAll(keepingCapacity: true)
        advantages.removeAll(keepingCapacity: true)
        oldLogProbabilities.removeAll(keepingCapacity: true)
    }

    /// The first pair of each distinct decision and how many pairs share it, in order of first appearance.
    public func distinctDecisions() -> [(pair: Int, multiplicity: Float)] {
        var slotOfDecision: [Int: Int] = [:]
        var result: [(pair: Int, multiplicity: Float)] = []
        result.reserveCapacity(count)
        for (pair, decision) in decisions.enumerated() {
            if let slot = slotOfDecision[decision] {
                result[slot].multiplicity += 1
            } else {
                slotOfDecision[decision] = result.count
                result.append((pair, 1))
            }
        }
        return result
    }
}

/// The losses and diagnostics of one minibatch (docs/algorithms.md §4.6).
public struct PPOLossTerms: Sendable, Equatable {
    public var policyLoss = 0.0
    public var valueLoss = 0.0
    public var bcLoss = 0.0
    public var approxKL = 0.0
    public var clipFraction = 0.0
    public var ratio = 0.0
    /// L2 norms of ∂L/∂θ (fine-tuned actor) and ∂L/∂φ (critic), before any clipping.
    public var actorGradientNorm = 0.0
    public var criticGradientNorm = 0.0
    public init() {}
}
