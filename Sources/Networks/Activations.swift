import Foundation
import Tensors

/// Element-wise nonlinearities with their backward passes.
public enum Activation: String, Sendable, Codable, CaseIterable {
    case relu
    case mish

    /// y = f(x), element-wise over the rows in use.
    public func forward(_ input: Matrix, into output: Matrix) {
        output.resize(rows: input.rows)
        let x = input.data, y = output.data
        switch self {
        case .relu:
            for index in 0..<input.count { y[index] = max(x[index], 0) }
        case .mish:
            for index in 0..<input.count { y[index] = Activation.mish(x[index]) }
        }
    }

    /// dx = f'(x) ⊙ dy. `inputGradient` may be the same matrix as `outputGradient`.
    public func backward(input: Matrix, outputGradient: Matrix, inputGradient: Matrix) {
        inputGradient.resize(rows: input.rows)
        let x = input.data, dy = outputGradient.data, dx = inputGradient.data
        switch self {
        case .relu:
            for index in 0..<input.count { dx[index] = x[index] > 0 ? dy[index] : 0 }
        case .mish:
            for index in 0..<input.count { dx[index] = dy[index] * Activation.mishDerivative(x[index]) }
        }
    }

    /// Mish(x) = x·tanh(softplus(x)). With e = eˣ and n = e(e + 2), tanh(ln(1 + e)) = n/(n + 2),
    /// so one exponential suffices (the hot loop of every Mish network).
    @inline(__always)
    public static func mish(_ x: Float) -> Float {
        if x > 20 { return x }
        let e = expf(x)
        let n = e * (e + 2)
        return x * n / (n + 2)
    }

    /// d/dx Mish = tanh(sp) + x·(1 − tanh²(sp))·σ(x), with tanh(sp) = n/(n + 2) and σ(x) = e/(1 + e).
    @inline(__always)
    public static func mishDerivative(_ x: Float) -> Float {
        if x > 20 { return 1 }
        let e = expf(x)
        let n = e * (e + 2)
        let tanhSoftplus = n / (n + 2)
        return tanhSoftplus + x * (1 - tanhSoftplus * tanhSoftplus) * e / (1 + e)
    }
}
