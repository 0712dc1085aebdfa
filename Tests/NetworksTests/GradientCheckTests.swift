import XCTest
@testable import Networks
import ReferenceNetworks
import Tensors

/// Finite-difference gradient checks of every layer and of the full networks (relative error < 1e−3).
final class GradientCheckTests: XCTestCase {
    func randomMatrix(_ rows: Int, _ columns: Int, _ random: inout Philox, scale: Float = 1) -> Matrix {
        let matrix = Matrix(rows: rows, columns: columns)
        random.fillNormal(matrix.data, count: matrix.count)
        for index in 0..<matrix.count { matrix.data[index] *= scale }
        return matrix
    }

    /// Σ r ⊙ y in Float64, the scalar every check differentiates.
    func projected(_ y: [[Double]], _ r: Matrix) -> Double {
        var sum = 0.0
        for (row, values) in y.enumerated() { for (column, value) in values.enumerated() { sum += value * Double(r[row, column]) } }
        return sum
    }

    func testLinearGradients() {
        var random = Philox(seed: 1)
        var layout = ParameterLayout()
        let layer = Linear("fc", inputs: 7, outputs: 5, layout: &layout)
        let parameters = Parameters(layout: layout)
        parameters.initializeUniform(fanIn: layer.fanIn, random: &random)
        let x = randomMatrix(6, 7, &random), r = randomMatrix(6, 5, &random), y = Matrix(rows: 0, columns: 5)
        layer.forward(x, into: y, parameters: parameters)
        let dx = Matrix(rows: 0, columns: 7)
        layer.backward(input: x, outputGradient: r, inputGradient: dx, parameters: parameters)
        XCTAssertEqual(y.rowsAsDoubles.flatMap { $0 }, Reference.linear(x.rowsAsDoubles, parameters, "fc").flatMap { $0 }, accuracy: 1e-5)
        let check = gradientCheck(parameters) { projected(Reference.linear(x.rowsAsDoubles, parameters, "fc"), r) }
        XCTAssertLessThan(check.worst, 1e-3, "worst tensor \(check.name)")
        // Input gradient: d(Σ r·(xWᵀ + b))/dx = r·W.
        let (w, _) = Reference.parameter(parameters, "fc.weight")
        for row in 0..<6 { for i in 0..<7 {
            let expected = (0..<5).reduce(0.0) { $0 + Double(r[row, $1]) * w[$1 * 7 + i] }
            XCTAssertEqual(Double(dx[row, i]), expected, accuracy: 1e-5)
        } }
    }

    func testActivationGradients() {
        for activation in Activation.allCases {
            let x = Matrix(rows: 1, columns: 9, values: [-3, -1.2, -0.4, -0.05, 0.07, 0.3, 1.1, 2.5, 25])
            let y = Matrix(rows: 0, columns: 9), dx = Matrix(rows: 0, columns: 9)
            activation.forward(x, into: y)
            let ones = Matrix(rows: 1, columns: 9, values: [Float](repeating: 1, count: 9))
            activation.backward(input: x, outputGradient: ones, inputGradient: dx)
            for column in 0..<9 {
                let v = Double(x[0, column]), h = 1e-6
                let f = { (z: Double) in Reference.activate([[z]], activation)[0][0] }
                XCTAssertEqual(Double(y[0, column]), f(v), accuracy: 1e-5)
                let numeric = (f(v + h) - f(v - h)) / (2 * h)
                XCTAssertEqual(Double(dx[0, column]), numeric, accuracy: 1e-4 * max(1, abs(numeric)), "\(activation) at \(v)")
            }
        }
    }

    func testResidualMLPGradients() {
        for activation in Activation.allCases {
            var random = Philox(seed: 2)
            var layout = ParameterLayout()
            let mlp = ResidualMLP("net", inputs: 5, hiddenDims: [16, 16, 16, 16, 16], outputs: 3, activation: activation, layout: &layout)
            let parameters = Parameters(layout: layout)
            parameters.initializeUniform(fanIn: mlp.fanIn, random: &random)
            let x = randomMatrix(4, 5, &random), r = randomMatrix(4, 3, &random)
            let y = mlp.forward(x, parameters: parameters)
            let reference = Reference.residualMLP(x.rowsAsDoubles, parameters, prefix: "net", blocks: 2, activation: activation)
            XCTAssertEqual(y.rowsAsDoubles.flatMap { $0 }, reference.flatMap { $0 }, accuracy: 1e-5)
            let dx = Matrix(rows: 0, columns: 5)
            mlp.backward(input: x, outputGradient: r, inputGradient: dx, parameters: parameters)
            let check = gradientCheck(parameters) {
                projected(Reference.residualMLP(x.rowsAsDoubles, parameters, prefix: "net", blocks: 2, activation: activation), r)
            }
            XCTAssertLessThan(check.worst, 1e-3, "\(activation): worst tensor \(check.name)")
        }
    }

    func testDiffusionMLPGradients() {
        for activation in Activation.allCases {
            var random = Philox(seed: 3)
            let network = DiffusionMLP(shape: DiffusionMLPShape(actionDim: 2, horizonSteps: 3, observationDim: 4, timeDim: 8, mlpDims: [16, 16, 16], activation: activation))
            network.initialize(random: &random)
            let chunk = randomMatrix(5, 6, &random), observation = randomMatrix(5, 4, &random), r = randomMatrix(5, 6, &random)
            let timesteps: [Float] = [0, 3, 7, 19, 11]
            let output = timesteps.withUnsafeBufferPointer { network.forward(noisyChunk: chunk, timesteps: $0.baseAddress!, observation: observation) }
            let reference = { Reference.diffusionMLP(network, chunk: chunk.rowsAsDoubles, timesteps: timesteps.map(Double.init), observation: observation.rowsAsDoubles) }
            XCTAssertEqual(output.rowsAsDoubles.flatMap { $0 }, reference().flatMap { $0 }, accuracy: 1e-4)
            network.parameters.zeroGradients()
            network.backward(outputGradient: r)
            let check = gradientCheck(network.parameters) { projected(reference(), r) }
            XCTAssertLessThan(check.worst, 1e-3, "\(activation): worst tensor \(check.name)")
        }
    }

    func testCriticGradients() {
        var random = Philox(seed: 4)
        let critic = CriticMLP(observationDim: 6, mlpDims: [32, 32, 32])
        critic.initialize(random: &random)
        let observation = randomMatrix(7, 6, &random), r = randomMatrix(7, 1, &random)
        let output = critic.forward(observation)
        let reference = { Reference.residualMLP(observation.rowsAsDoubles, critic.parameters, prefix: "Q1", blocks: 1, activation: .mish) }
        XCTAssertEqual(output.rowsAsDoubles.flatMap { $0 }, reference().flatMap { $0 }, accuracy: 1e-5)
        critic.parameters.zeroGradients()
        critic.backward(input: observation, outputGradient: r)
        let check = gradientCheck(critic.parameters) { projected(reference(), r) }
        XCTAssertLessThan(check.worst, 1e-3, "worst tensor \(check.name)")
    }
}

func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) where abs(x - y) > accuracy * max(1, abs(y)) {
        XCTFail("\(x) ≠ \(y) (accuracy \(accuracy))", file: file, line: line)
        return
    }
}
