import Foundation
import Networks
import Tensors

/// Denoising settings of a diffusion policy (dppo.md §1, §4.2–4.4); keys follow the reference's config names.
public struct DenoisingSettings: Sendable, Equatable, Codable {
    /// K: denoising steps in pre-training and fine-tuning.
    public var denoisingSteps: Int
    /// K′: the last K′ steps use (and train) the fine-tuned network; the first K − K′ use the frozen base.
    public var fineTunedSteps: Int
    /// Tp: rows of the predicted action chunk.
    public var horizonSteps: Int
    /// Ta: rows executed in the environment and scored in the likelihood.
    public var actSteps: Int
    public var actionDim: Int
    /// Std floor while sampling rollouts (σ_min_exp).
    public var minSamplingStd: Double
    /// Std floor in the likelihood (σ_min_prob).
    public var minLogProbStd: Double
    /// Clamp on the unit noise z.
    public var randnClip: Double
    /// Clamp on x̂₀.
    public var denoisedClip: Double

    public init(denoisingSteps: Int = 20, fineTunedSteps: Int = 10, horizonSteps: Int = 4, actSteps: Int = 4, actionDim: Int,
                minSamplingStd: Double = 0.1, minLogProbStd: Double = 0.1, randnClip: Double = 3, denoisedClip: Double = 1) {
        self.denoisingSteps = denoisingSteps
        self.fineTunedSteps = fineTunedSteps
        self.horizonSteps = horizonSteps
        self.actSteps = actSteps
        self.actionDim = actionDim
        self.minSamplingStd = minSamplingStd
        self.minLogProbStd = minLogProbStd
        self.randnClip = randnClip
        self.denoisedClip = denoisedClip
    }

    /// Flattened chunk width Tp·Da.
    public var chunkWidth: Int { horizonSteps * actionDim }
    /// Values per recorded chain: (K′+1)·Tp·Da.
    public var chainWidth: Int { (fineTunedSteps + 1) * chunkWidth }

    public func validate() throws {
        func require(_ condition: Bool, _ message: String) throws {
            if !condition { throw DiffusionError.invalidSettings(message) }
        }
        try require(denoisingSteps >= 1, "denoising_steps must be ≥ 1 (got \(denoisingSteps))")
        try require(fineTunedSteps >= 1 && fineTunedSteps <= denoisingSteps, "ft_denoising_steps must be in 1…denoising_steps (got \(fineTunedSteps))")
        try require(actSteps >= 1 && actSteps <= horizonSteps, "act_steps must be in 1…horizon_steps (got \(actSteps) with horizon \(horizonSteps))")
        try require(actionDim >= 1, "action_dim must be ≥ 1")
        try require(minSamplingStd >= 0 && minLogProbStd > 0, "min_sampling_denoising_std must be ≥ 0 and min_logprob_denoising_std > 0")
    }
}

public enum DiffusionError: Error, CustomStringConvertible {
    case invalidSettings(String)
    public var description: String {
        switch self { case .invalidSettings(let message): return "invalid diffusion settings: \(message)" }
    }
}

/// How a chain is sampled (dppo.md §1.4).
public enum SamplingMode: Sendable {
    /// Rollouts for fine-tuning: std = max(σ_t, σ_min_exp) at every step.
    case exploration
    /// Evaluation: std = max(σ_t, 1e−3) for t > 0 and 0 at t = 0.
    case deterministic
}

/// A DDPM diffusion policy split into a frozen base network (steps t ≥ K′) and a fine-tuned copy
/// (steps t < K′), with chain sampling for actors and transition log-likelihoods for the learner.
public final class DiffusionPolicy {
    public let settings: DenoisingSettings
    public let schedule: NoiseSchedule
    public let base: DiffusionMLP
    public let fineTuned: DiffusionMLP

    // Float32 copies of the per-step coefficients.
    let recipAlpha: [Float], recipMinusOne: [Float], coefficient1: [Float], coefficient2: [Float]
    let samplingStd: [Float], deterministicStd: [Float], likelihoodStd: [Float]

    // Sampling buffers, reused across calls.
    let current: Matrix
    var timestepRow: [Float] = []

    // Likelihood buffers for the last `transitionLogProbabilities` call (needed by its backward).
    let likelihoodOutputs: Matrix
    let epsilonGradient: Matrix
    var likelihoodTimesteps: [Int] = []
    var likelihoodMeans: [Float] = []
    var likelihoodClampMask: [UInt8] = []
    var denoisedClampMask: [UInt8] = []
    var elementLogProbabilities: [Float] = []

    public init(settings: DenoisingSettings, network: DiffusionMLPShape) {
        precondition(network.chunkWidth == settings.chunkWidth, "network chunk width \(network.chunkWidth) ≠ Tp·Da \(settings.chunkWidth)")
        self.settings = settings
        let schedule = NoiseSchedule(steps: settings.denoisingSteps)
        self.schedule = schedule
        base = DiffusionMLP(shape: network)
        fineTuned = DiffusionMLP(shape: network)
        recipAlpha = schedule.sqrtRecipAlphasCumulative.map(Float.init)
        recipMinusOne = schedule.sqrtRecipMinusOneAlphasCumulative.map(Float.init)
        coefficient1 = schedule.posteriorMeanCoefficient1.map(Float.init)
        coefficient2 = schedule.posteriorMeanCoefficient2.map(Float.init)
        samplingStd = (0..<settings.denoisingSteps).map { Float(max(schedule.posteriorStd($0), settings.minSamplingStd)) }
        deterministicStd = (0..<settings.denoisingSteps).map { $0 == 0 ? 0 : Float(max(schedule.posteriorStd($0), 1e-3)) }
        likelihoodStd = (0..<settings.denoisingSteps).map { Float(max(schedule.posteriorStd($0), settings.minLogProbStd)) }
        current = Matrix(rows: 0, columns: settings.chunkWidth)
        likelihoodOutputs = Matrix(rows: 0, columns: settings.chunkWidth)
        epsilonGradient = Matrix(rows: 0, columns: settings.chunkWidth)
    }

    /// Initialise both networks with the same random weights (a fresh policy before pre-training).
    public func initialize(random: inout Philox) {
        base.initialize(random: &random)
        fineTuned.parameters.copy(from: base.parameters)
    }

    /// The network that runs denoising step t.
    @inline(__always)
    public func network(forStep t: Int) -> DiffusionMLP { t >= settings.fineTunedSteps ? base : fineTuned }

    /// Samples one chain per observation row and records its last K′+1 iterates.
    ///
    /// - observations: [B, To·Do], normalised.
    /// - chains: resized to [B, (K′+1)·Tp·Da]; entry j of row b is chain[j] (dppo.md §0), entry K′ is the action chunk.
    public func sampleChains(observations: Matrix, mode: SamplingMode, random: inout Philox, chains: Matrix) {
        let batch = observations.rows
        let width = settings.chunkWidth
        let k = settings.denoisingSteps, kPrime = settings.fineTunedSteps
        current.resize(rows: batch)
        random.fillNormal(current.data, count: current.count)
        chains.resize(rows: batch)
        precondition(chains.columns == settings.chainWidth)
        if timestepRow.count < batch { timestepRow = [Float](repeating: 0, count: batch) }
        var recorded = 0
        if kPrime == k { record(into: chains, slot: recorded); recorded += 1 }
        let noiseClip = Float(settings.randnClip), clip = Float(settings.denoisedClip)
        for t in stride(from: k - 1, through: 0, by: -1) {
            for index in 0..<batch { timestepRow[index] = Float(t) }
            let epsilon = timestepRow.withUnsafeBufferPointer {
                network(forStep: t).forward(noisyChunk: current, timesteps: $0.baseAddress!, observation: observations)
            }
            let std = mode == .exploration ? samplingStd[t] : deterministicStd[t]
            let s1 = recipAlpha[t], s2 = recipMinusOne[t], c1 = coefficient1[t], c2 = coefficient2[t]
            let x = current.data, e = epsilon.data
            for element in 0..<batch * width {
                let denoised = min(max(s1 * x[element] - s2 * e[element], -clip), clip)
                let mean = c1 * denoised + c2 * x[element]
                var noise: Float = 0
                if std > 0 { noise = min(max(random.normal(), -noiseClip), noiseClip) }
                x[element] = mean + std * noise
            }
            if t <= kPrime && recorded <= kPrime { record(into: chains, slot: recorded); recorded += 1 }
        }
    }

    private func record(into chains: Matrix, slot: Int) {
        let width = settings.chunkWidth
        for row in 0..<current.rows {
            (chains.row(row) + slot * width).update(from: current.row(row), count: width)
        }
    }

    /// Log-likelihood of N fine-tuned transitions under the fine-tuned network (dppo.md §4.4):
    /// mean over the first Ta rows of clamp(log N(output; μ_θ(input, t, o), σ̃_t²), −5, 2).
    ///
    /// - inputs: chain[j] rows [N, Tp·Da]; outputs: chain[j+1] rows; timesteps: t = K′−1−j per row;
    ///   observations: [N, To·Do]; result: N values.
    /// The values needed by `backwardTransitionLogProbabilities` are kept until the next call.
    public func transitionLogProbabilities(inputs: Matrix, outputs: Matrix, timesteps: [Int], observations: Matrix, into result: UnsafeMutablePointer<Float>) {
        let count = inputs.rows
        let width = settings.chunkWidth
        let scored = settings.actSteps * settings.actionDim
        likelihoodTimesteps = timesteps
        likelihoodOutputs.copy(from: outputs)
        if timestepRow.count < count { timestepRow = [Float](repeating: 0, count: count) }
        for index in 0..<count { timestepRow[index] = Float(timesteps[index]) }
        let epsilon = timestepRow.withUnsafeBufferPointer {
            fineTuned.forward(noisyChunk: inputs, timesteps: $0.baseAddress!, observation: observations)
        }
        if likelihoodMeans.count < count * width {
            likelihoodMeans = [Float](repeating: 0, count: count * width)
            likelihoodClampMask = [UInt8](repeating: 0, count: count * width)
            denoisedClampMask = [UInt8](repeating: 0, count: count * width)
            elementLogProbabilities = [Float](repeating: 0, count: count * width)
        }
        let clip = Float(settings.denoisedClip)
        let halfLogTwoPi = Float(0.5 * log(2 * Double.pi))
        for row in 0..<count {
            let t = timesteps[row]
            precondition(t >= 0 && t < settings.fineTunedSteps, "transition timestep \(t) is not a fine-tuned step")
            let s1 = recipAlpha[t], s2 = recipMinusOne[t], c1 = coefficient1[t], c2 = coefficient2[t]
            let std = likelihoodStd[t], logStd = logf(std), inverseVariance = 1 / (std * std)
            let x = inputs.row(row), e = epsilon.row(row), next = outputs.row(row)
            var sum: Float = 0
            for element in 0..<width {
                let flat = row * width + element
                let raw = s1 * x[element] - s2 * e[element]
                denoisedClampMask[flat] = (raw >= -clip && raw <= clip) ? 1 : 0
                let mean = c1 * min(max(raw, -clip), clip) + c2 * x[element]
                likelihoodMeans[flat] = mean
                let difference = next[element] - mean
                let logProbability = -0.5 * difference * difference * inverseVariance - logStd - halfLogTwoPi
                likelihoodClampMask[flat] = (logProbability >= -5 && logProbability <= 2) ? 1 : 0
                if element < scored { sum += min(max(logProbability, -5), 2) }
            }
            result[row] = sum / Float(scored)
        }
    }

    /// Accumulates fine-tuned network gradients given dL/d(log-likelihood) for each transition of the last call.
    public func backwardTransitionLogProbabilities(gradient: UnsafePointer<Float>) {
        let count = likelihoodOutputs.rows
        let width = settings.chunkWidth
        let scored = settings.actSteps * settings.actionDim
        epsilonGradient.resize(rows: count)
        epsilonGradient.fill(0)
        for row in 0..<count {
            let t = likelihoodTimesteps[row]
            let s2 = recipMinusOne[t], c1 = coefficient1[t]
            let std = likelihoodStd[t], inverseVariance = 1 / (std * std)
            let upstream = gradient[row] / Float(scored)
            let next = likelihoodOutputs.row(row), destination = epsilonGradient.row(row)
            for element in 0..<scored {
                let flat = row * width + element
                guard likelihoodClampMask[flat] == 1, denoisedClampMask[flat] == 1 else { continue }
                // dℓ/dμ = (x′ − μ)/σ̃²;  dμ/dε̂ = c1·(−√(1/ᾱ − 1)) inside the x̂₀ clamp.
                let dLogDMean = (next[element] - likelihoodMeans[flat]) * inverseVariance
                destination[element] = upstream * dLogDMean * c1 * (-s2)
            }
        }
        fineTuned.backward(outputGradient: epsilonGradient)
    }
}
