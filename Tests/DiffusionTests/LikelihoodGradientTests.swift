import XCTest
import Foundation
@testable import Diffusion
import Networks
import Tensors

/// The transition log-likelihood's gradient (through x̂₀ clamp, posterior mean, Gaussian density,
/// [−5, 2] clamp and the mean over Ta rows) against central differences of a Float64 re-implementation.
final class LikelihoodGradientTests: XCTestCase {
    func testTransitionLogProbabilityGradient() {
        checkGradient(settings: DenoisingSettings(denoisingSteps: 10, fineTunedSteps: 5, horizonSteps: 3, actSteps: 2, actionDim: 2))
    }

    /// DDIM (K 100, S 5, η 1): the reference's x̂₀ → clamp → ε̂′ recomputation → μ = √a′·x̂₀ + d·ε̂′, written out in Float64.
    func testDDIMTransitionLogProbabilityGradient() {
        checkGradient(settings: DenoisingSettings(denoisingSteps: 100, fineTunedSteps: 5, horizonSteps: 3, actSteps: 2, actionDim: 2,
                                                  useDDIM: true, ddimSteps: 5, eta: 1))
    }

    func checkGradient(settings: DenoisingSettings) {
        let shape = DiffusionMLPShape(actionDim: 2, horizonSteps: 3, observationDim: 3, timeDim: 8, mlpDims: [16, 16, 16], activation: .mish)
        let policy = DiffusionPolicy(settings: settings, network: shape)
        var random = Philox(seed: 21)
        policy.initialize(random: &random)
        let count = 12, width = 6
        let inputs = Matrix(rows: count, columns: width), outputs = Matrix(rows: count, columns: width), observations = Matrix(rows: count, columns: 3)
        random.fillNormal(inputs.data, count: inputs.count)
        random.fillNormal(observations.data, count: observations.count)
        let timesteps = (0..<count).map { $0 % 5 }
        // Targets near the mean so most elements sit inside the [−5, 2] clamp, a few far outside it.
        var result = [Float](repeating: 0, count: count)
        policy.transitionLogProbabilities(inputs: inputs, outputs: inputs, timesteps: timesteps, observations: observations, into: &result)
        for row in 0..<count { for element in 0..<width {
            let flat = row * width + element
            outputs[row, element] = policy.likelihoodMeans[flat] + (row == 3 ? 4 : 0.1) * random.normal()
        } }
        let weights = (0..<count).map { _ in random.normal() }
        policy.fineTuned.parameters.zeroGradients()
        policy.transitionLogProbabilities(inputs: inputs, outputs: outputs, timesteps: timesteps, observations: observations, into: &result)
        weights.withUnsafeBufferPointer { policy.backwardTransitionLogProbabilities(gradient: $0.baseAddress!) }

        let schedule = policy.schedule
        let ratio = settings.useDDIM ? settings.denoisingSteps / settings.ddimSteps : 1
        // The reference's reverse step in Float64: (mean, nominal σ) for step t given x and ε̂.
        func referenceStep(_ t: Int, _ x: Double, _ epsilon: Double) -> (mean: Double, sigma: Double) {
            guard settings.useDDIM else {
                let denoised = min(max(schedule.sqrtRecipAlphasCumulative[t] * x - schedule.sqrtRecipMinusOneAlphasCumulative[t] * epsilon, -1), 1)
                return (schedule.posteriorMeanCoefficient1[t] * denoised + schedule.posteriorMeanCoefficient2[t] * x, schedule.posteriorStd(t))
            }
            let a = schedule.alphasCumulative[t * ratio], previous = t == 0 ? 1 : schedule.alphasCumulative[(t - 1) * ratio]
            let denoised = min(max((x - (1 - a).squareRoot() * epsilon) / a.squareRoot(), -1), 1)
            let recomputed = (x - a.squareRoot() * denoised) / (1 - a).squareRoot()
            let sigma = max(settings.eta * ((1 - previous) / (1 - a) * (1 - a / previous)).squareRoot(), 1e-10)
            return (previous.squareRoot() * denoised + max(1 - previous - sigma * sigma, 0).squareRoot() * recomputed, sigma)
        }
        func referenceLoss() -> Double {
            let epsilon = ReferenceForward.diffusionMLP(policy.fineTuned, chunk: inputs, timesteps: timesteps.map { Double($0 * ratio) }, observation: observations)
            var total = 0.0
            for row in 0..<count {
                let t = timesteps[row]
                var sum = 0.0
                for element in 0..<(settings.actSteps * settings.actionDim) {
                    let step = referenceStep(t, Double(inputs[row, element]), epsilon[row][element])
                    let std = max(step.sigma, settings.minLogProbStd)
                    let d = Double(outputs[row, element]) - step.mean
                    let logProbability = -d * d / (2 * std * std) - log(std) - 0.5 * log(2 * Double.pi)
                    sum += min(max(logProbability, -5), 2)
                }
                total += Double(weights[row]) * sum / Double(settings.actSteps * settings.actionDim)
            }
            return total
        }
        // Forward agrees with the reference.
        var forwardTotal = 0.0
        for row in 0..<count { forwardTotal += Double(weights[row]) * Double(result[row]) }
        XCTAssertEqual(forwardTotal, referenceLoss(), accuracy: 1e-4 * max(1, abs(forwardTotal)))

        let parameters = policy.fineTuned.parameters
        var difference = 0.0, norm = 0.0
        var picks = Philox(seed: 8)
        for _ in 0..<300 {
            let index = picks.integer(below: parameters.count)
            let original = parameters.values[index]
            let delta = Float(1e-6 * max(1, Double(abs(original))))
            parameters.values[index] = original + delta
            let plus = referenceLoss()
            parameters.values[index] = original - delta
            let minus = referenceLoss()
            parameters.values[index] = original
            let numeric = (plus - minus) / (Double(original + delta) - Double(original - delta))
            let analytic = Double(parameters.gradients[index])
            difference += (numeric - analytic) * (numeric - analytic)
            norm += max(numeric * numeric, analytic * analytic)
        }
        XCTAssertGreaterThan(norm, 0)
        XCTAssertLessThan(difference.squareRoot() / norm.squareRoot(), 1e-3)
    }
}

/// Float64 forward pass of the DiffusionMLP (same equations as NetworksTests' reference).
enum ReferenceForward {
    static func linear(_ x: [[Double]], _ p: Parameters, _ name: String) -> [[Double]] {
        let w = p.entry(named: name + ".weight")!, b = p.entry(named: name + ".bias")!
        let outputs = w.shape[0], inputs = w.shape[1]
        return x.map { row in (0..<outputs).map { o in
            var sum = Double(p.values[b.offset + o])
            for i in 0..<inputs { sum += Double(p.values[w.offset + o * inputs + i]) * row[i] }
            return sum
        } }
    }
    static func act(_ x: [[Double]], _ a: Activation) -> [[Double]] {
        x.map { $0.map { v in a == .relu ? max(v, 0) : v * tanh(v > 20 ? v : log1p(exp(v))) } }
    }
    static func diffusionMLP(_ network: DiffusionMLP, chunk: Matrix, timesteps: [Double], observation: Matrix) -> [[Double]] {
        let p = network.parameters, d = network.shape.timeDim, half = d / 2
        let frequencies = (0..<half).map { exp(-Double($0) * log(10_000.0) / Double(half - 1)) }
        let features = timesteps.map { t in frequencies.map { sin(t * $0) } + frequencies.map { cos(t * $0) } }
        let embedding = linear(act(linear(features, p, "time_embedding.0"), .mish), p, "time_embedding.1")
        let rows = (0..<chunk.rows).map { r in (0..<chunk.columns).map { Double(chunk[r, $0]) } + embedding[r] + (0..<observation.columns).map { Double(observation[r, $0]) } }
        var h = linear(rows, p, "mlp_mean.input")
        for block in 0..<((network.shape.mlpDims.count - 1) / 2) {
            let branch = linear(act(linear(act(h, network.shape.activation), p, "mlp_mean.block\(block).a"), network.shape.activation), p, "mlp_mean.block\(block).b")
            h = zip(h, branch).map { zip($0, $1).map(+) }
        }
        return linear(h, p, "mlp_mean.output")
    }
}
