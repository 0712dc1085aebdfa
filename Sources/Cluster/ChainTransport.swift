import Foundation
import Algorithms
import Diffusion
import Tensors

/// `cluster.chain_transport`: how a segment carries its denoising chains.
///
/// - `full`: the recorded chains themselves, (K′+1)·Tp·Da floats per decision (most of every segment).
/// - `seeded`: one 64-bit noise seed per decision step instead; the learner, which holds the sampling version's
///   weights, samples the chains again from the segment's observations (`SeededChainSampler`). Every
///   `cluster.chain_check_every`-th segment also carries its recorded chains, which the learner compares with the ones
///   it rebuilds; a difference above `cluster.chain_tolerance` switches the run back to `full` (docs/wire-format.md,
///   "Seeded chains").
public enum ChainTransport: String, Sendable, CaseIterable {
    case full
    case seeded
}

/// Samples chains whose noise is a pure function of (decision seed, environment index), so an actor's chains can be
/// rebuilt anywhere from the seeds.
///
/// Row r of a batch that holds `environments` rows per decision draws its noise from the counter-based stream
/// `Philox(seed: seeds[r / environments], stream: r % environments)`, in the sampler's order: Tp·Da values for the
/// initial x, then Tp·Da per denoising step. Each row owns its stream, so a row's chain does not depend on which other
/// rows share its batch: an actor samples one decision step (E rows) at a time, the learner rebuilds a whole segment
/// (T·E rows) in one batch, and the two differ only by the rounding of matrix products of different shapes.
///
/// With `shards` > 1 the rows are cut into contiguous shards, each rebuilt by its own replica of the policy on its own
/// worker (the learner's `threads`); every row still draws from its own stream.
package final class SeededChainSampler {
    let policy: DiffusionPolicy
    let shards: ShardedDiffusionSampler
    private var generators: [Philox] = []

    package init(policy: DiffusionPolicy, shards: Int = 1) {
        self.policy = policy
        self.shards = ShardedDiffusionSampler(policy: policy, shards: max(shards, 1))
    }

    /// Samples (exploration mode) one chain per row of `observations` [seeds.count · environments, O] into `chains`.
    func sample(observations: Matrix, seeds: UnsafeBufferPointer<UInt64>, environments: Int, chains: Matrix) {
        let rows = observations.rows, width = policy.settings.chunkWidth
        precondition(rows == seeds.count * environments, "\(rows) rows for \(seeds.count) seeds of \(environments) environments")
        generators.removeAll(keepingCapacity: true)
        for row in 0..<rows { generators.append(Philox(seed: seeds[row / environments], stream: UInt64(row % environments))) }
        generators.withUnsafeMutableBufferPointer { streams in
            shards.sampleShards(observations: observations, mode: .exploration, chains: chains) { part, _, destination in
                for (slot, row) in part.enumerated() { streams[row].fillNormal(destination + slot * width, count: width) }
            }
        }
    }

    package func sample(observations: Matrix, seeds: [UInt64], environments: Int, chains: Matrix) {
        seeds.withUnsafeBufferPointer { sample(observations: observations, seeds: $0, environments: environments, chains: chains) }
    }

    /// The largest |a − b| over two equally long float buffers (infinity when the lengths differ).
    package static func maxDifference(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Float {
        guard a.count == b.count else { return .infinity }
        var largest: Float = 0
        for index in 0..<a.count {
            let difference = abs(a[index] - b[index])
            // A NaN compares false: treat it as the worst disagreement.
            if !(difference <= largest) { largest = difference.isNaN ? .infinity : difference }
        }
        return largest
    }

    /// What the start-up self-test measured.
    struct SelfTest {
        /// The largest element difference between actor-shaped and learner-shaped chains.
        var chainDifference: Float
        /// The largest difference of a fine-tuned transition's log-probability (docs/algorithms.md §4.4) between the two chains.
        var logProbabilityDifference: Float
        var decisions: Int
    }

    /// The determinism self-test: samples `steps` decision steps of `environments` rows as an actor does (one batch per
    /// step) and rebuilds them as the learner does (one batch of steps·environments rows), on uniform random normalised
    /// observations, and compares both the chains and their transitions' log-probabilities.
    func selfTest(observationWidth: Int, environments: Int, steps: Int, seed: UInt64) -> SelfTest {
        var random = Philox(seed: seed, stream: 0x5E1F)
        let rows = steps * environments, width = policy.settings.chainWidth
        let observations = Matrix(rows: rows, columns: observationWidth)
        random.fillUniform(observations.data, count: rows * observationWidth, low: -1, high: 1)
        let seeds = (0..<steps).map { _ in random.nextUInt64() }
        let actorChains = Matrix(rows: rows, columns: width)
        let stepObservations = Matrix(rows: environments, columns: observationWidth)
        let stepChains = Matrix(rows: environments, columns: width)
        for step in 0..<steps {
            stepObservations.data.update(from: observations.row(step * environments), count: environments * observationWidth)
            sample(observations: stepObservations, seeds: [seeds[step]], environments: environments, chains: stepChains)
            actorChains.row(step * environments).update(from: stepChains.data, count: environments * width)
        }
        let learnerChains = Matrix(rows: rows, columns: width)
        sample(observations: observations, seeds: seeds, environments: environments, chains: learnerChains)
        let chainDifference = SeededChainSampler.maxDifference(UnsafeBufferPointer(start: actorChains.data, count: rows * width),
                                                                UnsafeBufferPointer(start: learnerChains.data, count: rows * width))
        let actorLogProbabilities = transitionLogProbabilities(chains: actorChains, observations: observations)
        let learnerLogProbabilities = transitionLogProbabilities(chains: learnerChains, observations: observations)
        let logDifference = actorLogProbabilities.withUnsafeBufferPointer { a in
            learnerLogProbabilities.withUnsafeBufferPointer { b in SeededChainSampler.maxDifference(a, b) }
        }
        return SelfTest(chainDifference: chainDifference, logProbabilityDifference: logDifference, decisions: rows)
    }

    /// Log-probabilities of every fine-tuned transition of every chain row (rows × K′ values).
    package func transitionLogProbabilities(chains: Matrix, observations: Matrix) -> [Float] {
        let kPrime = policy.settings.fineTunedSteps, width = policy.settings.chunkWidth
        let count = chains.rows * kPrime
        let inputs = Matrix(rows: count, columns: width), outputs = Matrix(rows: count, columns: width)
        let repeated = Matrix(rows: count, columns: observations.columns)
        var timesteps: [Int] = []
        timesteps.reserveCapacity(count)
        for row in 0..<chains.rows {
            for j in 0..<kPrime {
                let slot = row * kPrime + j
                inputs.row(slot).update(from: chains.row(row) + j * width, count: width)
                outputs.row(slot).update(from: chains.row(row) + (j + 1) * width, count: width)
                repeated.row(slot).update(from: observations.row(row), count: observations.columns)
                timesteps.append(kPrime - 1 - j)
            }
        }
        var result = [Float](repeating: 0, count: count)
        result.withUnsafeMutableBufferPointer {
            policy.transitionLogProbabilities(inputs: inputs, outputs: outputs, timesteps: timesteps, observations: repeated, into: $0.baseAddress!)
        }
        return result
    }
}
