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
            // Eight lanes at a time: the pointers may alias, which keeps the optimizer from vectorizing a scalar loop.
            let count = input.count, vectorEnd = count & ~7
            var index = 0
            while index < vectorEnd {
                let v = UnsafeRawPointer(x + index).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(y + index).storeBytes(of: v.replacing(with: 0, where: v .<= 0), as: SIMD8<Float>.self)
                index += 8
            }
            while index < count { y[index] = max(x[index], 0); index += 1 }
        case .mish:
            #if DEBUG
            // Unoptimized SIMD code runs each lane through generic calls; scalar code with the same operations gives
            // the same results, fast enough for the tests.
            for index in 0..<input.count { y[index] = Activation.mish(x[index]) }
            #else
            let count = input.count, vectorEnd = count & ~7
            var index = 0
            while index < vectorEnd {
                let v = UnsafeRawPointer(x + index).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(y + index).storeBytes(of: Activation.mish(v), as: SIMD8<Float>.self)
                index += 8
            }
            while index < count { y[index] = Activation.mish(x[index]); index += 1 }
            #endif
        }
    }

    /// dx = f'(x) ⊙ dy. `inputGradient` may be the same matrix as `outputGradient`.
    public func backward(input: Matrix, outputGradient: Matrix, inputGradient: Matrix) {
        inputGradient.resize(rows: input.rows)
        let x = input.data, dy = outputGradient.data, dx = inputGradient.data
        switch self {
        case .relu:
            let count = input.count, vectorEnd = count & ~7
            var index = 0
            while index < vectorEnd {
                let v = UnsafeRawPointer(x + index).loadUnaligned(as: SIMD8<Float>.self)
                let g = UnsafeRawPointer(dy + index).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(dx + index).storeBytes(of: g.replacing(with: 0, where: .!(v .> 0)), as: SIMD8<Float>.self)
                index += 8
            }
            while index < count { dx[index] = x[index] > 0 ? dy[index] : 0; index += 1 }
        case .mish:
            #if DEBUG
            for index in 0..<input.count { dx[index] = dy[index] * Activation.mishDerivative(x[index]) }
            #else
            let count = input.count, vectorEnd = count & ~7
            var index = 0
            while index < vectorEnd {
                let v = UnsafeRawPointer(x + index).loadUnaligned(as: SIMD8<Float>.self)
                let g = UnsafeRawPointer(dy + index).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(dx + index).storeBytes(of: g * Activation.mishDerivative(v), as: SIMD8<Float>.self)
                index += 8
            }
            while index < count { dx[index] = dy[index] * Activation.mishDerivative(x[index]); index += 1 }
            #endif
        }
    }

    /// eˣ without a library call, so that loops over it vectorize (Cephes expf: x = n·ln 2 + r with |r| ≤ ln 2 / 2, a
    /// degree-6 polynomial for eʳ, then scaling by 2ⁿ through the exponent bits); within 2 ulp of `expf`. x must lie in
    /// [−87, 88]. Rounding and the float→int conversion use the 1.5·2²³ trick: every operation is a plain float or
    /// integer one, which the optimizer turns into SSE2 vector code (and a debug build runs as cheap scalar code).
    @inline(__always)
    static func exponential(_ x: Float) -> Float {
        let magic: Float = 12_582_912 // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits
        let shifted = x * 1.442_695_040_888_963_4 + magic
        let n = shifted - magic
        let integer = Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000
        var r = x - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p: Float = 1.987_569_15e-4
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        return p * Float(bitPattern: UInt32(bitPattern: (integer &+ 127) &<< 23))
    }

    /// eˣ for Mish: x limited to [−87, 20] (above 20 Mish's ratio n/(n + 2) is exactly 1 in float32, and its derivative
    /// exactly 1). Comparisons, not `min`/`max`, keep NaN a NaN.
    @inline(__always)
    static func mishExponential(_ x: Float) -> Float {
        exponential(x < -87 ? -87 : (x > 20 ? 20 : x))
    }

    /// eˣ for 8 lanes at once (Cephes expf: x = n·ln 2 + r with |r| ≤ ln 2 / 2, a degree-6 polynomial for eʳ, then
    /// scaling by 2ⁿ through the exponent bits), within 2 ulp of `expf`. Every lane must lie in [−87, 88] (callers
    /// clamp with `clampedForExp`); the same operations as the scalar `exponential`, so the same results. Rounding and the float→int conversion use the 1.5·2²³ trick, so every step is a
    /// plain SSE2 vector operation.
    @inline(__always)
    static func exponential(_ clamped: SIMD8<Float>) -> SIMD8<Float> {
        let magic = SIMD8<Float>(repeating: 12_582_912) // 1.5·2²³: adding it rounds to an integer held in the low bits
        let shifted = clamped * 1.442_695_040_888_963_4 + magic
        let n = shifted - magic
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        var r = clamped - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = SIMD8<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: SIMD8<Float>.self)
        return p * scale
    }

    /// x limited to [−87, 20] with vector selects (`clamped` would call the generic pointwise min and max per lane):
    /// the range `exp` needs, and above 20 Mish's ratio n/(n + 2) is exactly 1 in float32 anyway.
    @inline(__always)
    static func clampedForExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let low = SIMD8<Float>(repeating: -87), high = SIMD8<Float>(repeating: 20)
        return x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
    }

    /// Mish on 8 lanes (the scalar form below, with eˣ from `exp`).
    @inline(__always)
    static func mish(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let e = exponential(clampedForExp(x))
        let n = e * (e + 2)
        return x * n / (n + 2)
    }

    @inline(__always)
    static func mishDerivative(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let e = exponential(clampedForExp(x))
        let n = e * (e + 2)
        let tanhSoftplus = n / (n + 2)
        // 1 − tanh² = (1 − tanh)(1 + tanh) = 2/(n + 2)·(1 + tanh), without the cancellation of 1 − tanh² near 1.
        let oneMinusTanhSquared = 2 / (n + 2) * (1 + tanhSoftplus)
        let sigmoid = e / (1 + e)
        return tanhSoftplus + x * oneMinusTanhSquared * sigmoid
    }

    /// Mish(x) = x·tanh(softplus(x)). With e = eˣ and n = e(e + 2), tanh(ln(1 + e)) = n/(n + 2),
    /// so one exponential suffices (the hot loop of every Mish network), and no branch.
    @inline(__always)
    public static func mish(_ x: Float) -> Float {
        let e = mishExponential(x)
        let n = e * (e + 2)
        return x * n / (n + 2)
    }

    /// d/dx Mish = tanh(sp) + x·(1 − tanh²(sp))·σ(x), with tanh(sp) = n/(n + 2), 1 − tanh² = 2(1 + tanh)/(n + 2) and
    /// σ(x) = e/(1 + e).
    @inline(__always)
    public static func mishDerivative(_ x: Float) -> Float {
        let e = mishExponential(x)
        let n = e * (e + 2)
        let tanhSoftplus = n / (n + 2)
        // 1 − tanh² = (1 − tanh)(1 + tanh) = 2/(n + 2)·(1 + tanh), without the cancellation of 1 − tanh² near 1.
        let oneMinusTanhSquared = 2 / (n + 2) * (1 + tanhSoftplus)
        let sigmoid = e / (1 + e)
        return tanhSoftplus + x * oneMinusTanhSquared * sigmoid
    }
}
