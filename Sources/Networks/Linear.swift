import Tensors

/// Fully connected layer y = x·Wᵀ + b.
///
/// Shapes: x [B, inputs], W [outputs, inputs] (PyTorch layout), b [outputs], y [B, outputs].
public struct Linear {
    public let inputs: Int
    public let outputs: Int
    public let weightOffset: Int
    public let biasOffset: Int
    public let weightName: String
    public let biasName: String

    public init(_ name: String, inputs: Int, outputs: Int, layout: inout ParameterLayout) {
        self.inputs = inputs
        self.outputs = outputs
        weightName = name + ".weight"
        biasName = name + ".bias"
        weightOffset = layout.add(weightName, shape: [outputs, inputs])
        biasOffset = layout.add(biasName, shape: [outputs])
    }

    /// Fan-in per parameter name, for `Parameters.initializeUniform`.
    public var fanIn: [String: Int] { [weightName: inputs, biasName: inputs] }

    /// y = x·Wᵀ + b, or y += x·Wᵀ + b when `accumulate` (used for residual connections).
    public func forward(_ input: Matrix, into output: Matrix, parameters: Parameters, accumulate: Bool = false) {
        precondition(input.columns == inputs && output.columns == outputs, "Linear \(weightName): shape mismatch")
        let batch = input.rows
        if !accumulate { output.resize(rows: batch) }
        precondition(output.rows == batch)
        let bias = parameters.values + biasOffset
        for row in 0..<batch {
            let destination = output.row(row)
            if accumulate {
                for column in 0..<outputs { destination[column] += bias[column] }
            } else {
                destination.update(from: bias, count: outputs)
            }
        }
        BLAS.gemm(transposeA: false, transposeB: true, m: batch, n: outputs, k: inputs,
                  a: input.data, lda: inputs, b: parameters.values + weightOffset, ldb: inputs,
                  beta: 1, c: output.data, ldc: outputs)
    }

    /// Accumulates dW += dyᵀ·x and db += Σ_rows dy; writes dx = dy·W when `inputGradient` is given.
    public func backward(input: Matrix, outputGradient: Matrix, inputGradient: Matrix?, parameters: Parameters) {
        let batch = input.rows
        precondition(outputGradient.rows == batch && outputGradient.columns == outputs)
        BLAS.gemm(transposeA: true, transposeB: false, m: outputs, n: inputs, k: batch,
                  a: outputGradient.data, lda: outputs, b: input.data, ldb: inputs,
                  beta: 1, c: parameters.gradients + weightOffset, ldc: inputs)
        let biasGradient = parameters.gradients + biasOffset
        for row in 0..<batch {
            let source = outputGradient.row(row)
            for column in 0..<outputs { biasGradient[column] += source[column] }
        }
        if let inputGradient {
            inputGradient.resize(rows: batch)
            BLAS.gemm(transposeA: false, transposeB: false, m: batch, n: inputs, k: outputs,
                      a: outputGradient.data, lda: outputs, b: parameters.values + weightOffset, ldb: inputs,
                      beta: 0, c: inputGradient.data, ldc: inputs)
        }
    }
}
