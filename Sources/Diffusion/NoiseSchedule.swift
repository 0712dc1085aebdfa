import Foundation

/// The DDPM cosine schedule of the DPPO reference (docs/algorithms.md §1.1–1.2), indexed by the 0-based
/// denoising step t ∈ [0, K). β is computed in Float64 and every derived array is kept in Float64;
/// the hot loops read their Float32 copies.
public struct NoiseSchedule: Sendable {
    public let steps: Int
    public let betas: [Double]
    public let alphas: [Double]
    public let alphasCumulative: [Double]
    public let alphasCumulativePrevious: [Double]
    public let sqrtAlphasCumulative: [Double]
    public let sqrtOneMinusAlphasCumulative: [Double]
    public let sqrtRecipAlphasCumulative: [Double]
    public let sqrtRecipMinusOneAlphasCumulative: [Double]
    public let posteriorVariance: [Double]
    public let posteriorLogVarianceClipped: [Double]
    public let posteriorMeanCoefficient1: [Double]
    public let posteriorMeanCoefficient2: [Double]

    public init(steps: Int, cosineOffset s: Double = 0.008) {
        precondition(steps >= 1, "denoising_steps must be ≥ 1")
        self.steps = steps
        let k = Double(steps)
        func alphaBar(_ i: Int) -> Double {
            let angle = ((Double(i) / k + s) / (1 + s)) * Double.pi / 2
            let origin = (s / (1 + s)) * Double.pi / 2
            return pow(cos(angle), 2) / pow(cos(origin), 2)
        }
        // The reference builds β in float64 then casts to float32; keeping that cast makes parity exact.
        betas = (0..<steps).map { t in Double(Float(min(max(1 - alphaBar(t + 1) / alphaBar(t), 0), 0.999))) }
        alphas = betas.map { 1 - $0 }
        var cumulative: [Double] = []
        var product = 1.0
        for alpha in alphas { product *= alpha; cumulative.append(product) }
        alphasCumulative = cumulative
        alphasCumulativePrevious = [1] + cumulative.dropLast()
        sqrtAlphasCumulative = cumulative.map { $0.squareRoot() }
        sqrtOneMinusAlphasCumulative = cumulative.map { (1 - $0).squareRoot() }
        sqrtRecipAlphasCumulative = cumulative.map { (1 / $0).squareRoot() }
        sqrtRecipMinusOneAlphasCumulative = cumulative.map { (1 / $0 - 1).squareRoot() }
        var variance: [Double] = [], coefficient1: [Double] = [], coefficient2: [Double] = []
        for t in 0..<steps {
            let previous = t == 0 ? 1 : cumulative[t - 1]
            variance.append(betas[t] * (1 - previous) / (1 - cumulative[t]))
            coefficient1.append(betas[t] * previous.squareRoot() / (1 - cumulative[t]))
            coefficient2.append((1 - previous) * alphas[t].squareRoot() / (1 - cumulative[t]))
        }
        posteriorVariance = variance
        posteriorLogVarianceClipped = variance.map { log(max($0, 1e-20)) }
        posteriorMeanCoefficient1 = coefficient1
        posteriorMeanCoefficient2 = coefficient2
    }

    /// Nominal reverse-step std σ_t = exp(½·log σ²_t(clipped)).
    public func posteriorStd(_ t: Int) -> Double { exp(0.5 * posteriorLogVarianceClipped[t]) }
}
