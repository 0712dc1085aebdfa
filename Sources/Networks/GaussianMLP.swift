import Foundation
import Tensors

/// Architecture of the Gaussian baseline policy (docs/algorithms.md §2.4a).
public struct GaussianMLPShape: Sendable, Equatable, Codable {
    public var actionDim: Int
    public var horizonSteps: Int
    public var observationDim: Int
    public var mlpDims: [Int]
    public var activation: Activation
    /// Initial std of every action dimension (`fixed_std`).
    public var fixedStd: Double
    /// Learn one log-variance per action dimension (`learn_fixed_std`), clamped to [ln std_min², ln std_max²].
    public var learnFixedStd: Bool
    public var stdMin: Double
    public var stdMax: Double

    public init(actionDim: Int, horizonSteps: Int, observationDim: Int, mlpDims: [Int] = [512, 512, 512], activation: Activation = .mish,
                fixedStd: Double = 0.1, learnFixedStd: Bool = true, stdMin: Double = 0.01, stdMax: Double = 0.2) {
        self.actionDim = actionDim
        self.horizonSteps = horizonSteps
        self.observationDim = observationDim
        self.mlpDims = mlpDims
        self.activation = activation
        self.fixedStd = fixedStd
        self.learnFixedStd = learnFixedStd
        self.stdMin = stdMin
        self.stdMax = stdMax
    }

    public var chunkWidth: Int { actionDim * horizonSteps }
}

/// μ(o) = tanh(ResidualMLP(o)) over the whole chunk [Tp·Da]; σ is one parameter per action dimension
/// (`logvar`, shared across the chunk, clamped), or the fixed std when it is not learned.
public final class GaussianMLP {
    public let shape: GaussianMLPShape
    public let parameters: Parameters
    let mlp: ResidualMLP
    let logVarianceOffset: Int
    let logVarianceMin: Float, logVarianceMax: Float
    /// tanh(mlp output) of the last forward pass, [B, Tp·Da].
    public let mean: Matrix
    let preActivationGradient: Matrix

    /// A network with its own parameters (std at `fixed_std`), or, with `sharing`, one over those parameters,
    /// left as they are (see `replica`).
    public init(shape: GaussianMLPShape, sharing shared: Parameters? = nil) {
        self.shape = shape
        var layout = ParameterLayout()
        mlp = ResidualMLP("mlp_mean", inputs: shape.observationDim, hiddenDims: shape.mlpDims, outputs: shape.chunkWidth, activation: shape.activation, layout: &layout)
        logVarianceOffset = layout.add("logvar", shape: [shape.actionDim])
        logVarianceMin = Float(log(shape.stdMin * shape.stdMin))
        logVarianceMax = Float(log(shape.stdMax * shape.stdMax))
        mean = Matrix(rows: 0, columns: shape.chunkWidth)
        preActivationGradient = Matrix(rows: 0, columns: shape.chunkWidth)
        if let shared {
            precondition(shared.entries == layout.entries, "shared parameters have another layout than \(shape)")
            parameters = shared
        } else {
            parameters = Parameters(layout: layout)
            resetStd()
        }
    }

    /// A shard's copy: the same parameter values, its own gradients and activation buffers.
    public func replica() -> GaussianMLP { GaussianMLP(shape: shape, sharing: Parameters(sharingValuesOf: parameters)) }

    /// PyTorch-default uniform weights and logvar = ln(fixed_std²).
    public func initialize(random: inout Philox) {
        parameters.initializeUniform(fanIn: mlp.fanIn, random: &random)
        resetStd()
    }

    func resetStd() {
        let initial = Float(log(shape.fixedStd * shape.fixedStd))
        for d in 0..<shape.actionDim { parameters.values[logVarianceOffset + d] = initial }
    }

    /// The std of action dimension d.
    public func std(dimension d: Int) -> Float {
        guard shape.learnFixedStd else { return Float(shape.fixedStd) }
        return expf(0.5 * min(max(parameters.values[logVarianceOffset + d], logVarianceMin), logVarianceMax))
    }

    /// Means for observations [B, To·Do]; the result is `mean`.
    @discardableResult
    public func forward(_ observations: Matrix) -> Matrix {
        let output = mlp.forward(observations, parameters: parameters)
        mean.resize(rows: output.rows)
        for element in 0..<output.count { mean.data[element] = tanhf(output.data[element]) }
        return mean
    }

    /// Accumulates parameter gradients for dL/dμ = `meanGradient` of the last forward pass and dL/dσ_d = `stdGradient`.
    public func backward(input: Matrix, meanGradient: Matrix, stdGradient: [Float]) {
        preActivationGradient.resize(rows: meanGradient.rows)
        for element in 0..<meanGradient.count {
            let m = mean.data[element]
            preActivationGradient.data[element] = meanGradient.data[element] * (1 - m * m)
        }
        mlp.backward(input: input, outputGradient: preActivationGradient, inputGradient: nil, parameters: parameters)
        guard shape.learnFixedStd else { return }
        for d in 0..<shape.actionDim {
            let logVariance = parameters.values[logVarianceOffset + d]
            // σ = exp(½·clamp(lv)): dσ/dlv = σ/2 inside the clamp, 0 outside.
            guard logVariance >= logVarianceMin && logVariance <= logVarianceMax else { continue }
            parameters.gradients[logVarianceOffset + d] += stdGradient[d] * 0.5 * std(dimension: d)
        }
    }
}
