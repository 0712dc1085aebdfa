import XCTest
import Foundation
@testable import Algorithms
import Networks
import Tensors

/// The Gaussian baseline: its likelihood gradient (tanh mean, learned log-variance inside its clamp, mean over the
/// chunk then the [−5, 2] clamp) against central differences, and its sampling bounds.
final class GaussianPolicyTests: XCTestCase {
    func makePolicy() -> GaussianPolicy {
        let shape = GaussianMLPShape(actionDim: 2, horizonSteps: 3, observationDim: 4, mlpDims: [16, 16, 16], activation: .mish,
                                     fixedStd: 0.1, learnFixedStd: true, stdMin: 0.01, stdMax: 0.2)
        let policy = GaussianPolicy(shape: shape)
        var random = Philox(seed: 5)
        policy.initialize(random: &random)
        // Different stds per dimension, both inside the clamp, so both log-variance gradients are exercised.
        let logVariance = policy.network.parameters.entry(named: "logvar")!.offset
        policy.network.parameters.values[logVariance] = Float(log(0.08 * 0.08))
        policy.network.parameters.values[logVariance + 1] = Float(log(0.15 * 0.15))
        return policy
    }

    func testLogProbabilityGradientMatchesCentralDifferences() {
        let policy = makePolicy()
        let rows = 10, width = 6
        var random = Philox(seed: 9)
        let observations = Matrix(rows: rows, columns: 4), actions = Matrix(rows: rows, columns: width)
        random.fillNormal(observations.data, count: observations.count)
        var result = [Float](repeating: 0, count: rows)
        policy.logProbabilities(observations: observations, actions: actions, into: &result)
        // Actions near the mean (inside the clamp) except row 2, far away (clamped: no gradient).
        for row in 0..<rows { for element in 0..<width {
            actions[row, element] = policy.network.mean[row, element] + (row == 2 ? 3 : 0.1) * random.normal()
        } }
        let weights = (0..<rows).map { _ in random.normal() }
        func loss() -> Double {
            var values = [Float](repeating: 0, count: rows)
            policy.logProbabilities(observations: observations, actions: actions, into: &values)
            return zip(weights, values).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        let parameters = policy.network.parameters
        parameters.zeroGradients()
        _ = loss()
        weights.withUnsafeBufferPointer { policy.backwardLogProbabilities(gradient: $0.baseAddress!) }
        let analytic = Array(UnsafeBufferPointer(start: parameters.gradients, count: parameters.count))
        var difference = 0.0, norm = 0.0
        let logVariance = parameters.entry(named: "logvar")!.offset
        var picks = Philox(seed: 3)
        let indices = (0..<150).map { _ in picks.integer(below: parameters.count) } + [logVariance, logVariance + 1]
        for index in indices {
            let original = parameters.values[index]
            let delta: Float = 1e-3
            parameters.values[index] = original + delta
            let plus = loss()
            parameters.values[index] = original - delta
            let minus = loss()
            parameters.values[index] = original
            let numeric = (plus - minus) / Double(2 * delta)
            difference += (numeric - Double(analytic[index])) * (numeric - Double(analytic[index]))
            norm += max(numeric * numeric, Double(analytic[index]) * Double(analytic[index]))
        }
        XCTAssertNotEqual(analytic[logVariance], 0, "the learned std must get a gradient")
        XCTAssertLessThan(difference.squareRoot() / norm.squareRoot(), 1e-2)
    }

    func testSamplesStayWithinTheNoiseClipAndDeterministicIsTheMean() {
        let policy = makePolicy()
        var random = Philox(seed: 1)
        let observations = Matrix(rows: 50, columns: 4)
        random.fillNormal(observations.data, count: observations.count)
        let actions = Matrix(rows: 0, columns: 6)
        policy.sample(observations: observations, mode: .exploration, random: &random, records: actions)
        let mean = policy.network.forward(observations)
        var largest: Float = 0
        for row in 0..<50 { for element in 0..<6 {
            let std = policy.network.std(dimension: element % 2)
            let z = abs(actions[row, element] - mean[row, element]) / std
            XCTAssertLessThanOrEqual(z, 3.0001)
            largest = max(largest, z)
        } }
        XCTAssertGreaterThan(largest, 1, "exploration noise is present")
        policy.sample(observations: observations, mode: .deterministic, random: &random, records: actions)
        let deterministicMean = policy.network.forward(observations)
        for element in 0..<actions.count { XCTAssertEqual(actions.data[element], deterministicMean.data[element], accuracy: 4e-4) }
    }
}
