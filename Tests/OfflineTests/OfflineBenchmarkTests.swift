import Diffusion
import Foundation
import Networks
import Offline
import Tensors
import XCTest

/// Gradient steps per second of each trainer at Hopper size in DPPO's parameterisation (Do 11, Da 3, Tp 4, K 20,
/// residual 512×3 ReLU actor, 256×3 Mish critics, batch 256). Runs when OFFLINE_BENCHMARK is set; build in release.
final class OfflineBenchmarkTests: XCTestCase {
    func testHopperSizedStepRates() throws {
        guard ProcessInfo.processInfo.environment["OFFLINE_BENCHMARK"] != nil else { throw XCTSkip("set OFFLINE_BENCHMARK=1 (release build) to measure") }
        let steps = Int(ProcessInfo.processInfo.environment["OFFLINE_BENCHMARK_STEPS"] ?? "20")!
        var random = Philox(seed: 1)
        let count = 4096
        let observations = Matrix.random(count, 11, &random), next = Matrix.random(count, 11, &random)
        let actions = Matrix(rows: count, columns: 12)
        random.fillUniform(actions.data, count: actions.count, low: -1, high: 1)
        let dataset = OfflineDataset(observations: observations, actions: actions, rewards: (0..<count).map { _ in random.normal() },
                                     nextObservations: next, discounts: [Float](repeating: 0.96, count: count))
        let batch = dataset.makeBatch(size: 256)
        func makePolicy() -> DiffusionPolicy {
            let policy = DiffusionPolicy(settings: DenoisingSettings(actionDim: 3), network: DiffusionMLPShape(actionDim: 3, horizonSteps: 4, observationDim: 11))
            policy.initialize(random: &random)
            return policy
        }
        func rate(_ name: String, _ step: () -> Void) {
            dataset.sample(into: batch, random: &random)
            step()
            let start = Date()
            for _ in 0..<steps { dataset.sample(into: batch, random: &random); step() }
            let perSecond = Double(steps) / Date().timeIntervalSince(start)
            print(String(format: "offline benchmark %@: %.2f steps/s (%.1f ms/step)", name, perSecond, 1000 / perSecond))
        }
        let ql = DiffusionQLTrainer(policy: makePolicy(), seed: 1)
        rate("diffusion-ql") { ql.trainStep(batch: batch) }
        var maxQ = DiffusionQLSettings()
        maxQ.maxQBackup = true
        let qlMax = DiffusionQLTrainer(policy: makePolicy(), settings: maxQ, seed: 1)
        rate("diffusion-ql max-Q") { qlMax.trainStep(batch: batch) }
        for variant in EDPVariant.allCases {
            let edp = EDPTrainer(policy: makePolicy(), settings: EDPSettings(variant: variant), seed: 1)
            rate("edp-\(variant) (DDPM targets)") { edp.trainStep(batch: batch) }
        }
    }
}
