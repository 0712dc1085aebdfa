import Diffusion
import Foundation
import Networks
import Tensors

/// The denoising loss (§1.2) and EDP's action approximation (§3.2) from one pass of `policy.base`:
/// k ~ U{0…K−1}, ε ~ N(0, I), a^k = √ᾱ_k·a + √(1−ᾱ_k)·ε, ε̂ = ε_θ(a^k, k, s),
/// L_diff = mean over rows and chunk elements of (ε̂ − ε)², â⁰ = clamp(√(1/ᾱ_k)·a^k − √(1/ᾱ_k − 1)·ε̂, ±c).
///
/// The random draws follow `DiffusionBehaviourCloning` (all noise first, then one step index per row), so both give
/// the same L_diff from the same generator state. Gradient reaches θ through ε̂ only (a^k is data).
final class ActionApproximation {
    let policy: DiffusionPolicy
    let noisy: Matrix, noise: Matrix
    /// â⁰ of the last `forward`, clipped [B, Tp·Da].
    let denoised: Matrix
    let epsilonGradient: Matrix
    var timesteps: [Float] = []
    var rowScale: [Float] = []      // √(1/ᾱ_k − 1) per row
    var recipRoots: [Float] = []    // √(1/ᾱ_k) per row
    var insideClip: [Bool] = []

    /// a^k = √ᾱ_k·a + √(1−ᾱ_k)·ε for one element.
    @inline(__always)
    static func noised(clean: Float, noise: Float, sqrtAlphaBar: Float, sqrtOneMinusAlphaBar: Float) -> Float {
        sqrtAlphaBar * clean + sqrtOneMinusAlphaBar * noise
    }

    /// â⁰ = √(1/ᾱ_k)·a^k − √(1/ᾱ_k − 1)·ε̂ before the clip, for one element.
    @inline(__always)
    static func denoised(noisy: Float, epsilon: Float, sqrtRecipAlphaBar: Float, sqrtRecipMinusOneAlphaBar: Float) -> Float {
        sqrtRecipAlphaBar * noisy - sqrtRecipMinusOneAlphaBar * epsilon
    }

    /// log N(a; â⁰, I) = −½‖a − â⁰‖² − (d/2)·ln 2π, EDP's Gaussian surrogate (§3.4 variant 2).
    static func surrogateLogProbability(actions: UnsafePointer<Float>, denoised: UnsafePointer<Float>, count: Int) -> Double {
        var squared = 0.0
        for element in 0..<count { squared += Double((actions[element] - denoised[element]) * (actions[element] - denoised[element])) }
        return -0.5 * squared - 0.5 * Double(count) * log(2 * Double.pi)
    }

    init(policy: DiffusionPolicy) {
        self.policy = policy
        let width = policy.settings.chunkWidth
        noisy = Matrix(rows: 0, columns: width)
        noise = Matrix(rows: 0, columns: width)
        denoised = Matrix(rows: 0, columns: width)
        epsilonGradient = Matrix(rows: 0, columns: width)
    }

    /// Runs the pass for dataset chunks `actions` after `observations`; returns L_diff and leaves â⁰ in `denoised`.
    func forward(observations: Matrix, actions: Matrix, random: inout Philox) -> Double {
        let size = actions.rows, width = policy.settings.chunkWidth, count = size * width
        let schedule = policy.schedule, clip = Float(policy.settings.denoisedClip)
        noisy.resize(rows: size); noise.resize(rows: size); denoised.resize(rows: size)
        if timesteps.count != size {
            timesteps = [Float](repeating: 0, count: size)
            rowScale = timesteps
            recipRoots = timesteps
        }
        if insideClip.count != count { insideClip = [Bool](repeating: true, count: count) }
        random.fillNormal(noise.data, count: count)
        for row in 0..<size {
            let k = random.integer(below: schedule.steps)
            timesteps[row] = Float(k)
            rowScale[row] = Float(schedule.sqrtRecipMinusOneAlphasCumulative[k])
            recipRoots[row] = Float(schedule.sqrtRecipAlphasCumulative[k])
            let a = Float(schedule.sqrtAlphasCumulative[k]), b = Float(schedule.sqrtOneMinusAlphasCumulative[k])
            let clean = actions.row(row), epsilon = noise.row(row), destination = noisy.row(row)
            for element in 0..<width {
                destination[element] = Self.noised(clean: clean[element], noise: epsilon[element], sqrtAlphaBar: a, sqrtOneMinusAlphaBar: b)
            }
        }
        let predicted = timesteps.withUnsafeBufferPointer {
            policy.base.forward(noisyChunk: noisy, timesteps: $0.baseAddress!, observation: observations)
        }
        var loss = 0.0
        for row in 0..<size {
            for element in 0..<width {
                let flat = row * width + element
                let error = predicted.data[flat] - noise.data[flat]
                loss += Double(error * error)
                let raw = Self.denoised(noisy: noisy.data[flat], epsilon: predicted.data[flat],
                                        sqrtRecipAlphaBar: recipRoots[row], sqrtRecipMinusOneAlphaBar: rowScale[row])
                insideClip[flat] = raw >= -clip && raw <= clip
                denoised.data[flat] = min(max(raw, -clip), clip)
            }
        }
        return loss / Double(count)
    }

    /// Accumulates dL/dθ for L = diffusionWeight·L_diff + (a loss of â⁰ with gradient `denoisedGradient`, if any).
    func backward(diffusionWeight: Float, denoisedGradient: Matrix?) {
        let size = noise.rows, width = policy.settings.chunkWidth
        let predicted = policy.base.output
        epsilonGradient.resize(rows: size)
        let scale = 2 * diffusionWeight / Float(size * width)
        for row in 0..<size {
            for element in 0..<width {
                let flat = row * width + element
                var gradient = scale * (predicted.data[flat] - noise.data[flat])
                if let denoisedGradient, insideClip[flat] { gradient -= rowScale[row] * denoisedGradient.data[flat] }
                epsilonGradient.data[flat] = gradient
            }
        }
        policy.base.backward(outputGradient: epsilonGradient)
    }
}

/// TD targets y = R + discount·bootstrap from a sampled next action (§2.2, §3.3): a′ from the target policy at s′,
/// bootstrap = min(Q1′, Q2′)(s′, a′), or with the max-Q backup N actions per s′ and min over critics of the max over
/// samples within each target critic (max first, then min).
final class SampledTargets {
    let repeatedObservations: Matrix
    let nextActions: Matrix
    /// y [B, 1] of the last `compute`.
    let targets: Matrix

    init(observationDim: Int, actionDim: Int) {
        repeatedObservations = Matrix(rows: 0, columns: observationDim)
        nextActions = Matrix(rows: 0, columns: actionDim)
        targets = Matrix(rows: 0, columns: 1)
    }

    @discardableResult
    func compute(batch: OfflineBatch, targetPolicy: DiffusionPolicy, sampler: ChunkSampler, critic: TwinQCritic,
                 samplesPerState: Int, random: inout Philox) -> Matrix {
        let size = batch.count, n = samplesPerState
        targets.resize(rows: size)
        if (0..<size).allSatisfy({ batch.discounts.data[$0] == 0 }) {
            // Nothing bootstraps (one-step tasks such as the bandit): skip sampling.
            targets.data.update(from: batch.rewards.data, count: size)
            return targets
        }
        repeatRows(batch.nextObservations, times: n, into: repeatedObservations)
        sampler.sample(policy: targetPolicy, observations: repeatedObservations, actions: nextActions, random: &random)
        let (q1, q2) = critic.forward(observations: repeatedObservations, actions: nextActions, copy: .target)
        for row in 0..<size {
            var best1 = -Float.infinity, best2 = -Float.infinity
            for j in 0..<n {
                best1 = max(best1, q1.data[row * n + j])
                best2 = max(best2, q2.data[row * n + j])
            }
            targets.data[row] = batch.rewards.data[row] + batch.discounts.data[row] * min(best1, best2)
        }
        return targets
    }
}

/// L_Q = mean(Q1(s, a) − y)² + mean(Q2(s, a) − y)² (the sum of two MSEs, §2.2; y detached): zeroes the critic's
/// gradients, accumulates ∂L_Q/∂φ and returns L_Q with the batch means of Q1 and Q2.
func criticRegression(critic: TwinQCritic, batch: OfflineBatch, targets: Matrix, gradient1: Matrix, gradient2: Matrix)
    -> (loss: Double, q1Mean: Double, q2Mean: Double) {
    let size = batch.count
    critic.parameters.zeroGradients()
    let (q1, q2) = critic.forward(observations: batch.observations, actions: batch.actions)
    gradient1.resize(rows: size); gradient2.resize(rows: size)
    var loss = 0.0, sum1 = 0.0, sum2 = 0.0
    let scale = 2 / Float(size)
    for row in 0..<size {
        let error1 = q1.data[row] - targets.data[row], error2 = q2.data[row] - targets.data[row]
        loss += Double(error1 * error1 + error2 * error2)
        sum1 += Double(q1.data[row]); sum2 += Double(q2.data[row])
        gradient1.data[row] = scale * error1
        gradient2.data[row] = scale * error2
    }
    critic.backward(q1Gradient: gradient1, q2Gradient: gradient2)
    return (loss / Double(size), sum1 / Double(size), sum2 / Double(size))
}

/// One step of Monte Carlo critic pre-training: Q1 and Q2 regressed on the batch's returns G, the behaviour
/// policy's discounted return from (s, a) to the episode's end, then the targets set to the online critics.
///
/// TD learning with Polyak targets moves value information one chunk per ~1/τ steps, so for the first 10⁴ steps a
/// fresh critic on a γ = 0.99 task is short-sighted: it ranks actions by the next few rewards, and a hopper that
/// lunges forward ranks high just before it falls. The returns carry the whole horizon from the first step (Q of the
/// data's policy, as Cal-QL's Monte Carlo bound and one-step RL use it); TD learning then starts from there.
func monteCarloCriticStep(critic: TwinQCritic, optimizer: Adam, batch: OfflineBatch, gradient1: Matrix, gradient2: Matrix,
                          statistics: inout OfflineStatistics) {
    let regression = criticRegression(critic: critic, batch: batch, targets: batch.returns, gradient1: gradient1, gradient2: gradient2)
    statistics.criticLoss = regression.loss
    statistics.datasetQ = regression.q1Mean
    statistics.targetMean = mean(batch.returns)
    statistics.criticGradientNorm = optimizer.update()
    critic.target.copy(from: critic.parameters)
}

/// IQL's expectile loss (§3.6) with u = target − value: mean |τ − 1(u < 0)|·u². Writes dL/dvalue into `valueGradient`.
func expectileLoss(targets: UnsafePointer<Float>, values: UnsafePointer<Float>, count: Int, expectile: Float,
                   valueGradient: UnsafeMutablePointer<Float>) -> Double {
    var loss = 0.0
    for row in 0..<count {
        let u = targets[row] - values[row]
        let weight = u < 0 ? 1 - expectile : expectile
        loss += Double(weight * u * u)
        valueGradient[row] = -2 * weight * u / Float(count)
    }
    return loss / Double(count)
}

/// The EMA ("target") actor update of both codebases (§2.3, §3.10): θ′ ← decay·θ′ + (1 − decay)·θ every `every`
/// steps from step `start` on; before that θ′ keeps the actor it was copied from at construction.
public struct TargetActorSchedule: Sendable, Equatable, Codable {
    public var decay: Double
    public var every: Int
    public var start: Int

    public init(decay: Double = 0.995, every: Int = 5, start: Int = 1000) {
        self.decay = decay
        self.every = every
        self.start = start
    }

    func applies(atStep step: Int) -> Bool { step >= start && step % every == 0 }
}

/// Cosine annealing to 0 over `steps` gradient steps (constant afterwards), or no decay when `steps` is nil.
func cosineDecayed(_ learningRate: Double, step: Int, steps: Int?) -> Float {
    guard let steps, steps > 0 else { return Float(learningRate) }
    let progress = Double(min(step, steps)) / Double(steps)
    return Float(learningRate * 0.5 * (1 + cos(Double.pi * progress)))
}

/// A DiffusionPolicy of the same settings and network whose `base` holds a copy of `policy.base` (the target actor).
func targetCopy(of policy: DiffusionPolicy) -> DiffusionPolicy {
    let copy = DiffusionPolicy(settings: policy.settings, network: policy.base.shape)
    copy.base.parameters.copy(from: policy.base.parameters)
    copy.fineTuned.parameters.copy(from: policy.base.parameters)
    return copy
}
