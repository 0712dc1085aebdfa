import XCTest
import Foundation
@testable import Diffusion
import Networks
import Tensors

/// Golden vectors of docs/algorithms.md §9 (Fixtures/dppo-schedule-vectors.json).
final class ScheduleTests: XCTestCase {
    /// Safe unguarded: initialised once (a static let) and only read afterwards.
    nonisolated(unsafe) static let vectors: [String: Any] = {
        let url = Bundle.module.url(forResource: "dppo-schedule-vectors", withExtension: "json", subdirectory: "Fixtures")!
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()

    func array(_ path: String...) -> [Double] {
        var node: Any = Self.vectors
        for key in path { node = (node as! [String: Any])[key]! }
        return (node as! [Any]).map { ($0 as! NSNumber).doubleValue }
    }

    func assertClose(_ actual: [Double], _ expected: [Double], relative: Double = 1e-6, absolute: Double = 1e-12, _ name: String) {
        XCTAssertEqual(actual.count, expected.count, name)
        for (index, (a, e)) in zip(actual, expected).enumerated() where abs(a - e) > absolute + relative * abs(e) {
            XCTFail("\(name)[\(index)]: \(a) vs \(e)")
            return
        }
    }

    func testK20ScheduleMatchesGoldenVectors() {
        let schedule = NoiseSchedule(steps: 20)
        // β goes through float32 as in the reference, so the float64 vectors agree to ≤ 2e−5 relative,
        // largest at t = K−1 where β = 0.999 (docs/algorithms.md §9: rtol 1e−4 for float32 checks).
        assertClose(schedule.betas, array("ddpm_K20", "betas"), relative: 2e-7, "betas")
        assertClose(schedule.alphasCumulative, array("ddpm_K20", "alphas_cumprod"), relative: 1e-4, "alphas_cumprod")
        assertClose(schedule.sqrtRecipMinusOneAlphasCumulative, array("ddpm_K20", "sqrt_recipm1_alphas_cumprod"), relative: 1e-4, "sqrt_recipm1")
        assertClose(schedule.posteriorMeanCoefficient1, array("ddpm_K20", "posterior_mean_coef1"), relative: 1e-4, "coef1")
        assertClose(schedule.posteriorMeanCoefficient2, array("ddpm_K20", "posterior_mean_coef2"), relative: 1e-4, "coef2")
        assertClose((0..<20).map { schedule.posteriorStd($0) }, array("K20_std_by_t", "posterior_std"), relative: 1e-4, "posterior std")
        XCTAssertEqual(schedule.betas[19], 0.999, accuracy: 1e-7)
        XCTAssertEqual(schedule.posteriorLogVarianceClipped[0], log(1e-20), accuracy: 1e-9)
    }

    func testK100Summary() {
        let schedule = NoiseSchedule(steps: 100)
        assertClose(Array(schedule.betas.prefix(5)), array("ddpm_K100_summary", "betas", "first5"), relative: 2e-7, "K100 betas")
        XCTAssertEqual(schedule.alphasCumulative[99], 2.42857228e-7, accuracy: 2.42857228e-7 * 1e-4)
    }

    /// docs/algorithms.md §9 "One reverse step": x̂₀, μ and the clamped, averaged log-probability.
    func testReverseStepExamples() {
        let settings = DenoisingSettings(denoisingSteps: 20, fineTunedSteps: 20, horizonSteps: 1, actSteps: 1, actionDim: 2)
        let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 2, horizonSteps: 1, observationDim: 1, timeDim: 4, mlpDims: [4, 4, 4]))
        // Zero network whose output bias is the given ε̂: the network then predicts exactly ε̂.
        let examples: [(t: Int, x: [Float], epsilon: [Float], next: [Float], mean: [Double], logProbability: Double)] = [
            (10, [0.5, -1.2], [0.3, -0.8], [0.2, -0.4], [0.477428112458, -1.127922380334], -1.036252023452),
            (0, [0.9, -0.95], [0.05, 0.1], [0.95, -1.0], [0.899130356945, -0.962795599768], 1.284349360258),
            (19, [1.5, -0.3], [1.2, -0.1], [0.1, 0], [0.124913363148, -0.087195750017], -0.917472809345),
        ]
        for example in examples {
            let parameters = policy.fineTuned.parameters
            parameters.valueBuffer.update(repeating: 0)
            let bias = parameters.entry(named: "mlp_mean.output.bias")!
            parameters.values[bias.offset] = example.epsilon[0]
            parameters.values[bias.offset + 1] = example.epsilon[1]
            let inputs = Matrix(rows: 1, columns: 2, values: example.x), outputs = Matrix(rows: 1, columns: 2, values: example.next)
            var result: Float = 0
            policy.transitionLogProbabilities(inputs: inputs, outputs: outputs, timesteps: [example.t], observations: Matrix(rows: 1, columns: 1), into: &result)
            XCTAssertEqual(Double(policy.likelihoodMeans[0]), example.mean[0], accuracy: 1e-5, "t=\(example.t)")
            XCTAssertEqual(Double(policy.likelihoodMeans[1]), example.mean[1], accuracy: 1e-5, "t=\(example.t)")
            XCTAssertEqual(Double(result), example.logProbability, accuracy: 2e-5, "t=\(example.t)")
        }
    }

    /// Chain layout (docs/algorithms.md §4.3): K′+1 entries; entry 0 is the input of step K′−1, entry K′ the action;
    /// with K′ = K the initial noise comes first. Deterministic sampling ends at the clamped x̂₀.
    func testChainRecordingLayout() {
        for (k, kPrime) in [(6, 3), (5, 5)] {
            let settings = DenoisingSettings(denoisingSteps: k, fineTunedSteps: kPrime, horizonSteps: 2, actSteps: 2, actionDim: 1)
            let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 1, horizonSteps: 2, observationDim: 3, timeDim: 4, mlpDims: [8, 8, 8]))
            var random = Philox(seed: 11)
            policy.initialize(random: &random)
            let observations = Matrix(rows: 4, columns: 3)
            let chains = Matrix(rows: 0, columns: settings.chainWidth)
            var first = Philox(seed: 3)
            policy.sampleChains(observations: observations, mode: .exploration, random: &first, chains: chains)
            XCTAssertEqual(chains.rows, 4)
            // Replaying the recorded transitions reproduces each next entry up to the sampled noise: the
            // log-probability of every recorded transition is finite and above the clamp floor on average.
            var inputs: [Float] = [], outputs: [Float] = [], timesteps: [Int] = [], observationRows: [Float] = []
            for row in 0..<4 { for j in 0..<kPrime {
                inputs += (0..<2).map { chains[row, j * 2 + $0] }
                outputs += (0..<2).map { chains[row, (j + 1) * 2 + $0] }
                timesteps.append(kPrime - 1 - j)
                observationRows += [0, 0, 0]
            } }
            var logProbabilities = [Float](repeating: 0, count: 4 * kPrime)
            policy.transitionLogProbabilities(inputs: Matrix(rows: 4 * kPrime, columns: 2, values: inputs), outputs: Matrix(rows: 4 * kPrime, columns: 2, values: outputs),
                                              timesteps: timesteps, observations: Matrix(rows: 4 * kPrime, columns: 3, values: observationRows), into: &logProbabilities)
            // Noise is clamped to ±3σ, so every recorded transition lies within 3σ̃ of its mean: ℓ ≥ −4.5 − ln σ̃ − 0.92.
            for value in logProbabilities { XCTAssertGreaterThan(value, -5.5 - 0.92 + 0.0) }
            XCTAssertGreaterThan(logProbabilities.reduce(0, +) / Float(logProbabilities.count), -2.5)
        }
    }

    func testDeterministicSamplingIsRepeatableAndInRange() {
        let settings = DenoisingSettings(denoisingSteps: 8, fineTunedSteps: 4, horizonSteps: 2, actSteps: 2, actionDim: 2)
        let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 2, horizonSteps: 2, observationDim: 3, timeDim: 4, mlpDims: [8, 8, 8]))
        var random = Philox(seed: 1)
        policy.initialize(random: &random)
        let observations = Matrix(rows: 3, columns: 3, values: (0..<9).map { Float($0) / 9 })
        let a = Matrix(rows: 0, columns: settings.chainWidth), b = Matrix(rows: 0, columns: settings.chainWidth)
        var r1 = Philox(seed: 5), r2 = Philox(seed: 5)
        policy.sampleChains(observations: observations, mode: .deterministic, random: &r1, chains: a)
        policy.sampleChains(observations: observations, mode: .deterministic, random: &r2, chains: b)
        XCTAssertEqual(a.toArray(), b.toArray())
        let action = settings.fineTunedSteps * settings.chunkWidth
        for row in 0..<3 { for column in 0..<settings.chunkWidth { XCTAssertLessThanOrEqual(abs(a[row, action + column]), 1) } }
    }

    /// DDIM golden vectors (docs/algorithms.md §9, K 100, S 5): network times τ and σ(η = 1) per step index t = 0…4,
    /// the 0.1 sampling floor, and deterministic sampling with std 0.
    func testDDIMStepTableMatchesGoldenVectors() {
        let settings = DenoisingSettings(denoisingSteps: 100, fineTunedSteps: 5, horizonSteps: 1, actSteps: 1, actionDim: 2,
                                         minSamplingStd: 0.1, minLogProbStd: 1e-12, useDDIM: true, ddimSteps: 5, eta: 1)
        let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 2, horizonSteps: 1, observationDim: 1, timeDim: 4, mlpDims: [4, 4, 4]))
        let sigma = [1e-10, 0.025061614462, 0.295108594330, 0.513967448412, 0.737754795427]
        for t in 0..<5 {
            XCTAssertEqual(policy.networkTime(step: t), Float(20 * t))
            let std = policy.standardDeviations(step: t)
            XCTAssertEqual(Double(std.likelihood), sigma[t], accuracy: 1e-4 * max(sigma[t], 1e-6))
            XCTAssertEqual(Double(std.sampling), max(sigma[t], 0.1), accuracy: 1e-6)
            XCTAssertEqual(std.deterministic, 0)
        }
    }

    /// With explicit noise, every recorded transition is exactly μ(chain[j]) + std·clamp(z) of the step that made it,
    /// which pins the chain layout, the noise order and the step ↔ index mapping for DDPM and DDIM alike.
    func testRecordedChainsReplayWithTheirNoise() {
        let cases = [DenoisingSettings(denoisingSteps: 6, fineTunedSteps: 3, horizonSteps: 2, actSteps: 1, actionDim: 2),
                     DenoisingSettings(denoisingSteps: 5, fineTunedSteps: 5, horizonSteps: 2, actSteps: 1, actionDim: 2),
                     DenoisingSettings(denoisingSteps: 100, fineTunedSteps: 3, horizonSteps: 2, actSteps: 1, actionDim: 2, useDDIM: true, ddimSteps: 5),
                     DenoisingSettings(denoisingSteps: 100, fineTunedSteps: 5, horizonSteps: 2, actSteps: 1, actionDim: 2, useDDIM: true, ddimSteps: 5)]
        for settings in cases {
            let width = settings.chunkWidth, batch = 3, kPrime = settings.fineTunedSteps
            let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 2, horizonSteps: 2, observationDim: 3, timeDim: 4, mlpDims: [8, 8, 8], activation: .mish))
            var random = Philox(seed: 17)
            policy.initialize(random: &random)
            let observations = Matrix(rows: batch, columns: 3)
            random.fillNormal(observations.data, count: observations.count)
            var drawn: [[Float]] = []
            let chains = Matrix(rows: 0, columns: settings.chainWidth)
            policy.sampleChains(observations: observations, mode: .exploration, chains: chains) { destination, count in
                random.fillNormal(destination, count: count)
                drawn.append(Array(UnsafeBufferPointer(start: destination, count: count)))
            }
            XCTAssertEqual(drawn.count, settings.samplingSteps + 1, "initial noise plus one draw per step")
            if kPrime == settings.samplingSteps {
                XCTAssertEqual((0..<width).map { chains[1, $0] }, Array(drawn[0][width..<(2 * width)]), "K′ = S records the initial noise first")
            }
            for j in 0..<kPrime {
                let t = kPrime - 1 - j
                let inputs = Matrix(rows: batch, columns: width), outputs = Matrix(rows: batch, columns: width)
                for row in 0..<batch {
                    inputs.row(row).update(from: chains.row(row) + j * width, count: width)
                    outputs.row(row).update(from: chains.row(row) + (j + 1) * width, count: width)
                }
                var result = [Float](repeating: 0, count: batch)
                policy.transitionLogProbabilities(inputs: inputs, outputs: outputs, timesteps: [Int](repeating: t, count: batch), observations: observations, into: &result)
                let noise = drawn[settings.samplingSteps - t], std = policy.standardDeviations(step: t).sampling
                for flat in 0..<(batch * width) {
                    let expected = policy.likelihoodMeans[flat] + std * min(max(noise[flat], -3), 3)
                    XCTAssertEqual(outputs.data[flat], expected, accuracy: 1e-5, "step \(t) element \(flat) (DDIM \(settings.useDDIM))")
                }
            }
        }
    }
}
