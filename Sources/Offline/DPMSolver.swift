import Foundation
import Networks
import Tensors

/// DPM-Solver settings. The defaults are EDP's (docs/offline-algorithms.md §3.7): singlestep "DPM-Solver-fast" in
/// noise-prediction form, order 3, 15 model calls on a time-uniform grid from t = 1 to t = 1/N (EDP's 1e-3 at
/// N = 1000), no final denoising call, and EDP's noise clipping at a_max = 1.
public struct DPMSolverSettings: Sendable, Equatable, Codable {
    /// Network passes per sample (NFE).
    public var modelCalls: Int
    /// Highest solver order, 1…3; the last outer steps use lower orders (§3.7.4).
    public var order: Int
    /// t_T, where sampling starts from x ~ N(0, I).
    public var startTime: Double
    /// t_ε, where the sample is returned; nil means 1/N, the first knot of the schedule (t_ε = 1e-3 at N = 1000).
    public var endTime: Double?
    /// a_max of EDP's noise clipping: each ε̂ is bounded so that the x̂₀ it implies stays in ±a_max (§3.7.3);
    /// nil leaves ε̂ as the model returns it.
    public var denoisedClip: Double?
    /// Space the outer steps uniformly in λ = log(α/σ) (DPM-Solver's "logSNR" skip type) instead of uniformly in t (EDP's
    /// choice). Needed for short schedules whose last ᾱ is tiny, such as DPPO's cosine K = 20 (ᾱ₁₉ ≈ 1e−5): there
    /// a time-uniform grid puts 5 of the 8.4 units of λ into the first step and the solver misses the data's spread
    /// (std 0.04 for a N(0.3, 0.2²) target with the exact ε), where logSNR spacing is accurate.
    public var logSNRSpacing: Bool

    public init(modelCalls: Int = 15, order: Int = 3, startTime: Double = 1, endTime: Double? = nil, denoisedClip: Double? = 1,
                logSNRSpacing: Bool = false) {
        self.modelCalls = modelCalls
        self.order = order
        self.startTime = startTime
        self.endTime = endTime
        self.denoisedClip = denoisedClip
        self.logSNRSpacing = logSNRSpacing
    }
}

/// One outer step s → t of the singlestep solver: its times and λ values, and the coefficients that
/// do not depend on x, computed once in Float64.
///
/// With e_s = ε̂(x, s), φ(z) = e^z − 1 and D₁ = ε̂(u₁, s₁) − e_s (§3.7.5):
///   u_j = (α_{s_j}/α_s)·x − σ_{s_j}·φ(r_j h)·e_s  [− (r₂/r₁)·σ_{s₂}·(φ(r₂h)/(r₂h) − 1)·D₁ for j = 2]
///   x_t = (α_t/α_s)·x − σ_t·φ(h)·e_s − c·(ε̂(u_last, s_last) − e_s)
/// with c = 0 (order 1), σ_t·φ(h)/(2r₁) (order 2), σ_t·(φ(h)/h − 1)/r₂ (order 3).
public struct DPMSolverStep: Sendable {
    /// 1, 2 or 3: the model calls this step makes.
    public let order: Int
    /// s and t.
    public let startTime: Double, endTime: Double
    /// λ(s) and λ(t).
    public let startLambda: Double, endLambda: Double
    /// r₁ (order ≥ 2) and r₂ (order 3): λ offsets of the inner grid linspace(s, t, order+1) as fractions of h.
    public let ratios: [Double]
    /// s, s₁, s₂: the times of this step's model calls, s_j = λ⁻¹(λ(s) + r_j·h).
    public let modelTimes: [Double]

    /// h = λ(t) − λ(s).
    public var stepSize: Double { endLambda - startLambda }

    let decay: Float, noise: Float, correction: Float
    let intermediateDecays: [Float], intermediateNoises: [Float]
    let secondIntermediateCorrection: Float
    /// EDP's noise clipping at each model call: ε̂ ∈ x·slope ± offset (slope = √(1/ᾱ_n)/√(1/ᾱ_n − 1),
    /// offset = a_max/√(1/ᾱ_n − 1), n = floor(N·t − 1)); empty when clipping is off.
    let clipSlopes: [Float], clipOffsets: [Float]

    init(order: Int, from s: Double, to t: Double, schedule: NoiseScheduleVP, denoisedClip: Double?) {
        let innerLambdas = (0...order).map { schedule.lambda(s + Double($0) * (t - s) / Double(order)) }
        let lambdaS = innerLambdas[0], h = innerLambdas[order] - lambdaS
        let ratios = (1..<order).map { (innerLambdas[$0] - lambdaS) / h }
        let intermediateTimes = ratios.map { schedule.time(lambda: lambdaS + $0 * h) }
        let modelTimes = [s] + intermediateTimes
        self.order = order
        startTime = s
        endTime = t
        startLambda = lambdaS
        endLambda = innerLambdas[order]
        self.ratios = ratios
        self.modelTimes = modelTimes

        let alphaS = schedule.alpha(s), sigmaT = schedule.sigma(t)
        decay = Float(schedule.alpha(t) / alphaS)
        noise = Float(sigmaT * expm1(h))
        switch order {
        case 1: correction = 0
        case 2: correction = Float(sigmaT * expm1(h) / (2 * ratios[0]))
        default: correction = Float(sigmaT * (expm1(h) / h - 1) / ratios[1])
        }
        intermediateDecays = intermediateTimes.map { Float(schedule.alpha($0) / alphaS) }
        intermediateNoises = zip(intermediateTimes, ratios).map { Float(schedule.sigma($0) * expm1($1 * h)) }
        if order == 3 {
            let r1 = ratios[0], r2 = ratios[1]
            secondIntermediateCorrection = Float(r2 / r1 * schedule.sigma(intermediateTimes[1]) * (expm1(r2 * h) / (r2 * h) - 1))
        } else {
            secondIntermediateCorrection = 0
        }
        let bounds = denoisedClip.map { clip in modelTimes.map { time -> (slope: Float, offset: Float) in
            let alphaBar = schedule.alphasCumulative[schedule.clippingIndex(time)]
            let scale = (1 / alphaBar).squareRoot(), noiseScale = (1 / alphaBar - 1).squareRoot()
            return (Float(scale / noiseScale), Float(clip / noiseScale))
        } } ?? []
        clipSlopes = bounds.map(\.slope)
        clipOffsets = bounds.map(\.offset)
    }
}

/// DPM-Solver (Lu et al. 2022) as EDP samples with it (§3.7): the probability-flow ODE of a discrete-time
/// ε-network, integrated in λ from x_T ~ N(0, I) at t_T to the action at t_ε, for a whole batch at once.
///
/// Every model call is one batched forward pass over all rows; the time grid, orders and coefficients are
/// fixed at init, and the buffers only grow, so a loop that keeps its batch size allocates nothing.
public final class DPMSolver {
    /// ε̂ for every row of x [B, W] at continuous time t (the same for all rows); the returned matrix is read
    /// before the next call, so a network may return its own output buffer.
    public typealias NoisePrediction = (_ x: Matrix, _ t: Double) -> Matrix

    /// The continuous-time view of the schedule the ε-network was trained on.
    public let schedule: NoiseScheduleVP
    public let settings: DPMSolverSettings
    /// Flattened chunk width W = Tp·Da of the samples.
    public let width: Int
    /// t_i = t_T + i·(t_ε − t_T)/M, i = 0…M, M = model calls.
    public let timeGrid: [Double]
    /// Grid indices of the outer step boundaries (cumulative sums of the orders, from 0).
    public let outerGridIndices: [Int]
    /// The outer steps in sampling order.
    public let steps: [DPMSolverStep]

    let startNoise: Matrix      // e_s
    let stageNoise: Matrix      // ε̂ at s₁, then ε̂ at s₂
    let intermediate: Matrix    // u₁, then u₂
    var networkTimeRow: [Float] = []

    public init(schedule: NoiseScheduleVP, settings: DPMSolverSettings = DPMSolverSettings(), width: Int) {
        let endTime = settings.endTime ?? 1 / Double(schedule.discreteSteps)
        precondition((1...3).contains(settings.order), "DPM-Solver order must be 1, 2 or 3 (got \(settings.order))")
        precondition(settings.modelCalls >= 1, "DPM-Solver needs at least one model call")
        precondition(endTime > 0 && endTime < settings.startTime && settings.startTime <= 1,
                     "DPM-Solver times must satisfy 0 < t_end < t_start ≤ 1 (got \(endTime), \(settings.startTime))")
        self.schedule = schedule
        self.settings = settings
        self.width = width
        let calls = settings.modelCalls, start = settings.startTime
        let orders = Self.orders(modelCalls: calls, order: settings.order)
        let grid: [Double], boundaries: [Int]
        if settings.logSNRSpacing {
            let first = schedule.lambda(start), last = schedule.lambda(endTime)
            grid = (0...orders.count).map { $0 == 0 ? start : $0 == orders.count ? endTime
                : schedule.time(lambda: first + Double($0) * (last - first) / Double(orders.count)) }
            boundaries = Array(0...orders.count)
        } else {
            grid = (0...calls).map { start + Double($0) * (endTime - start) / Double(calls) }
            boundaries = orders.reduce(into: [0]) { $0.append($0.last! + $1) }
        }
        timeGrid = grid
        outerGridIndices = boundaries
        steps = orders.indices.map { index in
            DPMSolverStep(order: orders[index], from: grid[boundaries[index]], to: grid[boundaries[index + 1]],
                          schedule: schedule, denoisedClip: settings.denoisedClip)
        }
        startNoise = Matrix(rows: 0, columns: width)
        stageNoise = Matrix(rows: 0, columns: width)
        intermediate = Matrix(rows: 0, columns: width)
    }

    /// DPM-Solver's singlestep order schedule for `modelCalls` NFE: with order 3, M//3 + 1 outer steps of order 3
    /// ending in [2, 1] (M % 3 = 0), [1] (M % 3 = 1) or [2] (M % 3 = 2); with order 2, pairs ending in [1] if M is odd.
    public static func orders(modelCalls: Int, order: Int) -> [Int] {
        switch order {
        case 3:
            let outer = modelCalls / 3 + 1
            switch modelCalls % 3 {
            case 0: return Array(repeating: 3, count: outer - 2) + [2, 1]
            case 1: return Array(repeating: 3, count: outer - 1) + [1]
            default: return Array(repeating: 3, count: outer - 1) + [2]
            }
        case 2:
            return Array(repeating: 2, count: modelCalls / 2) + (modelCalls % 2 == 1 ? [1] : [])
        default:
            return Array(repeating: 1, count: modelCalls)
        }
    }

    /// The times of all model calls in call order (the grid times t_0 … t_{M−1}, up to the round trip through λ).
    public var modelCallTimes: [Double] { steps.flatMap(\.modelTimes) }

    /// Integrates in place: x [B, W] holds x_T on entry and the sample at t_ε on return (not clipped, §3.7.6).
    public func sample(_ x: Matrix, model: NoisePrediction) {
        for step in steps { advance(x, through: step, model: model) }
    }

    /// Samples one action chunk per observation row with `network` (DPPO's ε-network, time input N·t − 1),
    /// drawing x_T ~ N(0, I) from `random`. chunks: resized to [B, W].
    public func sample(network: DiffusionMLP, observations: Matrix, random: inout Philox, into chunks: Matrix) {
        chunks.resize(rows: observations.rows)
        random.fillNormal(chunks.data, count: chunks.count)
        sample(chunks, network: network, observations: observations)
    }

    /// Integrates x [B, W] in place with `network` conditioned on `observations` [B, To·Do].
    public func sample(_ x: Matrix, network: DiffusionMLP, observations: Matrix) {
        precondition(network.shape.chunkWidth == width, "network chunk width \(network.shape.chunkWidth) ≠ solver width \(width)")
        let batch = x.rows
        if networkTimeRow.count < batch { networkTimeRow = [Float](repeating: 0, count: batch) }
        sample(x) { input, t in
            let networkTime = Float(self.schedule.networkTime(t))
            for row in 0..<batch { self.networkTimeRow[row] = networkTime }
            return self.networkTimeRow.withUnsafeBufferPointer {
                network.forward(noisyChunk: input, timesteps: $0.baseAddress!, observation: observations)
            }
        }
    }

    /// One outer step s → t in place (`order` model calls).
    public func advance(_ x: Matrix, through step: DPMSolverStep, model: NoisePrediction) {
        precondition(x.columns == width, "sample width \(x.columns) ≠ solver width \(width)")
        let count = x.count
        predict(model, at: x, call: 0, of: step, into: startNoise)
        let current = x.data, noiseAtStart = startNoise.data
        guard step.order > 1 else {
            for index in 0..<count { current[index] = step.decay * current[index] - step.noise * noiseAtStart[index] }
            return
        }
        intermediate.resize(rows: x.rows)
        let stage = intermediate.data
        let decay1 = step.intermediateDecays[0], noise1 = step.intermediateNoises[0]
        for index in 0..<count { stage[index] = decay1 * current[index] - noise1 * noiseAtStart[index] }
        predict(model, at: intermediate, call: 1, of: step, into: stageNoise)
        if step.order == 3 {
            let firstEpsilon = stageNoise.data
            let decay2 = step.intermediateDecays[1], noise2 = step.intermediateNoises[1], correction2 = step.secondIntermediateCorrection
            for index in 0..<count {
                let firstDifference = firstEpsilon[index] - noiseAtStart[index]
                stage[index] = decay2 * current[index] - noise2 * noiseAtStart[index] - correction2 * firstDifference
            }
            predict(model, at: intermediate, call: 2, of: step, into: stageNoise)
        }
        let lastEpsilon = stageNoise.data
        for index in 0..<count {
            current[index] = step.decay * current[index] - step.noise * noiseAtStart[index]
                - step.correction * (lastEpsilon[index] - noiseAtStart[index])
        }
    }

    /// Copies ε̂(input, t) into `destination`, bounded by EDP's noise clipping when it is on.
    private func predict(_ model: NoisePrediction, at input: Matrix, call: Int, of step: DPMSolverStep, into destination: Matrix) {
        let prediction = model(input, step.modelTimes[call])
        precondition(prediction.rows == input.rows && prediction.columns == width, "the model must return one ε̂ row of width \(width) per input row")
        destination.resize(rows: input.rows)
        let x = input.data, epsilon = prediction.data, result = destination.data
        if step.clipSlopes.isEmpty {
            result.update(from: epsilon, count: input.count)
        } else {
            let slope = step.clipSlopes[call], offset = step.clipOffsets[call]
            for index in 0..<input.count {
                let center = x[index] * slope
                result[index] = min(max(epsilon[index], center - offset), center + offset)
            }
        }
    }
}
