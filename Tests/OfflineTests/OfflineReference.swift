import Foundation
import Networks
@testable import Offline
import ReferenceNetworks
import Tensors

/// Float64 re-implementations of the offline networks and losses, reading the same parameter buffers. Gradient
/// checks take central differences of these (no Float32 rounding noise) and compare them with the Float32 backward passes.
enum OfflineReference {
    static func mish(_ x: [[Double]]) -> [[Double]] { Reference.activate(x, .mish) }

    /// FeedForward with Mish: `layers` linear layers named prefix.0 … prefix.(layers−1).
    static func feedForward(_ x: [[Double]], _ parameters: Parameters, prefix: String, layers: Int) -> [[Double]] {
        var h = x
        for layer in 0..<layers {
            h = Reference.linear(h, parameters, "\(prefix).\(layer)")
            if layer < layers - 1 { h = mish(h) }
        }
        return h
    }

    /// Q_i(s, a) of a twin critic ("q1" or "q2") with three hidden layers.
    static func q(_ name: String, _ critic: TwinQCritic, observations: [[Double]], actions: [[Double]], parameters: Parameters? = nil) -> [Double] {
        let input = zip(observations, actions).map { $0 + $1 }
        return feedForward(input, parameters ?? critic.parameters, prefix: name, layers: critic.shape.hiddenDims.count + 1).map { $0[0] }
    }
}

extension Matrix {
    static func random(_ rows: Int, _ columns: Int, _ random: inout Philox, scale: Float = 1) -> Matrix {
        let matrix = Matrix(rows: rows, columns: columns)
        random.fillNormal(matrix.data, count: matrix.count)
        for index in 0..<matrix.count { matrix.data[index] *= scale }
        return matrix
    }
}
