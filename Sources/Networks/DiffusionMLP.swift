import Tensors

/// Architecture of the ε-network (docs/algorithms.md §2.2).
public struct DiffusionMLPShape: Sendable, Equatable, Codable {
    public var actionDim: Int
    public var horizonSteps: Int
    public var observationDim: Int   // To·Do, the flattened observation history
    public var timeDim: Int
    public var mlpDims: [Int]
    public var activation: Activation

    public init(actionDim: Int, horizonSteps: Int, observationDim: Int, timeDim: Int = 16, mlpDims: [Int] = [512, 512, 512], activation: Activation = .relu) {
        self.actionDim = actionDim
        self.horizonSteps = horizonSteps
        self.observationDim = observationDim
        self.timeDim = timeDim
        self.mlpDims = mlpDims
        self.activation = activation
    }

    /// Flattened action-chunk width Tp·Da.
    public var chunkWidth: Int { actionDim * horizonSteps }
}

/// ε_θ(x_t, t, o): time embedding (sinusoidal → Linear → Mish → Linear), concatenated after the
/// noisy chunk and before the observation, then a ResidualMLP back to the chunk width.
public final class DiffusionMLP {
    public let shape: DiffusionMLPShape
    public let parameters: Parameters
    let sinusoid: SinusoidalEmbedding
    let timeIn: Linear
    let timeOut: Linear
    let mlp: ResidualMLP

    let timeFeatures: Matrix     // sinusoid [B, d]
    let timeHidden: Matrix       // timeIn output [B, 2d]
    let timeActivated: Matrix    // Mish(timeHidden)
    let timeEmbedding: Matrix    // [B, d]
    let concatenated: Matrix     // [B, A + d + O]
    let concatenatedGradient: Matrix
    let timeEmbeddingGradient: Matrix
    let timeHiddenGradient: Matrix

    /// A network with its own parameters, or, with `sharing`, a second set of activation buffers over the
    /// parameters (values and gradients) of another network of the same shape: backpropagation through a
    /// chain of calls of one network (Diffusion-QL's policy term) keeps one such view per call.
    public init(shape: DiffusionMLPShape, sharing shared: Parameters? = nil) {
        self.shape = shape
        var layout = ParameterLayout()
        let d = shape.timeDim
        sinusoid = SinusoidalEmbedding(dimension: d)
        timeIn = Linear("time_embedding.0", inputs: d, outputs: 2 * d, layout: &layout)
        timeOut = Linear("time_embedding.1", inputs: 2 * d, outputs: d, layout: &layout)
        let inputWidth = shape.chunkWidth + d + shape.observationDim
        mlp = ResidualMLP("mlp_mean", inputs: inputWidth, hiddenDims: shape.mlpDims, outputs: shape.chunkWidth, activation: shape.activation, layout: &layout)
        if let shared {
            precondition(shared.entries == layout.entries, "shared parameters have another layout than \(shape)")
            parameters = shared
        } else {
            parameters = Parameters(layout: layout)
        }
        timeFeatures = Matrix(rows: 0, columns: d)
        timeHidden = Matrix(rows: 0, columns: 2 * d)
        timeActivated = Matrix(rows: 0, columns: 2 * d)
        timeEmbedding = Matrix(rows: 0, columns: d)
        concatenated = Matrix(rows: 0, columns: inputWidth)
        concatenatedGradient = Matrix(rows: 0, columns: inputWidth)
        timeEmbeddingGradient = Matrix(rows: 0, columns: d)
        timeHiddenGradient = Matrix(rows: 0, columns: 2 * d)
    }

    /// A shard's copy: the same parameter values, its own gradients and activation buffers.
    public func replica() -> DiffusionMLP { DiffusionMLP(shape: shape, sharing: Parameters(sharingValuesOf: parameters)) }

    public var fanIn: [String: Int] {
        timeIn.fanIn.merging(timeOut.fanIn) { a, _ in a }.merging(mlp.fanIn) { a, _ in a }
    }

    public func initialize(random: inout Philox) { parameters.initializeUniform(fanIn: fanIn, random: &random) }

    /// The predicted noise of the last forward pass, [B, Tp·Da].
    public var output: Matrix { mlp.output }

    /// ε̂ for each row: `noisyChunk` [B, Tp·Da], `timesteps` B floats (0-based t), `observation` [B, To·Do].
    @discardableResult
    public func forward(noisyChunk: Matrix, timesteps: UnsafePointer<Float>, observation: Matrix) -> Matrix {
        let batch = noisyChunk.rows
        precondition(observation.rows == batch, "observation rows \(observation.rows) ≠ chunk rows \(batch)")
        precondition(noisyChunk.columns == shape.chunkWidth && observation.columns == shape.observationDim)
        sinusoid.forward(timesteps: timesteps, count: batch, into: timeFeatures)
        timeIn.forward(timeFeatures, into: timeHidden, parameters: parameters)
        Activation.mish.forward(timeHidden, into: timeActivated)
        timeOut.forward(timeActivated, into: timeEmbedding, parameters: parameters)

        concatenated.resize(rows: batch)
        let a = shape.chunkWidth, d = shape.timeDim, o = shape.observationDim
        for row in 0..<batch {
            let destination = concatenated.row(row)
            destination.update(from: noisyChunk.row(row), count: a)
            (destination + a).update(from: timeEmbedding.row(row), count: d)
            (destination + a + d).update(from: observation.row(row), count: o)
        }
        return mlp.forward(concatenated, parameters: parameters)
    }

    /// Accumulates parameter gradients for dL/dε̂ = `outputGradient` of the last forward pass and, when
    /// `noisyChunkGradient` is given, writes dL/dx_t [B, Tp·Da] into it.
    public func backward(outputGradient: Matrix, noisyChunkGradient: Matrix? = nil) {
        mlp.backward(input: concatenated, outputGradient: outputGradient, inputGradient: concatenatedGradient, parameters: parameters)
        let batch = outputGradient.rows
        if let noisyChunkGradient {
            noisyChunkGradient.resize(rows: batch)
            for row in 0..<batch { noisyChunkGradient.row(row).update(from: concatenatedGradient.row(row), count: shape.chunkWidth) }
        }
        timeEmbeddingGradient.resize(rows: batch)
        let a = shape.chunkWidth, d = shape.timeDim
        for row in 0..<batch {
            timeEmbeddingGradient.row(row).update(from: concatenatedGradient.row(row) + a, count: d)
        }
        timeOut.backward(input: timeActivated, outputGradient: timeEmbeddingGradient, inputGradient: timeHiddenGradient, parameters: parameters)
        Activation.mish.backward(input: timeHidden, outputGradient: timeHiddenGradient, inputGradient: timeHiddenGradient)
        timeIn.backward(input: timeFeatures, outputGradient: timeHiddenGradient, inputGradient: nil, parameters: parameters)
    }
}

/// The state-only critic V(s): ResidualMLP([To·Do, 256, 256, 256, 1], Mish) (docs/algorithms.md §2.3).
public final class CriticMLP {
    public let parameters: Parameters
    public let observationDim: Int
    let mlpDims: [Int]
    let mlp: ResidualMLP

    /// A critic with its own parameters, or, with `sharing`, one over those parameters (see `replica`).
    public init(observationDim: Int, mlpDims: [Int] = [256, 256, 256], activation: Activation = .mish, sharing shared: Parameters? = nil) {
        self.observationDim = observationDim
        self.mlpDims = mlpDims
        var layout = ParameterLayout()
        mlp = ResidualMLP("Q1", inputs: observationDim, hiddenDims: mlpDims, outputs: 1, activation: activation, layout: &layout)
        if let shared {
            precondition(shared.entries == layout.entries, "shared parameters have another layout than this critic")
            parameters = shared
        } else {
            parameters = Parameters(layout: layout)
        }
    }

    /// A shard's copy: the same parameter values, its own gradients and activation buffers.
    public func replica() -> CriticMLP {
        CriticMLP(observationDim: observationDim, mlpDims: mlpDims, activation: mlp.activation, sharing: Parameters(sharingValuesOf: parameters))
    }

    public func initialize(random: inout Philox) { parameters.initializeUniform(fanIn: mlp.fanIn, random: &random) }

    /// Values [B, 1] for observations [B, To·Do].
    @discardableResult
    public func forward(_ observation: Matrix) -> Matrix { mlp.forward(observation, parameters: parameters) }

    public var output: Matrix { mlp.output }

    public func backward(input: Matrix, outputGradient: Matrix) {
        mlp.backward(input: input, outputGradient: outputGradient, inputGradient: nil, parameters: parameters)
    }
}
