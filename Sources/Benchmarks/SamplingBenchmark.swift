import Diffusion
import Foundation
import Networks
import Offline
import Tensors

/// Action-chunk sampling speed of DDPM ancestral sampling (K network passes) against DPM-Solver
/// (a fixed number of passes, 15 for EDP) on one ε-network, single-threaded, per K and batch size.
public struct SamplingBenchmarkReport: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        /// K, the discrete steps the network is trained on (DPPO's cosine schedule).
        public var denoising_steps: Int
        public var batch: Int
        /// DDPM: K network passes per sample (`DiffusionPolicy.sampleChains`, exploration noise).
        public var ddpm_samples_per_second: Double
        /// DPM-Solver: `dpm_model_calls` passes per sample (EDP's settings, §3.7).
        public var dpm_solver_samples_per_second: Double
        /// dpm_solver_samples_per_second / ddpm_samples_per_second.
        public var speedup: Double
    }
    public var observation_dim: Int
    public var chunk_width: Int
    public var mlp_dims: [Int]
    public var activation: String
    public var threads: Int
    public var dpm_model_calls: Int
    public var entries: [Entry]
}

/// Samples per second of DDPM with K steps and of DPM-Solver with EDP's 15 model calls on the same
/// Hopper-size ε-network (obs 11, Tp 4 × Da 3, DiffusionMLP 256×3 Mish as in EDP §1.4), for each K and batch.
/// Each figure runs for at least `seconds` after one warm-up call; build with `-c release` for figures worth quoting.
public func benchmarkSampling(denoisingSteps: [Int] = [20, 100, 1000], batches: [Int] = [1, 50, 256], seconds: Double = 1,
                              log: (String) -> Void = { _ in }) -> SamplingBenchmarkReport {
    BLAS.setThreads(1)
    let network = DiffusionMLPShape(actionDim: 3, horizonSteps: 4, observationDim: 11, timeDim: 16, mlpDims: [256, 256, 256], activation: .mish)
    let solverSettings = DPMSolverSettings()
    var random = Philox(seed: 5)
    var entries: [SamplingBenchmarkReport.Entry] = []
    for steps in denoisingSteps {
        let settings = DenoisingSettings(denoisingSteps: steps, fineTunedSteps: 1, horizonSteps: 4, actSteps: 4, actionDim: 3)
        let policy = DiffusionPolicy(settings: settings, network: network)
        policy.initialize(random: &random)
        let solver = DPMSolver(schedule: NoiseScheduleVP(policy.schedule), settings: solverSettings, width: network.chunkWidth)
        for batch in batches {
            let observations = Matrix(rows: batch, columns: network.observationDim)
            random.fillUniform(observations.data, count: observations.count, low: -1, high: 1)
            let chains = Matrix(rows: batch, columns: settings.chainWidth)
            let chunks = Matrix(rows: batch, columns: network.chunkWidth)
            let ddpm = Timing.rate(seconds: seconds, minimumCalls: 1) {
                policy.sampleChains(observations: observations, mode: .exploration, random: &random, chains: chains)
            }
            let dpm = Timing.rate(seconds: seconds, minimumCalls: 1) {
                solver.sample(network: policy.base, observations: observations, random: &random, into: chunks)
            }
            let entry = SamplingBenchmarkReport.Entry(denoising_steps: steps, batch: batch, ddpm_samples_per_second: ddpm * Double(batch),
                                                      dpm_solver_samples_per_second: dpm * Double(batch), speedup: dpm / ddpm)
            log(String(format: "sampling  K %4d  batch %3d:  DDPM %9.0f samples/s   DPM-Solver (%d calls) %9.0f samples/s   ×%.1f",
                       steps, batch, entry.ddpm_samples_per_second, solverSettings.modelCalls, entry.dpm_solver_samples_per_second, entry.speedup))
            entries.append(entry)
        }
    }
    return SamplingBenchmarkReport(observation_dim: network.observationDim, chunk_width: network.chunkWidth, mlp_dims: network.mlpDims,
                                   activation: network.activation.rawValue, threads: 1, dpm_model_calls: solverSettings.modelCalls, entries: entries)
}
