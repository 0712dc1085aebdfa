import XCTest
import Foundation
@testable import Networks
import Tensors

final class NetworkTests: XCTestCase {
    /// docs/algorithms.md §2.2–2.3: the parameter counts pin the concat order and the block count.
    func testParameterCountsMatchTheReference() {
        let hopper = DiffusionMLP(shape: DiffusionMLPShape(actionDim: 3, horizonSteps: 4, observationDim: 11))
        XCTAssertEqual(hopper.parameters.count, 553_020)
        let walker = DiffusionMLP(shape: DiffusionMLPShape(actionDim: 6, horizonSteps: 4, observationDim: 17))
        XCTAssertEqual(walker.parameters.count, 568_392)
        let can = DiffusionMLP(shape: DiffusionMLPShape(actionDim: 7, horizonSteps: 4, observationDim: 23, activation: .mish))
        XCTAssertEqual(can.parameters.count, 575_564)
        XCTAssertEqual(CriticMLP(observationDim: 11).parameters.count, 134_913)
        XCTAssertEqual(CriticMLP(observationDim: 17).parameters.count, 136_449)
    }

    func testSinusoidalEmbeddingGoldenVector() {
        let embedding = SinusoidalEmbedding(dimension: 16)
        let output = Matrix(rows: 0, columns: 16)
        let timesteps: [Float] = [1, 0]
        timesteps.withUnsafeBufferPointer { embedding.forward(timesteps: $0.baseAddress!, count: 2, into: output) }
        let expected: [Float] = [0.841470984808, 0.265063309288, 0.071906456825, 0.019305777835, 0.005179451521, 0.001389495047,
                                 0.000372759363, 0.000099999999833, 0.540302305868, 0.964231010738, 0.997411380257, 0.999813626103,
                                 0.999986586551, 0.999999034651, 0.999999930525, 0.999999995]
        for column in 0..<16 {
            XCTAssertEqual(output[0, column], expected[column], accuracy: 1e-6)
            XCTAssertEqual(output[1, column], column < 8 ? 0 : 1, accuracy: 0)
        }
    }

    /// docs/algorithms.md §9: LR schedule examples (max 1e−4, min 1e−5, C 100, W 10).
    func testCosineWarmupScheduleGoldenValues() {
        let schedule = CosineWarmupSchedule(maxLearningRate: 1e-4, minLearningRate: 1e-5, firstCycleSteps: 100, warmupSteps: 10)
        for (step, expected) in [(0, 1e-5), (1, 1.9e-5), (10, 1e-4), (55, 5.5e-5), (100, 1e-5)] {
            XCTAssertEqual(schedule.learningRate(step: step), expected, accuracy: 1e-12, "step \(step)")
        }
        let pretrain = CosineWarmupSchedule(maxLearningRate: 1e-3, minLearningRate: 1e-4, firstCycleSteps: 200, warmupSteps: 1)
        for (step, expected) in [(0, 1e-4), (1, 1e-3), (2, 0.000999943925283), (100, 0.000553552015109), (199, 0.000100056074717)] {
            XCTAssertEqual(pretrain.learningRate(step: step), expected, accuracy: 1e-12, "step \(step)")
        }
    }

    /// Two AdamW steps checked against the update rule written out by hand.
    func testAdamMatchesTheUpdateRule() {
        var layout = ParameterLayout()
        _ = layout.add("w", shape: [2])
        let parameters = Parameters(layout: layout)
        parameters.values[0] = 1; parameters.values[1] = -2
        let adam = Adam(parameters: parameters, learningRate: 0.1, weightDecay: 0.01)
        var m = [0.0, 0.0], v = [0.0, 0.0], w = [1.0, -2.0]
        for (step, gradient) in [[0.5, -1.0], [0.2, 0.3]].enumerated() {
            parameters.gradients[0] = Float(gradient[0]); parameters.gradients[1] = Float(gradient[1])
            adam.update()
            for i in 0..<2 {
                m[i] = 0.9 * m[i] + 0.1 * gradient[i]
                v[i] = 0.999 * v[i] + 0.001 * gradient[i] * gradient[i]
                let mHat = m[i] / (1 - pow(0.9, Double(step + 1))), vHat = v[i] / (1 - pow(0.999, Double(step + 1)))
                w[i] = w[i] * (1 - 0.1 * 0.01) - 0.1 * mHat / (vHat.squareRoot() + 1e-8)
                XCTAssertEqual(Double(parameters.values[i]), w[i], accuracy: 1e-5)
            }
        }
    }

    func testGradientClippingScalesToTheMaximumNorm() {
        var layout = ParameterLayout()
        _ = layout.add("w", shape: [2])
        let parameters = Parameters(layout: layout)
        let adam = Adam(parameters: parameters, learningRate: 1, beta1: 0, beta2: 0, epsilon: 0, maxGradientNorm: 1)
        parameters.gradients[0] = 3; parameters.gradients[1] = 4
        XCTAssertEqual(adam.update(), 5, accuracy: 1e-9)
        // With β = 0 and ε = 0 the step is the sign of the clipped gradient.
        XCTAssertEqual(parameters.values[0], -1, accuracy: 1e-5)
    }

    func testSafetensorsRoundTripAndRejection() throws {
        var random = Philox(seed: 9)
        let network = DiffusionMLP(shape: DiffusionMLPShape(actionDim: 1, horizonSteps: 2, observationDim: 3, timeDim: 8, mlpDims: [8, 8, 8]))
        network.initialize(random: &random)
        let data = try Safetensors.encode(network.parameters.namedTensors(prefix: "ft."), metadata: ["kind": "test"])
        let (tensors, metadata) = try Safetensors.decode(data)
        XCTAssertEqual(metadata["kind"], "test")
        let copy = DiffusionMLP(shape: network.shape)
        try copy.parameters.load(tensors, prefix: "ft.")
        XCTAssertEqual(Array(copy.parameters.valueBuffer), Array(network.parameters.valueBuffer))
        // Header length 8-aligned data section, as the format recommends.
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual((8 + Int(headerLength)) % 8, 0)

        XCTAssertThrowsError(try Safetensors.decode(data.prefix(20)))
        XCTAssertThrowsError(try Safetensors.decode(Data([255, 255, 255, 255, 0, 0, 0, 0])))
        var wrongShape = tensors
        wrongShape["ft.mlp_mean.output.bias"] = NamedTensor(name: "ft.mlp_mean.output.bias", shape: [3], values: [0, 0, 0])
        XCTAssertThrowsError(try copy.parameters.load(wrongShape, prefix: "ft.")) { error in
            XCTAssertTrue("\(error)".contains("shape"), "\(error)")
        }
        XCTAssertThrowsError(try copy.parameters.load(tensors, prefix: "base.")) { error in
            XCTAssertEqual(error as? SafetensorsError, .missingTensor("base.time_embedding.0.weight"))
        }
    }
}

/// Mish and its derivative (scalar and 8-lane) against the formula in Double precision.
final class VectorMishTests: XCTestCase {
    func testVectorMishMatchesTheScalarFormula() {
        var values: [Float] = [-200, -87.5, -87, -50, -20, -5, -1, -1e-3, 0, 1e-3, 0.5, 1, 3, 10, 19.9, 20, 20.1, 50, 88, 500]
        var random = Philox(seed: 3)
        for _ in 0..<4_000 { values.append(random.uniform() * 60 - 30) }
        while values.count % 8 != 0 { values.append(random.normal()) }
        let input = Matrix(rows: 1, columns: values.count), output = Matrix(rows: 1, columns: values.count)
        let ones = Matrix(rows: 1, columns: values.count), gradient = Matrix(rows: 1, columns: values.count)
        input.data.update(from: values, count: values.count)
        ones.fill(1)
        Activation.mish.forward(input, into: output)
        Activation.mish.backward(input: input, outputGradient: ones, inputGradient: gradient)
        // The 8-lane functions (release builds' forward and backward) perform the scalar ones' operations: equal bits.
        for start in stride(from: 0, to: values.count, by: 8) {
            let lanes = SIMD8<Float>(values[start..<(start + 8)])
            let (mish, derivative) = (Activation.mish(lanes), Activation.mishDerivative(lanes))
            for lane in 0..<8 {
                XCTAssertEqual(mish[lane].bitPattern, Activation.mish(lanes[lane]).bitPattern, "mish(\(lanes[lane]))")
                XCTAssertEqual(derivative[lane].bitPattern, Activation.mishDerivative(lanes[lane]).bitPattern, "mish'(\(lanes[lane]))")
            }
        }
        XCTAssertTrue(Activation.mish(Float.nan).isNaN)
        XCTAssertTrue(Activation.mish(SIMD8<Float>(repeating: .nan))[0].isNaN)
        for (index, x) in values.enumerated() {
            let d = Double(x), softplus = d > 30 ? d : log1p(Foundation.exp(d)), t = tanh(softplus)
            let mish = d * t
            let sigmoid = 1 / (1 + Foundation.exp(-d))
            let derivative = t + d * (1 - t * t) * sigmoid
            XCTAssertEqual(Double(output.data[index]), mish, accuracy: 1e-6 * max(1, abs(mish)), "mish(\(x))")
            XCTAssertEqual(Double(gradient.data[index]), derivative, accuracy: 1e-6 * max(1, abs(derivative)), "mish'(\(x))")
        }
    }
}
