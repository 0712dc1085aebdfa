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

    /// softplus(x) = ln(1 + eˣ), computed without overflow.
    @inline(__always)
    static func softplus(_ x: Float) -> Float {
        x > 20 ? x : log1pf(expf(x))
    }

    /// Mish(x) = x·tanh(softplus(x)).
    @inline(__always)
    public static func mish(_ x: Float) -> Float { x * tanhf(softplus(x)) }

    /// d/dx Mish = tanh(sp) + x·(1 − tanh²(sp))·σ(x).
    @inline(__always)
    public static func mishDerivative(_ x: Float) -> Float {
        let tanhSoftplus = tanhf(softplus(x))
        let sigmoid = 1 / (1 + expf(-x))
        return tanhSoftplus + x * (1 - tanhSoftplus * tanhSoftplus) * sigmoid
    }
}
