import Diffusion
import Foundation
import Networks
import Tensors

/// Draws action chunks from a diffusion policy's ε-network (`policy.base`): EDP's TD targets, Diffusion-QL's EMA
/// targets and both methods' evaluation candidates sample through this seam, so DDPM (`DDPMChunkSampler`) and
/// EDP's DPM-Solver (§3.7) are interchangeable.
public protocol ChunkSampler: AnyObject {
    /// Writes one action chunk [Tp·Da] per row of `observations` [B, To·Do] into `actions` (resized to B rows).
    func sample(policy: DiffusionPolicy, observations: Matrix, actions: Matrix, random: inout Philox)
}

/// The ancestral chain of §1.3 with `policy.base` at every step: x̂₀ clipped at every step, posterior std β̃ and no
/// noise on the last step — `DiffusionPolicy`'s deterministic DDPM mode (its 1e−3 std floor aside).
public final class DDPMChunkSampler: ChunkSampler {
    var chains: Matrix?

    public init() {}

    public func sample(policy: DiffusionPolicy, observations: Matrix, actions: Matrix, random: inout Philox) {
        let width = policy.settings.chunkWidth
        if chains?.columns != policy.settings.chainWidth { chains = Matrix(rows: 0, columns: policy.settings.chainWidth) }
        let chains = chains!
        policy.sampleChains(observations: observations, mode: .deterministic, random: &random, chains: chains, useBasePolicy: true)
        actions.resize(rows: observations.rows)
        let last = policy.settings.fineTunedSteps * width
        for row in 0..<observations.rows { actions.row(row).update(from: chains.row(row) + last, count: width) }
    }
}

/// Diffusion-QL's reparameterised policy sample (§2.2): the full reverse chain of `policy.base`, kept differentiable.
///
/// One `DiffusionMLP` view per sampling step shares the actor's parameters and keeps that step's activations, so
/// `backward` runs through every network call, through the x̂₀ clamp (gradient only where it is inactive) and
/// through the mean's direct dependence on x; the injected noise is a constant of the reparameterisation.
final class DifferentiableChain {
    let policy: DiffusionPolicy
    let views: [DiffusionMLP]
    /// iterates[t] is the input x_t of sampling step t; step 0 writes `action`.
    let iterates: [Matrix]
    let action: Matrix
    let stepNoise: Matrix
    let gradient: Matrix
    let epsilonGradient: Matrix
    let networkInputGradient: Matrix
    var timesteps: [Float] = []

    init(policy: DiffusionPolicy) {
        self.policy = policy
        let steps = policy.settings.samplingSteps, width = policy.settings.chunkWidth
        views = (0..<steps).map { _ in DiffusionMLP(shape: policy.base.shape, sharing: policy.base.parameters) }
        iterates = (0..<steps).map { _ in Matrix(rows: 0, columns: width) }
        action = Matrix(rows: 0, columns: width)
        stepNoise = Matrix(rows: 0, columns: width)
        gradient = Matrix(rows: 0, columns: width)
        epsilonGradient = Matrix(rows: 0, columns: width)
        networkInputGradient = Matrix(rows: 0, columns: width)
    }

    /// â for each observation row [B, Tp·Da]; the result is `action`.
    @discardableResult
    func sample(observations: Matrix, random: inout Philox) -> Matrix {
        let batch = observations.rows, steps = iterates.count, count = batch * policy.settings.chunkWidth
        let clip = Float(policy.settings.denoisedClip), noiseClip = Float(policy.settings.randnClip)
        if timesteps.count != batch { timesteps = [Float](repeating: 0, count: batch) }
        iterates[steps - 1].resize(rows: batch)
        random.fillNormal(iterates[steps - 1].data, count: count)
        stepNoise.resize(rows: batch)
        for t in stride(from: steps - 1, through: 0, by: -1) {
            let step = policy.reverseStep(t, mode: .deterministic)
            for row in 0..<batch { timesteps[row] = step.networkTime }
            let epsilon = timesteps.withUnsafeBufferPointer {
                views[t].forward(noisyChunk: iterates[t], timesteps: $0.baseAddress!, observation: observations)
            }
            let next = t == 0 ? action : iterates[t - 1]
            next.resize(rows: batch)
            random.fillNormal(stepNoise.data, count: count)
            let x = iterates[t].data, e = epsilon.data, z = stepNoise.data, y = next.data
            for element in 0..<count {
                y[element] = step.mean(x: x[element], epsilon: e[element], clip: clip).mean + step.std * min(max(z[element], -noiseClip), noiseClip)
            }
        }
        return action
    }

    /// Accumulates dL/dθ into the actor's gradients for dL/dâ = `actionGradient` of the last `sample`.
    func backward(actionGradient: Matrix) {
        let batch = action.rows, count = batch * policy.settings.chunkWidth
        let clip = Float(policy.settings.denoisedClip)
        gradient.copy(from: actionGradient)
        epsilonGradient.resize(rows: batch)
        for t in 0..<iterates.count {
            let step = policy.reverseStep(t, mode: .deterministic)
            let x = iterates[t].data, e = views[t].output.data, g = gradient.data, de = epsilonGradient.data
            for element in 0..<count {
                // y = c1·clamp(s1·x − s2·ε̂) + c2·x + std·z
                let raw = step.s1 * x[element] - step.s2 * e[element]
                let rawGradient = raw >= -clip && raw <= clip ? step.c1 * g[element] : 0
                de[element] = -step.s2 * rawGradient
                g[element] = step.c2 * g[element] + step.s1 * rawGradient
            }
            let last = t == iterates.count - 1
            views[t].backward(outputGradient: epsilonGradient, noisyChunkGradient: last ? nil : networkInputGradient)
            if !last {
                let n = networkInputGradient.data
                for element in 0..<count { g[element] += n[element] }
            }
        }
    }
}

/// How one candidate is picked from N scored candidates (§2.7, §3.8).
public enum CandidateRule: Sendable, Equatable, Codable {
    /// The candidate with the largest score.
    case argmax
    /// A draw from softmax(score / temperature): both codebases use temperature 1 on raw min(Q1, Q2).
    case softmax(temperature: Double)
}

/// Candidate sampling with critic scoring: N chunks per observation from the policy, scored by min(Q1, Q2) of the
/// chosen critic copy, one picked per observation (Diffusion-QL's evaluation trick §2.7, EDP's energy-based action
/// selection §3.8).
public final class CandidateSelector {
    public let candidates: Int
    public var rule: CandidateRule
    public var criticCopy: NetworkCopy
    let sampler: ChunkSampler
    let repeatedObservations: Matrix
    let candidateActions: Matrix

    public init(candidates: Int, rule: CandidateRule, criticCopy: NetworkCopy, sampler: ChunkSampler, observationDim: Int, actionDim: Int) {
        precondition(candidates >= 1, "candidate selection needs at least one candidate")
        self.candidates = candidates
        self.rule = rule
        self.criticCopy = criticCopy
        self.sampler = sampler
        repeatedObservations = Matrix(rows: 0, columns: observationDim)
        candidateActions = Matrix(rows: 0, columns: actionDim)
    }

    /// One selected chunk per row of `observations` into `actions`.
    public func select(policy: DiffusionPolicy, critic: TwinQCritic, observations: Matrix, actions: Matrix, random: inout Philox) {
        let batch = observations.rows, n = candidates, width = candidateActions.columns
        repeatRows(observations, times: n, into: repeatedObservations)
        sampler.sample(policy: policy, observations: repeatedObservations, actions: candidateActions, random: &random)
        let (q1, q2) = critic.forward(observations: repeatedObservations, actions: candidateActions, copy: criticCopy)
        actions.resize(rows: batch)
        var scores = [Double](repeating: 0, count: n)
        for row in 0..<batch {
            for j in 0..<n { scores[j] = Double(min(q1.data[row * n + j], q2.data[row * n + j])) }
            let chosen: Int
            switch rule {
            case .argmax:
                chosen = scores.indices.max { scores[$0] < scores[$1] }!
            case .softmax(let temperature):
                let top = scores.max()!
                let weights = scores.map { exp(($0 - top) / temperature) }
                var threshold = Double(random.uniform()) * weights.reduce(0, +)
                chosen = weights.indices.first { threshold -= weights[$0]; return threshold <= 0 } ?? n - 1
            }
            actions.row(row).update(from: candidateActions.row(row * n + chosen), count: width)
        }
    }
}

/// Writes every row of `source` `times` times in a row (row b becomes rows b·times … b·times + times − 1).
func repeatRows(_ source: Matrix, times: Int, into destination: Matrix) {
    destination.resize(rows: source.rows * times)
    for row in 0..<source.rows {
        for copy in 0..<times { destination.row(row * times + copy).update(from: source.row(row), count: source.columns) }
    }
}
