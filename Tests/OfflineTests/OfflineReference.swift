import Foundation
import Networks
@testable import Offline
import Tensors

/// Float64 re-implementations of the offline networks and losses, reading the same parameter buffers. Gradient
/// checks take central differences of these (no Float32 rounding noise) and compare them with the Float32 backward passes.
enum OfflineReference {
    static func parameter(_ parameters: Parameters, _ name: String) -> (values: [Double], shape: [Int]) {
        let entry = parameters.entry(named: name)!
        return ((0..<entry.count).map { Double(parameters.values[entry.offset + $0]) }, entry.shape)
    }

    static func linear(_ x: [[Double]], _ parameters: Parameters, _ name: String) -> [[Double]] {
        let (w, shape) = parameter(parameters, name + ".weight")
        let (b, _) = parameter(parameters, name + ".bias")
        let outputs = shape[0], inputs = shape[1]
        return x.map { row in
            (0..<outputs).map { o in
                var sum = b[o]
                for i in 0..<inputs { sum += w[o * inputs + i] * row[i] }
                return sum
            }
        }
    }

    static func mish(_ x: [[Double]]) -> [[Double]] {
        x.map { row in row.map { v in v * tanh(v > 20 ? v : log1p(exp(v))) } }
    }

    /// FeedForward with Mish: `layers` linear layers named prefix.0 … prefix.(layers−1).
    static func feedForward(_ x: [[Double]], _ parameters: Parameters, prefix: String, layers: Int) -> [[Double]] {
        var h = x
        for layer in 0..<layers {
            h = linear(h, parameters, "\(prefix).\(layer)")
            if layer < layers - 1 { h = mish(h) }
        }
        return h
    }

    /// Q_i(s, a) of a twin critic ("q1" or "q2") with three hidden layers.
    static func q(_ name: String, _ critic: TwinQCritic, observations: [[Double]], actions: [[Double]], parameters: Parameters? = nil) -> [Double] {
        let input = zip(observations, actions).map { $0 + $1 }
        return feedForward(input, parameters ?? critic.parameters, prefix: name, layers: critic.shape.hiddenDims.count + 1).map { $0[0] }
    }

    static func sinusoid(_ t: Double, dimension: Int) -> [Double] {
        let half = dimension / 2
        let scale = log(10_000.0) / Double(half - 1)
        let frequencies = (0..<half).map { exp(-Double($0) * scale) }
        return frequencies.map { sin(t * $0) } + frequencies.map { cos(t * $0) }
    }

    static func residualMLP(_ x: [[Double]], _ parameters: Parameters, prefix: String, blocks: Int, activation: Activation) -> [[Double]] {
        precondition(activation == .mish, "the offline reference implements Mish networks only")
        var h = linear(x, parameters, "\(prefix).input")
        for block in 0..<blocks {
            let inner = mish(linear(mish(h), parameters, "\(prefix).block\(block).a"))
            let branch = linear(inner, parameters, "\(prefix).block\(block).b")
            h = zip(h, branch).map { zip($0, $1).map(+) }
        }
        return linear(h, parameters, "\(prefix).output")
    }

    static func epsilon(_ network: DiffusionMLP, chunk: [[Double]], timesteps: [Double], observation: [[Double]]) -> [[Double]] {
        let p = network.parameters
        let features = timesteps.map { sinusoid($0, dimension: network.shape.timeDim) }
        let embedding = linear(mish(linear(features, p, "time_embedding.0")), p, "time_embedding.1")
        let input = (0..<chunk.count).map { chunk[$0] + embedding[$0] + observation[$0] }
        return residualMLP(input, p, prefix: "mlp_mean", blocks: (network.shape.mlpDims.count - 1) / 2, activation: network.shape.activation)
    }
}

extension Matrix {
    var rowsAsDoubles: [[Double]] { (0..<rows).map { r in (0..<columns).map { Double(self[r, $0]) } } }

    static func random(_ rows: Int, _ columns: Int, _ random: inout Philox, scale: Float = 1) -> Matrix {
        let matrix = Matrix(rows: rows, columns: columns)
        random.fillNormal(matrix.data, count: matrix.count)
        for index in 0..<matrix.count { matrix.data[index] *= scale }
        return matrix
    }
}

/// Compares analytical gradients with central differences of a Float64 loss over every parameter tensor (a sample of
/// coordinates from each). Returns the worst per-tensor relative error ‖g − g_fd‖ / max(‖g‖, ‖g_fd‖, 1e−12).
func offlineGradientCheck(_ parameters: Parameters, coordinatesPerTensor: Int = 16, step: Double = 1e-6, seed: UInt64 = 5,
                          loss: () -> Double) -> (worst: Double, name: String) {
    var random = Philox(seed: seed)
    var worst = 0.0, worstName = ""
    for entry in parameters.entries {
        var difference = 0.0, analyticNorm = 0.0, numericNorm = 0.0
        let picks = entry.count <= coordinatesPerTensor ? Array(0..<entry.count) : (0..<coordinatesPerTensor).map { _ in random.integer(below: entry.count) }
        for pick in picks {
            let index = entry.offset + pick
            let original = parameters.values[index]
            let delta = Float(step * max(1, Double(abs(original))))
            parameters.values[index] = original + delta
            let plus = loss()
            parameters.values[index] = original - delta
            let minus = loss()
            parameters.values[index] = original
            let numeric = (plus - minus) / (Double(original + delta) - Double(original - delta))
            let analytic = Double(parameters.gradients[index])
            difference += (analytic - numeric) * (analytic - numeric)
            analyticNorm += analytic * analytic
            numericNorm += numeric * numeric
        }
        let relative = difference.squareRoot() / max(analyticNorm.squareRoot(), numericNorm.squareRoot(), 1e-12)
        if relative > worst { worst = relative; worstName = entry.name }
    }
    return (worst, worstName)
}
