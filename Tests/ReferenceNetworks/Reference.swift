import Foundation
import Networks
import Tensors

/// Plain Float64 re-implementations of the layers, reading the same parameter buffers (shared by the test targets of
/// Networks, Diffusion and Offline).
/// Gradient checks take finite differences of these (step 1e−6, no Float32 rounding noise) and
/// compare them with the Float32 backward passes; forward passes are compared too.
public enum Reference {
    public static func parameter(_ parameters: Parameters, _ name: String) -> (values: [Double], shape: [Int]) {
        let entry = parameters.entry(named: name)!
        return ((0..<entry.count).map { Double(parameters.values[entry.offset + $0]) }, entry.shape)
    }

    public static func linear(_ x: [[Double]], _ parameters: Parameters, _ name: String) -> [[Double]] {
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

    public static func activate(_ x: [[Double]], _ activation: Activation) -> [[Double]] {
        x.map { row in row.map { v in
            switch activation {
            case .relu: return max(v, 0)
            case .mish:
                let softplus = v > 20 ? v : log1p(exp(v))
                return v * tanh(softplus)
            }
        } }
    }

    public static func residualMLP(_ x: [[Double]], _ parameters: Parameters, prefix: String, blocks: Int, activation: Activation) -> [[Double]] {
        var h = linear(x, parameters, "\(prefix).input")
        for block in 0..<blocks {
            let inner = activate(linear(activate(h, activation), parameters, "\(prefix).block\(block).a"), activation)
            let branch = linear(inner, parameters, "\(prefix).block\(block).b")
            h = zip(h, branch).map { zip($0, $1).map(+) }
        }
        return linear(h, parameters, "\(prefix).output")
    }

    public static func sinusoid(_ t: Double, dimension: Int) -> [Double] {
        let half = dimension / 2
        let scale = log(10_000.0) / Double(half - 1)
        let frequencies = (0..<half).map { exp(-Double($0) * scale) }
        return frequencies.map { sin(t * $0) } + frequencies.map { cos(t * $0) }
    }

    public static func diffusionMLP(_ network: DiffusionMLP, chunk: [[Double]], timesteps: [Double], observation: [[Double]]) -> [[Double]] {
        let p = network.parameters
        let features = timesteps.map { sinusoid($0, dimension: network.shape.timeDim) }
        let embedding = linear(activate(linear(features, p, "time_embedding.0"), .mish), p, "time_embedding.1")
        let input = (0..<chunk.count).map { chunk[$0] + embedding[$0] + observation[$0] }
        return residualMLP(input, p, prefix: "mlp_mean", blocks: (network.shape.mlpDims.count - 1) / 2, activation: network.shape.activation)
    }
}

extension Matrix {
    public var rowsAsDoubles: [[Double]] { (0..<rows).map { r in (0..<columns).map { Double(self[r, $0]) } } }
}

/// Compares analytical gradients with central differences of a Float64 loss, over every parameter
/// tensor (a sample of coordinates from each). Returns the worst per-tensor relative error
/// ‖g − g_fd‖ / max(‖g‖, ‖g_fd‖, 1e−12).
public func gradientCheck(_ parameters: Parameters, coordinatesPerTensor: Int = 24, step: Double = 1e-6, seed: UInt64 = 5,
                   loss: () -> Double) -> (worst: Double, name: String) {
    var random = Philox(seed: seed)
    var worst = 0.0, worstName = ""
    for entry in parameters.entries {
        var difference = 0.0, analyticNorm = 0.0, numericNorm = 0.0
        let picks = entry.count <= coordinatesPerTensor ? Array(0..<entry.count) : (0..<coordinatesPerTensor).map { _ in random.integer(below: entry.count) }
        for pick in picks {
            let index = entry.offset + pick
            let original = parameters.values[index]
            // Perturb in Float64 terms: the reference reads Float32 values, so step through a Float32-exact offset.
            let delta = Float(step * max(1, Double(abs(original))))
            parameters.values[index] = original + delta
            let plus = loss()
            parameters.values[index] = original - delta
            let minus = loss()
            parameters.values[index] = original
            let actualDelta = Double(original + delta) - Double(original - delta)
            let numeric = (plus - minus) / actualDelta
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
