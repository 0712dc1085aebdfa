import Diffusion
import Foundation

/// The continuous-time view of a discrete DDPM schedule that DPM-Solver samples with
/// (DPM-Solver's `NoiseScheduleVP('discrete', alphas_cumprod=…)`, docs/offline-algorithms.md §3.7.1).
///
/// Knots t_n = (n+1)/N for the 0-based index n = 0…N−1 carry log α(t_n) = ½·ln ᾱ_n; log α(t) is
/// piecewise-linear between knots and extrapolated linearly outside them. From it
/// σ(t) = √(1 − α(t)²) and the half log-SNR λ(t) = log α(t) − log σ(t), which DPM-Solver steps in.
/// Everything is Float64: ᾱ reaches 4e-5 at N = 1000 (§7.20).
public struct NoiseScheduleVP: Sendable {
    /// N, the number of discrete steps the ε-network was trained on.
    public let discreteSteps: Int
    /// ᾱ_n, n = 0…N−1 (0-based: index n is paper step k = n+1).
    public let alphasCumulative: [Double]
    /// t_n = (n+1)/N, increasing.
    public let knotTimes: [Double]
    /// log α(t_n) = ½·ln ᾱ_n, decreasing.
    public let knotLogAlphas: [Double]
    // The knots in increasing log α, for the inverse of λ.
    private let ascendingLogAlphas: [Double]
    private let timesOfAscendingLogAlphas: [Double]

    /// The wrapper of any discrete schedule given by its ᾱ (decreasing, in (0, 1)).
    public init(alphasCumulative: [Double]) {
        precondition(alphasCumulative.count >= 2, "a discrete schedule needs at least two steps")
        precondition(zip(alphasCumulative, alphasCumulative.dropFirst()).allSatisfy { $0 > $1 } && alphasCumulative.allSatisfy { $0 > 0 && $0 < 1 },
                     "ᾱ must decrease strictly within (0, 1)")
        let count = alphasCumulative.count
        discreteSteps = count
        self.alphasCumulative = alphasCumulative
        knotTimes = (0..<count).map { Double($0 + 1) / Double(count) }
        knotLogAlphas = alphasCumulative.map { 0.5 * log($0) }
        ascendingLogAlphas = knotLogAlphas.reversed()
        timesOfAscendingLogAlphas = knotTimes.reversed()
    }

    /// The wrapper of the schedule with these β_n (ᾱ_n = Π_{j≤n} (1 − β_j)).
    public init(betas: [Double]) {
        var product = 1.0
        self.init(alphasCumulative: betas.map { product *= 1 - $0; return product })
    }

    /// DPPO's cosine schedule (`Diffusion.NoiseSchedule`, K = 20 in the Hopper configs).
    public init(_ schedule: NoiseSchedule) { self.init(alphasCumulative: schedule.alphasCumulative) }

    /// EDP's default `linear` schedule (§1.1): β = linspace(1e-4·1000/K, 0.02·1000/K, K); K = 1000 is DDPM's.
    public static func linear(steps: Int) -> NoiseScheduleVP {
        precondition(steps >= 2, "the linear schedule needs at least two steps")
        let scale = 1000 / Double(steps)
        let first = 1e-4 * scale, last = 0.02 * scale
        return NoiseScheduleVP(betas: (0..<steps).map { first + (last - first) * Double($0) / Double(steps - 1) })
    }

    /// log α(t).
    public func logAlpha(_ t: Double) -> Double { Self.interpolate(t, knotTimes, knotLogAlphas) }

    /// α(t) = √ᾱ(t), the signal scale of the forward marginal.
    public func alpha(_ t: Double) -> Double { exp(logAlpha(t)) }

    /// σ(t) = √(1 − α(t)²), the noise scale of the forward marginal.
    public func sigma(_ t: Double) -> Double { (-expm1(2 * logAlpha(t))).squareRoot() }

    /// λ(t) = log α(t) − log σ(t).
    public func lambda(_ t: Double) -> Double {
        let logAlpha = logAlpha(t)
        return logAlpha - 0.5 * log(-expm1(2 * logAlpha))
    }

    /// The t with λ(t) = λ: log α = −½·ln(1 + e^{−2λ}), then t interpolated against the knots' log α.
    public func time(lambda: Double) -> Double {
        let logAlpha = -0.5 * Self.logOnePlusExp(-2 * lambda)
        return Self.interpolate(logAlpha, ascendingLogAlphas, timesOfAscendingLogAlphas)
    }

    /// The ε-network's time input for continuous t: N·(t − 1/N) = N·t − 1, so t = 1 → N − 1 and t = 1/N → 0,
    /// the 0-based index the network was trained on (§3.7.2, §7.1).
    public func networkTime(_ t: Double) -> Double { Double(discreteSteps) * t - 1 }

    /// The discrete index whose ᾱ bounds EDP's noise clipping at time t: floor(N·t − 1), kept within 0…N−1.
    public func clippingIndex(_ t: Double) -> Int {
        min(max(Int(networkTime(t).rounded(.down)), 0), discreteSteps - 1)
    }

    /// ln(1 + eˣ) without overflow.
    static func logOnePlusExp(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }

    /// Piecewise-linear interpolation of (xs, ys), xs increasing, extended by the first and last segments' lines.
    static func interpolate(_ x: Double, _ xs: [Double], _ ys: [Double]) -> Double {
        var low = 0, high = xs.count - 1
        while high - low > 1 {
            let middle = (low + high) / 2
            if xs[middle] <= x { low = middle } else { high = middle }
        }
        return ys[low] + (ys[high] - ys[low]) * (x - xs[low]) / (xs[high] - xs[low])
    }
}
