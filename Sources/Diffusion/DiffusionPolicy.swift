import Foundation
import Networks
import Tensors

/// One reverse step's coefficients as a sampling mode applies them (see `DiffusionPolicy.reverseStep`).
public struct ReverseStepCoefficients: Sendable, Equatable {
    /// The network's time input.
    public var networkTime: Float
    /// x̂₀ = s1·x − s2·ε̂ before the clamp.
    public var s1: Float, s2: Float
    /// Mean μ = c1·x̂₀ + c2·x.
    public var c1: Float, c2: Float
    /// Std of the added noise.
    public var std: Float

    public init(networkTime: Float, s1: Float, s2: Float, c1: Float, c2: Float, std: Float) {
        self.networkTime = networkTime
        self.s1 = s1
        self.s2 = s2
        self.c1 = c1
        self.c2 = c2
        self.std = std
    }

    /// x̂₀ = clamp(s1·x − s2·ε̂, ±clip) and the step's mean μ = c1·x̂₀ + c2·x for one element.
    @inline(__always)
    public func mean(x: Float, epsilon: Float, clip: Float) -> (denoised: Float, mean: Float) {
        let denoised = min(max(s1 * x - s2 * epsilon, -clip), clip)
        return (denoised, c1 * denoised + c2 * x)
    }
}

/// A diffusion policy split into a frozen base network (steps t ≥ K′) and a fine-tuned copy
/// (steps t < K′), with chain sampling for actors and transition log-likelihoods for the learner.
/// DDPM and DDIM differ only in the per-step coefficients (`ReverseStepTable`).
public final class DiffusionPolicy {
    public let settings: DenoisingSettings
    public let schedule: NoiseSchedule
    public let base: DiffusionMLP
    public let fineTuned: DiffusionMLP
    let steps: ReverseStepTable

    // Sampling buffers, reused across calls.
    let current: Matrix
    let stepNoise: Matrix
    var timestepRow: [Float] = []

    // Likelihood buffers for the last `transitionLogProbabilities` call (needed by its backward).
    let likelihoodOutputs: Matrix
    let epsilonGradient: Matrix
    var likelihoodTimesteps: [Int] = []
    var likelihoodMeans: [Float] = []
    var likelihoodClampMask: [UInt8] = []
    var denoisedClampMask: [UInt8] = []

    public convenience init(settings: DenoisingSettings, network: DiffusionMLPShape) {
        precondition(network.chunkWidth == settings.chunkWidth, "network chunk width \(network.chunkWidth) ≠ Tp·Da \(settings.chunkWidth)")
        let schedule = NoiseSchedule(steps: settings.denoisingSteps)
        self.init(settings: settings, schedule: schedule, base: DiffusionMLP(shape: network), fineTuned: DiffusionMLP(shape: network),
                  steps: ReverseStepTable(settings: settings, schedule: schedule))
    }

    /// A shard's copy of `policy`: both networks read its parameter values and keep their own gradients and buffers,
    /// so several copies can sample chains or score transitions at once (docs/learner-scaling.md).
    public convenience init(replicaOf policy: DiffusionPolicy) {
        self.init(settings: policy.settings, schedule: policy.schedule, base: policy.base.replica(), fineTuned: policy.fineTuned.replica(),
                  steps: policy.steps)
    }

    init(settings: DenoisingSettings, schedule: NoiseSchedule, base: DiffusionMLP, fineTuned: DiffusionMLP, steps: ReverseStepTable) {
        self.settings = settings
        self.schedule = schedule
        self.base = base
        self.fineTuned = fineTuned
        self.steps = steps
        current = Matrix(rows: 0, columns: settings.chunkWidth)
        stepNoise = Matrix(rows: 0, columns: settings.chunkWidth)
        likelihoodOutputs = Matrix(rows: 0, columns: settings.chunkWidth)
        epsilonGradient = Matrix(rows: 0, columns: settings.chunkWidth)
    }

    /// Initialise both networks with the same random weights (a fresh policy before pre-training).
    public func initialize(random: inout Philox) {
        base.initialize(random: &random)
        fineTuned.parameters.copy(from: base.parameters)
    }

    /// The network that runs sampling step t (t counts down from S−1 to 0).
    @inline(__always)
    public func network(forStep t: Int) -> DiffusionMLP { t >= settings.fineTunedSteps ? base : fineTuned }

    /// The network's time input at step t: t for DDPM, the DDIM timestep τ_t for DDIM.
    public func networkTime(step t: Int) -> Float { steps.networkTime[t] }

    /// Nominal, sampling and likelihood std of step t (docs/algorithms.md §1.4–1.5), for diagnostics and tests.
    public func standardDeviations(step t: Int) -> (sampling: Float, likelihood: Float, deterministic: Float) {
        (steps.samplingStd[t], steps.likelihoodStd[t], steps.deterministicStd[t])
    }

    /// The coefficients sampling step t applies in `mode`, for samplers outside this class (Diffusion-QL's
    /// differentiable chain): x̂₀ = clamp(s1·x − s2·ε̂, ±denoisedClip), x′ = c1·x̂₀ + c2·x + std·clamp(z, ±randnClip).
    public func reverseStep(_ t: Int, mode: SamplingMode) -> ReverseStepCoefficients {
        let deterministic = mode == .deterministic
        return ReverseStepCoefficients(networkTime: steps.networkTime[t], s1: steps.s1[t], s2: steps.s2[t],
            c1: deterministic ? steps.deterministicC1[t] : steps.c1[t], c2: deterministic ? steps.deterministicC2[t] : steps.c2[t],
            std: deterministic ? steps.deterministicStd[t] : steps.samplingStd[t])
    }

    /// Samples one chain per observation row and records its last K′+1 iterates, drawing noise from `random`.
    public func sampleChains(observations: Matrix, mode: SamplingMode, random: inout Philox, chains: Matrix, useBasePolicy: Bool = false) {
        sampleChains(observations: observations, mode: mode, chains: chains, useBasePolicy: useBasePolicy) { random.fillNormal($0, count: $1) }
    }

    /// Samples one chain per observation row and records its last K′+1 iterates.
    ///
    /// - observations: [B, To·Do], normalised.
    /// - chains: resized to [B, (K′+1)·Tp·Da]; entry j of row b is chain[j] (docs/algorithms.md §0), entry K′ is the action chunk.
    /// - useBasePolicy: run every step with the frozen base network (the BC regulariser's teacher chains).
    /// - noise: fills `count` standard normals; called for the initial x (B·Tp·Da values) and then once per
    ///   sampling step in sampling order, deterministic mode included. The policy clamps them to ±randn_clip.
    public func sampleChains(observations: Matrix, mode: SamplingMode, chains: Matrix, useBasePolicy: Bool = false,
                             noise: (UnsafeMutablePointer<Float>, Int) -> Void) {
        let batch = observations.rows
        let count = batch * settings.chunkWidth
        let stepCount = settings.samplingSteps, kPrime = settings.fineTunedSteps
        current.resize(rows: batch)
        stepNoise.resize(rows: batch)
        noise(current.data, count)
        chains.resize(rows: batch)
        precondition(chains.columns == settings.chainWidth)
        if timestepRow.count < batch { timestepRow = [Float](repeating: 0, count: batch) }
        var recorded = 0
        if kPrime == stepCount { record(into: chains, slot: recorded); recorded += 1 }
        let noiseClip = Float(settings.randnClip), clip = Float(settings.denoisedClip)
        let deterministic = mode == .deterministic
        for t in stride(from: stepCount - 1, through: 0, by: -1) {
            for index in 0..<batch { timestepRow[index] = steps.networkTime[t] }
            let stepNetwork = useBasePolicy ? base : network(forStep: t)
            let epsilon = timestepRow.withUnsafeBufferPointer {
                stepNetwork.forward(noisyChunk: current, timesteps: $0.baseAddress!, observation: observations)
            }
            noise(stepNoise.data, count)
            let std = deterministic ? steps.deterministicStd[t] : steps.samplingStd[t]
            let s1 = steps.s1[t], s2 = steps.s2[t]
            let c1 = deterministic ? steps.deterministicC1[t] : steps.c1[t], c2 = deterministic ? steps.deterministicC2[t] : steps.c2[t]
            let x = current.data, e = epsilon.data, z = stepNoise.data
            for element in 0..<count {
                let denoised = min(max(s1 * x[element] - s2 * e[element], -clip), clip)
                let mean = c1 * denoised + c2 * x[element]
                x[element] = mean + std * min(max(z[element], -noiseClip), noiseClip)
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

    /// Log-likelihood of N fine-tuned transitions under the fine-tuned network (docs/algorithms.md §4.4):
    /// mean over the first Ta rows of clamp(log N(output; μ_θ(input, t, o), σ̃_t²), −5, 2).
    ///
    /// - inputs: chain[j] rows [N, Tp·Da]; outputs: chain[j+1] rows; timesteps: step index t = K′−1−j per row;
    ///   observations: [N, To·Do]; result: N values.
    /// The values needed by `backwardTransitionLogProbabilities` are kept until the next call.
    public func transitionLogProbabilities(inputs: Matrix, outputs: Matrix, timesteps: [Int], observations: Matrix, into result: UnsafeMutablePointer<Float>) {
        let count = inputs.rows
        let width = settings.chunkWidth
        let scored = settings.actSteps * settings.actionDim
        // Copied into this buffer, not assigned: sharing the caller's storage would make the caller's next in-place
        // refill allocate afresh (copy on write), every minibatch.
        likelihoodTimesteps.removeAll(keepingCapacity: true)
        likelihoodTimesteps.append(contentsOf: timesteps)
        likelihoodOutputs.copy(from: outputs)
        if timestepRow.count < count { timestepRow = [Float](repeating: 0, count: count) }
        for index in 0..<count {
            precondition(timesteps[index] >= 0 && timesteps[index] < settings.fineTunedSteps, "transition step \(timesteps[index]) is not a fine-tuned step")
            timestepRow[index] = steps.networkTime[timesteps[index]]
        }
        let epsilon = timestepRow.withUnsafeBufferPointer {
            fineTuned.forward(noisyChunk: inputs, timesteps: $0.baseAddress!, observation: observations)
        }
        if likelihoodMeans.count < count * width {
            likelihoodMeans = [Float](repeating: 0, count: count * width)
            likelihoodClampMask = [UInt8](repeating: 0, count: count * width)
            denoisedClampMask = [UInt8](repeating: 0, count: count * width)
        }
        let clip = Float(settings.denoisedClip)
        let halfLogTwoPi = Float(0.5 * log(2 * Double.pi))
        for row in 0..<count {
            let t = timesteps[row]
            let s1 = steps.s1[t], s2 = steps.s2[t], c1 = steps.c1[t], c2 = steps.c2[t]
            let std = steps.likelihoodStd[t], logStd = logf(std), inverseVariance = 1 / (std * std)
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
            let s2 = steps.s2[t], c1 = steps.c1[t]
            let std = steps.likelihoodStd[t], inverseVariance = 1 / (std * std)
            let upstream = gradient[row] / Float(scored)
            let next = likelihoodOutputs.row(row), destination = epsilonGradient.row(row)
            for element in 0..<scored {
                let flat = row * width + element
                guard likelihoodClampMask[flat] == 1, denoisedClampMask[flat] == 1 else { continue }
                // dℓ/dμ = (x′ − μ)/σ̃²;  dμ/dε̂ = c1·(−s2) inside the x̂₀ clamp, 0 outside (DDIM's ε̂′ then no longer depends on ε̂).
                let dLogDMean = (next[element] - likelihoodMeans[flat]) * inverseVariance
                destination[element] = upstream * dLogDMean * c1 * (-s2)
            }
        }
        fineTuned.backward(outputGradient: epsilonGradient)
    }
}
