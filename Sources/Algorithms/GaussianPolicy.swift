import Foundation
import Diffusion
import Networks
import Tensors

/// The Gaussian-MLP baseline (docs/algorithms.md §2.4a, §6): a frozen pre-trained copy (`base`, the BC teacher) and the
/// trained `network`. A decision's record is its action chunk; its likelihood term is the mean over the Tp·Da
/// elements of the Gaussian log-density, clamped to [−5, 2] after the mean (no reward-horizon slicing).
public final class GaussianPolicy: RolloutPolicy, PPOActor {
    public let base: GaussianMLP
    public let network: GaussianMLP
    /// Sampled actions stay within μ ± randnClip·σ.
    public let randnClip: Float
    let noise: Matrix
    let meanGradient: Matrix
    var stdGradient: [Float]
    var lastObservations: Matrix
    var lastActions: Matrix
    var elementScale: [Float] = []   // 1/σ² per chunk element
    var clampActive: [Bool] = []
    let teacherActions: Matrix

    public convenience init(shape: GaussianMLPShape, randnClip: Double = 3) {
        self.init(base: GaussianMLP(shape: shape), network: GaussianMLP(shape: shape), randnClip: randnClip)
    }

    init(base: GaussianMLP, network: GaussianMLP, randnClip: Double) {
        let shape = network.shape
        self.base = base
        self.network = network
        self.randnClip = Float(randnClip)
        noise = Matrix(rows: 0, columns: shape.chunkWidth)
        meanGradient = Matrix(rows: 0, columns: shape.chunkWidth)
        stdGradient = [Float](repeating: 0, count: shape.actionDim)
        lastObservations = Matrix(rows: 0, columns: shape.observationDim)
        lastActions = Matrix(rows: 0, columns: shape.chunkWidth)
        teacherActions = Matrix(rows: 0, columns: shape.chunkWidth)
    }

    public var shape: GaussianMLPShape { network.shape }

    /// Same random weights in both copies.
    public func initialize(random: inout Philox) {
        network.initialize(random: &random)
        base.parameters.copy(from: network.parameters)
    }

    // MARK: RolloutPolicy

    public var recordWidth: Int { shape.chunkWidth }
    public var actionOffset: Int { 0 }
    public var broadcastParameters: Parameters { network.parameters }

    /// a = μ + σ·z clamped to μ ± randnClip·σ; deterministic sampling uses σ = 1e−4 as the reference does.
    public func sample(observations: Matrix, mode: SamplingMode, random: inout Philox, records: Matrix) {
        sample(with: network, observations: observations, mode: mode, random: &random, actions: records)
    }

    func sample(with model: GaussianMLP, observations: Matrix, mode: SamplingMode, random: inout Philox, actions: Matrix) {
        let mean = model.forward(observations)
        actions.resize(rows: observations.rows)
        noise.resize(rows: observations.rows)
        random.fillNormal(noise.data, count: noise.count)
        let width = shape.chunkWidth, actionDim = shape.actionDim
        let stds = (0..<actionDim).map { mode == .deterministic ? Float(1e-4) : model.std(dimension: $0) }
        for row in 0..<observations.rows {
            for element in 0..<width {
                let flat = row * width + element
                let z = min(max(noise.data[flat], -randnClip), randnClip)
                actions.data[flat] = mean.data[flat] + stds[element % actionDim] * z
            }
        }
    }

    // MARK: PPOActor

    public var trainableParameters: Parameters { network.parameters }
    public func makeReplica() -> PPOActor { GaussianPolicy(base: base.replica(), network: network.replica(), randnClip: Double(randnClip)) }
    public var termsPerDecision: Int { 1 }
    public var termWidth: Int { shape.chunkWidth }

    public func gather(record: UnsafePointer<Float>, term: Int, slot: Int, into minibatch: PPOMinibatch) {
        minibatch.outputs.row(slot).update(from: record, count: shape.chunkWidth)
    }

    public func logProbabilities(_ minibatch: PPOMinibatch, into result: UnsafeMutablePointer<Float>) {
        logProbabilities(observations: minibatch.observations, actions: minibatch.outputs, into: result)
    }

    /// clamp(mean over Tp·Da of log N(a; μ(o), σ²), −5, 2) for each row.
    public func logProbabilities(observations: Matrix, actions: Matrix, into result: UnsafeMutablePointer<Float>) {
        let rows = observations.rows, width = shape.chunkWidth, actionDim = shape.actionDim
        lastObservations = observations
        lastActions = actions
        let mean = network.forward(observations)
        let stds = (0..<actionDim).map { network.std(dimension: $0) }
        let logStds = stds.map(logf)
        if clampActive.count < rows { clampActive = [Bool](repeating: false, count: rows) }
        let halfLogTwoPi = Float(0.5 * log(2 * Double.pi))
        for row in 0..<rows {
            var sum: Float = 0
            for element in 0..<width {
                let d = element % actionDim
                let difference = actions.data[row * width + element] - mean.data[row * width + element]
                sum += -0.5 * difference * difference / (stds[d] * stds[d]) - logStds[d] - halfLogTwoPi
            }
            let average = sum / Float(width)
            clampActive[row] = average >= -5 && average <= 2
            result[row] = min(max(average, -5), 2)
        }
    }

    public func backwardLogProbabilities(gradient: UnsafePointer<Float>) {
        let rows = lastObservations.rows, width = shape.chunkWidth, actionDim = shape.actionDim
        let mean = network.mean
        let stds = (0..<actionDim).map { network.std(dimension: $0) }
        meanGradient.resize(rows: rows)
        for d in 0..<actionDim { stdGradient[d] = 0 }
        for row in 0..<rows {
            let upstream = clampActive[row] ? gradient[row] / Float(width) : 0
            for element in 0..<width {
                let d = element % actionDim, flat = row * width + element
                let difference = lastActions.data[flat] - mean.data[flat]
                let inverseVariance = 1 / (stds[d] * stds[d])
                meanGradient.data[flat] = upstream * difference * inverseVariance
                // dℓ/dσ = (a − μ)²/σ³ − 1/σ
                stdGradient[d] += upstream * (difference * difference * inverseVariance - 1) / stds[d]
            }
        }
        network.backward(input: lastObservations, meanGradient: meanGradient, stdGradient: stdGradient)
    }

    public func clipCoefficient(term: Int, hyperparameters: PPOHyperparameters) -> Double { hyperparameters.clipCoefficient }
    public func advantageScale(term: Int, hyperparameters: PPOHyperparameters) -> Double { 1 }

    /// −α·mean log π_θ(a_base | o) of actions the frozen base samples (the paper's Gaussian + BC baseline, §6).
    public func accumulateBehaviourCloningLoss(observations: Matrix, weights: [Float], coefficient: Double, random: inout Philox) -> Double {
        sample(with: base, observations: observations, mode: .exploration, random: &random, actions: teacherActions)
        var teacherLogProbabilities = [Float](repeating: 0, count: observations.rows)
        teacherLogProbabilities.withUnsafeMutableBufferPointer { logProbabilities(observations: observations, actions: teacherActions, into: $0.baseAddress!) }
        var loss = 0.0
        for row in 0..<observations.rows { loss -= Double(weights[row]) * Double(teacherLogProbabilities[row]) }
        let gradient = weights.map { -Float(coefficient) * $0 }
        gradient.withUnsafeBufferPointer { backwardLogProbabilities(gradient: $0.baseAddress!) }
        return loss
    }
}
