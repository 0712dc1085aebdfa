import Diffusion
import Foundation
import Networks
import Offline
import Tensors

/// Gradient steps per second of the offline trainers, the four variants of the EDP paper's speed table (spec §4.1):
/// Diffusion-QL (backpropagation through the K-step chain, K-step DDPM targets), EDP without action approximation
/// (the same actor step, DPM-Solver targets), EDP without DPM-Solver (action approximation, DDPM targets) and EDP
/// (both). Hopper size in DPPO's parameterisation: observation 11, chunk 4 × 3, residual MLP actor, 256×3 Mish twin
/// critics, batch 256, one BLAS thread. Release builds only.
public struct TrainingBenchmarkReport: Codable, Sendable {
    public struct Entry: Codable, Sendable {
        public var variant: String
        public var denoising_steps: Int
        public var steps_per_second: Double
        /// Relative to Diffusion-QL at the same K.
        public var speedup: Double
    }
    public var mlp_dims: [Int]
    public var batch: Int
    public var dpm_model_calls: Int
    public var entries: [Entry]
}

public func benchmarkOfflineTraining(denoisingSteps: [Int] = [20, 100], mlpWidth: Int = 256, batch: Int = 256, seconds: Double = 3,
                                     log: (String) -> Void = { _ in }) -> TrainingBenchmarkReport {
    BLAS.setThreads(1)
    var random = Philox(seed: 21)
    let count = 4096
    let observations = Matrix(rows: count, columns: 11), next = Matrix(rows: count, columns: 11), actions = Matrix(rows: count, columns: 12)
    random.fillUniform(observations.data, count: observations.count, low: -1, high: 1)
    random.fillUniform(next.data, count: next.count, low: -1, high: 1)
    random.fillUniform(actions.data, count: actions.count, low: -1, high: 1)
    let dataset = OfflineDataset(observations: observations, actions: actions, rewards: (0..<count).map { _ in random.normal() },
                                 nextObservations: next, discounts: [Float](repeating: 0.96, count: count))
    let sample = dataset.makeBatch(size: batch)
    let calls = 15
    var entries: [TrainingBenchmarkReport.Entry] = []
    for steps in denoisingSteps {
        func makePolicy() -> DiffusionPolicy {
            let settings = DenoisingSettings(denoisingSteps: steps, fineTunedSteps: min(10, steps), horizonSteps: 4, actSteps: 4, actionDim: 3)
            let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 3, horizonSteps: 4, observationDim: 11,
                                                                                        mlpDims: [mlpWidth, mlpWidth, mlpWidth]))
            policy.initialize(random: &random)
            return policy
        }
        func dpm() -> ChunkSampler { DPMSolverChunkSampler(settings: DPMSolverSettings(modelCalls: calls, logSNRSpacing: true)) }
        let variants: [(String, (OfflineBatch) -> Void)] = [
            ("Diffusion-QL", { [trainer = DiffusionQLTrainer(policy: makePolicy(), seed: 1)] in trainer.trainStep(batch: $0) }),
            ("EDP w/o AA (chain backprop, DPM-Solver targets)", { [trainer = DiffusionQLTrainer(policy: makePolicy(), sampler: dpm(), seed: 1)] in trainer.trainStep(batch: $0) }),
            ("EDP w/o DPM (AA, DDPM targets)", { [trainer = EDPTrainer(policy: makePolicy(), seed: 1)] in trainer.trainStep(batch: $0) }),
            ("EDP (AA + DPM-Solver)", { [trainer = EDPTrainer(policy: makePolicy(), sampler: dpm(), seed: 1)] in trainer.trainStep(batch: $0) }),
        ]
        var baseline = 0.0
        for (name, step) in variants {
            let rate = Timing.rate(seconds: seconds, minimumCalls: 2) {
                dataset.sample(into: sample, random: &random)
                step(sample)
            }
            if baseline == 0 { baseline = rate }
            entries.append(.init(variant: name, denoising_steps: steps, steps_per_second: rate, speedup: rate / baseline))
            log(String(format: "offline training K %4d  %@ %7.2f steps/s  (%.1f× Diffusion-QL)", steps,
                       name.padding(toLength: 48, withPad: " ", startingAt: 0), rate, rate / baseline))
        }
    }
    return TrainingBenchmarkReport(mlp_dims: [mlpWidth, mlpWidth, mlpWidth], batch: batch, dpm_model_calls: calls, entries: entries)
}
