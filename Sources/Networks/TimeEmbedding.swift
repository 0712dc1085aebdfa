import Foundation
import Tensors

/// Sinusoidal position embedding of the denoising step: [sin(t·f₀…f_{h−1}), cos(t·f₀…f_{h−1})],
/// h = dim/2, f_j = exp(−j·ln(10000)/(h−1)). No parameters.
public struct SinusoidalEmbedding {
    public let dimension: Int
    let frequencies: [Float]

    public init(dimension: Int) {
        precondition(dimension >= 4 && dimension % 2 == 0, "time embedding dimension must be even and ≥ 4")
        self.dimension = dimension
        let half = dimension / 2
        let scale = log(10_000.0) / Double(half - 1)
        frequencies = (0..<half).map { Float(exp(-Double($0) * scale)) }
    }

    /// Writes one embedding row per entry of `timesteps` into `output` [B, dimension].
    public func forward(timesteps: UnsafePointer<Float>, count: Int, into output: Matrix) {
        output.resize(rows: count)
        let half = dimension / 2
        for row in 0..<count {
            let destination = output.row(row)
            let t = timesteps[row]
            for j in 0..<half {
                let angle = t * frequencies[j]
                destination[j] = sinf(angle)
                destination[half + j] = cosf(angle)
            }
        }
    }
}
