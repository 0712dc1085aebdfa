import Diffusion
import Networks
import Tensors

/// Architecture of the offline critics (docs/offline-algorithms.md §1.4): "3-layer MLP, 256 units, Mish" on
/// concat(observation window, action chunk) for Q, on the observation window alone for V.
public struct CriticShape: Sendable, Equatable, Codable {
    /// To·Do, the flattened observation window.
    public var observationDim: Int
    /// Tp·Da, the flattened action chunk.
    public var actionDim: Int
    public var hiddenDims: [Int]
    public var activation: Activation

    public init(observationDim: Int, actionDim: Int, hiddenDims: [Int] = [256, 256, 256], activation: Activation = .mish) {
        self.observationDim = observationDim
        self.actionDim = actionDim
        self.hiddenDims = hiddenDims
        self.activation = activation
    }

    /// `requested`, or the default 256×3 Mish on `policy`'s observation and chunk widths; its widths must fit the policy.
    static func resolved(_ requested: CriticShape?, for policy: DiffusionPolicy) -> CriticShape {
        let shape = requested ?? CriticShape(observationDim: policy.base.shape.observationDim, actionDim: policy.settings.chunkWidth)
        precondition(shape.observationDim == policy.base.shape.observationDim && shape.actionDim == policy.settings.chunkWidth,
                     "critic widths \(shape.observationDim), \(shape.actionDim) do not fit the policy")
        return shape
    }
}

/// Which copy of a network to run: the trained one or its slowly moving target.
public enum NetworkCopy: Sendable {
    case online
    case target
}

/// target ← rate·source + (1 − rate)·target (Polyak averaging; the EMA of an actor is the same map with rate 1 − decay).
public func polyakUpdate(target: Parameters, source: Parameters, rate: Float) {
    precondition(target.count == source.count, "Polyak update between parameter sets of different sizes")
    let keep = 1 - rate
    for index in 0..<target.count { target.values[index] = keep * target.values[index] + rate * source.values[index] }
}

/// A parameter set laid out like `parameters`, holding a copy of its values (targets, EMA copies).
func copyOf(_ parameters: Parameters) -> Parameters {
    var layout = ParameterLayout()
    for entry in parameters.entries { _ = layout.add(entry.name, shape: entry.shape) }
    let copy = Parameters(layout: layout)
    copy.copy(from: parameters)
    return copy
}

/// Twin action-value networks Q1, Q2 (double Q, §2.2) in one parameter buffer (`q1.*`, `q2.*`) — one optimizer and
/// one gradient norm over both, as the critic module of both codebases — with a Polyak-averaged target copy.
///
/// `forward` evaluates both critics on the same rows; `backward` needs the last `forward` to have run the online copy.
public final class TwinQCritic {
    public let shape: CriticShape
    public let parameters: Parameters
    public let target: Parameters
    let q1: FeedForward
    let q2: FeedForward
    let input: Matrix          // concat(s, a) [B, O + A]
    let inputGradient: Matrix
    let scratchGradient: Matrix

    public init(shape: CriticShape) {
        self.shape = shape
        var layout = ParameterLayout()
        let width = shape.observationDim + shape.actionDim
        q1 = FeedForward("q1", inputs: width, hiddenDims: shape.hiddenDims, outputs: 1, activation: shape.activation, layout: &layout)
        q2 = FeedForward("q2", inputs: width, hiddenDims: shape.hiddenDims, outputs: 1, activation: shape.activation, layout: &layout)
        parameters = Parameters(layout: layout)
        target = Parameters(layout: layout)
        input = Matrix(rows: 0, columns: width)
        inputGradient = Matrix(rows: 0, columns: width)
        scratchGradient = Matrix(rows: 0, columns: width)
    }

    /// PyTorch-default uniform weights (the Diffusion-QL critic), copied into the target.
    public func initialize(random: inout Philox) {
        parameters.initializeUniform(fanIn: q1.fanIn.merging(q2.fanIn) { a, _ in a }, random: &random)
        target.copy(from: parameters)
    }

    /// Q1 and Q2 [B, 1] of `copy` for observations [B, O] and actions [B, A].
    @discardableResult
    public func forward(observations: Matrix, actions: Matrix, copy: NetworkCopy = .online) -> (q1: Matrix, q2: Matrix) {
        precondition(observations.rows == actions.rows && observations.columns == shape.observationDim && actions.columns == shape.actionDim,
                     "critic input is [\(observations.rows), \(observations.columns)] + [\(actions.rows), \(actions.columns)]")
        let batch = observations.rows, o = shape.observationDim, a = shape.actionDim
        input.resize(rows: batch)
        for row in 0..<batch {
            input.row(row).update(from: observations.row(row), count: o)
            (input.row(row) + o).update(from: actions.row(row), count: a)
        }
        let values = copy == .online ? parameters : target
        return (q1.forward(input, parameters: values), q2.forward(input, parameters: values))
    }

    /// Accumulates parameter gradients for dL/dQ1, dL/dQ2 [B, 1] (either may be nil) of the last online `forward`;
    /// writes dL/da [B, A] into `actionGradient` when given.
    public func backward(q1Gradient: Matrix?, q2Gradient: Matrix?, actionGradient: Matrix? = nil) {
        let batch = input.rows
        let wantsInput = actionGradient != nil
        var accumulated = false
        if let actionGradient { actionGradient.resize(rows: batch); actionGradient.fill(0) }
        for (network, gradient) in [(q1, q1Gradient), (q2, q2Gradient)] {
            guard let gradient else { continue }
            network.backward(input: input, outputGradient: gradient, inputGradient: wantsInput ? scratchGradient : nil, parameters: parameters)
            guard let actionGradient else { continue }
            for row in 0..<batch {
                let source = scratchGradient.row(row) + shape.observationDim, destination = actionGradient.row(row)
                for column in 0..<shape.actionDim { destination[column] += source[column] }
            }
            accumulated = true
        }
        precondition(!wantsInput || accumulated, "an action gradient needs at least one critic gradient")
    }

    /// φ′ ← τφ + (1 − τ)φ′.
    public func updateTarget(rate: Float) { polyakUpdate(target: target, source: parameters, rate: rate) }
}

/// The state-value network V(s) of EDP's IQL variant (§3.6), same trunk as the Q networks.
public final class ValueNetwork {
    public let parameters: Parameters
    let network: FeedForward

    public init(shape: CriticShape) {
        var layout = ParameterLayout()
        network = FeedForward("v", inputs: shape.observationDim, hiddenDims: shape.hiddenDims, outputs: 1, activation: shape.activation, layout: &layout)
        parameters = Parameters(layout: layout)
    }

    public func initialize(random: inout Philox) { parameters.initializeUniform(fanIn: network.fanIn, random: &random) }

    /// V [B, 1] for observations [B, O].
    @discardableResult
    public func forward(_ observations: Matrix) -> Matrix { network.forward(observations, parameters: parameters) }

    /// Accumulates parameter gradients for dL/dV [B, 1] of the last `forward` on `observations`.
    public func backward(observations: Matrix, valueGradient: Matrix) {
        network.backward(input: observations, outputGradient: valueGradient, inputGradient: nil, parameters: parameters)
    }
}
