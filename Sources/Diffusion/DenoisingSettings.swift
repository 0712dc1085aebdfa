import Foundation
import Networks
import Tensors

/// Denoising settings of a diffusion policy (docs/algorithms.md §1, §4.2–4.4); keys follow the reference's config names.
public struct DenoisingSettings: Sendable, Equatable, Codable {
    /// K: denoising steps in pre-training (and the DDPM schedule DDIM subsamples).
    public var denoisingSteps: Int
    /// K′: the last K′ sampling steps use (and train) the fine-tuned network; the earlier ones use the frozen base.
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
    /// Sample with DDIM over `ddimSteps` "leading" timesteps instead of all K DDPM steps (docs/algorithms.md §1.5).
    public var useDDIM: Bool
    /// S: DDIM sampling steps (ignored for DDPM).
    public var ddimSteps: Int
    /// Fixed DDIM η of exploration and likelihood (the reference's EtaFixed); deterministic sampling uses η = 0.
    public var eta: Double

    public init(denoisingSteps: Int = 20, fineTunedSteps: Int = 10, horizonSteps: Int = 4, actSteps: Int = 4, actionDim: Int,
                minSamplingStd: Double = 0.1, minLogProbStd: Double = 0.1, randnClip: Double = 3, denoisedClip: Double = 1,
                useDDIM: Bool = false, ddimSteps: Int = 0, eta: Double = 1) {
        self.denoisingSteps = denoisingSteps
        self.fineTunedSteps = fineTunedSteps
        self.horizonSteps = horizonSteps
        self.actSteps = actSteps
        self.actionDim = actionDim
        self.minSamplingStd = minSamplingStd
        self.minLogProbStd = minLogProbStd
        self.randnClip = randnClip
        self.denoisedClip = denoisedClip
        self.useDDIM = useDDIM
        self.ddimSteps = ddimSteps
        self.eta = eta
    }

    // Checkpoints written before DDIM existed have no DDIM keys: they are DDPM.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(denoisingSteps: try container.decode(Int.self, forKey: .denoisingSteps),
                  fineTunedSteps: try container.decode(Int.self, forKey: .fineTunedSteps),
                  horizonSteps: try container.decode(Int.self, forKey: .horizonSteps),
                  actSteps: try container.decode(Int.self, forKey: .actSteps),
                  actionDim: try container.decode(Int.self, forKey: .actionDim),
                  minSamplingStd: try container.decode(Double.self, forKey: .minSamplingStd),
                  minLogProbStd: try container.decode(Double.self, forKey: .minLogProbStd),
                  randnClip: try container.decode(Double.self, forKey: .randnClip),
                  denoisedClip: try container.decode(Double.self, forKey: .denoisedClip),
                  useDDIM: try container.decodeIfPresent(Bool.self, forKey: .useDDIM) ?? false,
                  ddimSteps: try container.decodeIfPresent(Int.self, forKey: .ddimSteps) ?? 0,
                  eta: try container.decodeIfPresent(Double.self, forKey: .eta) ?? 1)
    }

    /// Flattened chunk width Tp·Da.
    public var chunkWidth: Int { horizonSteps * actionDim }
    /// Values per recorded chain: (K′+1)·Tp·Da.
    public var chainWidth: Int { (fineTunedSteps + 1) * chunkWidth }
    /// Network passes per sampled chain: K for DDPM, S for DDIM.
    public var samplingSteps: Int { useDDIM ? ddimSteps : denoisingSteps }

    public func validate() throws {
        func require(_ condition: Bool, _ message: String) throws {
            if !condition { throw DiffusionError.invalidSettings(message) }
        }
        try require(denoisingSteps >= 1, "denoising_steps must be ≥ 1 (got \(denoisingSteps))")
        if useDDIM {
            try require(ddimSteps >= 1 && ddimSteps <= denoisingSteps, "ddim_steps must be in 1…denoising_steps (got \(ddimSteps) with \(denoisingSteps))")
            try require(eta >= 0, "eta must be ≥ 0 (got \(eta)); fine-tuning needs η > 0 for a stochastic chain")
        }
        try require(fineTunedSteps >= 1 && fineTunedSteps <= samplingSteps,
                    "ft_denoising_steps must be in 1…\(useDDIM ? "ddim_steps" : "denoising_steps") = \(samplingSteps) (got \(fineTunedSteps))")
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

/// How a chain is sampled (docs/algorithms.md §1.4–1.5).
public enum SamplingMode: Sendable {
    /// Rollouts for fine-tuning: std = max(σ_t, σ_min_exp) at every step (DDIM: σ of the fixed η).
    case exploration
    /// Evaluation. DDPM: std = max(σ_t, 1e−3) for t > 0 and 0 at t = 0. DDIM: η = 0, std 0.
    case deterministic
}

/// Per-step coefficients of the reverse process, indexed by the step index t ∈ [0, S) (t = S−1 runs first).
///
/// DDPM and DDIM share one form:  x̂₀ = clamp(s1·x − s2·ε̂, ±c),  μ = c1·x̂₀ + c2·x.
/// For DDPM (docs/algorithms.md §1.2) s1 = √(1/ᾱ_t), s2 = √(1/ᾱ_t − 1) and c1, c2 are the posterior-mean coefficients.
/// For DDIM (§1.5) with a = ᾱ_τ, a′ = ᾱ_τ′ and d = √max(1 − a′ − σ², 0), the reference's
/// μ = √a′·x̂₀ + d·ε̂′ with ε̂′ = (x − √a·x̂₀)/√(1 − a) expands to c1 = √a′ − d·√a/√(1 − a), c2 = d/√(1 − a).
struct ReverseStepTable {
    var networkTime: [Float] = []
    var s1: [Float] = [], s2: [Float] = [], c1: [Float] = [], c2: [Float] = []
    var samplingStd: [Float] = [], likelihoodStd: [Float] = []
    /// Deterministic sampling may use other mean coefficients (DDIM: η = 0).
    var deterministicC1: [Float] = [], deterministicC2: [Float] = [], deterministicStd: [Float] = []

    init(settings: DenoisingSettings, schedule: NoiseSchedule) {
        if settings.useDDIM {
            let ratio = settings.denoisingSteps / settings.ddimSteps
            for t in 0..<settings.ddimSteps {
                let a = schedule.alphasCumulative[t * ratio]
                let previous = t == 0 ? 1 : schedule.alphasCumulative[(t - 1) * ratio]
                func coefficients(eta: Double) -> (c1: Double, c2: Double, sigma: Double) {
                    let sigma = max(eta * ((1 - previous) / (1 - a) * (1 - a / previous)).squareRoot(), 1e-10)
                    let direction = max(1 - previous - sigma * sigma, 0).squareRoot()
                    return (previous.squareRoot() - direction * a.squareRoot() / (1 - a).squareRoot(), direction / (1 - a).squareRoot(), sigma)
                }
                let stochastic = coefficients(eta: settings.eta), deterministic = coefficients(eta: 0)
                networkTime.append(Float(t * ratio))
                s1.append(Float(1 / a.squareRoot()))
                s2.append(Float(((1 - a) / a).squareRoot()))
                c1.append(Float(stochastic.c1)); c2.append(Float(stochastic.c2))
                samplingStd.append(Float(max(stochastic.sigma, settings.minSamplingStd)))
                likelihoodStd.append(Float(max(stochastic.sigma, settings.minLogProbStd)))
                deterministicC1.append(Float(deterministic.c1)); deterministicC2.append(Float(deterministic.c2))
                deterministicStd.append(0)
            }
        } else {
            for t in 0..<settings.denoisingSteps {
                let sigma = schedule.posteriorStd(t)
                networkTime.append(Float(t))
                s1.append(Float(schedule.sqrtRecipAlphasCumulative[t]))
                s2.append(Float(schedule.sqrtRecipMinusOneAlphasCumulative[t]))
                c1.append(Float(schedule.posteriorMeanCoefficient1[t])); c2.append(Float(schedule.posteriorMeanCoefficient2[t]))
                samplingStd.append(Float(max(sigma, settings.minSamplingStd)))
                likelihoodStd.append(Float(max(sigma, settings.minLogProbStd)))
                deterministicStd.append(t == 0 ? 0 : Float(max(sigma, 1e-3)))
            }
            deterministicC1 = c1
            deterministicC2 = c2
        }
    }
}
