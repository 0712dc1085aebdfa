import XCTest
import Foundation
@testable import Diffusion
import Networks
import ReferenceNetworks
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
            let epsilon = Reference.diffusionMLP(policy.fineTuned, chunk: inputs.rowsAsDoubles, timesteps: timesteps.map { Double($0 * ratio) }, observation: observations.rowsAsDoubles)
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
