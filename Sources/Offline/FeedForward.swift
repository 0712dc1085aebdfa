import Networks
import Tensors

/// A plain MLP, the critic trunk of both papers (docs/offline-algorithms.md §1.4): Linear–act per hidden layer, then a
/// linear output layer.
///
/// Shapes: x [B, inputs] → h_i [B, width] → y [B, outputs]. The layers register in a caller's `ParameterLayout`,
/// so two critics can live in one `Parameters` buffer (one optimizer, one gradient norm), and `forward` takes the
/// parameters to use, so an online network and its target copy share one set of activation buffers.
public final class FeedForward {
    public let inputs: Int
    public let outputs: Int
    public let activation: Activation
    let layers: [Linear]
    /// Pre-activations z_i and activations act(z_i) of the hidden layers, saved for `backward`.
    var preActivations: [Matrix]
    var activations: [Matrix]
    /// y of the last `forward`.
    public let output: Matrix
    let hiddenGradient: Matrix
    let hiddenGradient2: Matrix

    public init(_ name: String, inputs: Int, hiddenDims: [Int], outputs: Int, activation: Activation, layout: inout ParameterLayout) {
        precondition(!hiddenDims.isEmpty, "FeedForward needs at least one hidden layer")
        self.inputs = inputs
        self.outputs = outputs
        self.activation = activation
        let widths = [inputs] + hiddenDims + [outputs]
        layers = (0..<(widths.count - 1)).map { Linear("\(name).\($0)", inputs: widths[$0], outputs: widths[$0 + 1], layout: &layout) }
        preActivations = hiddenDims.map { Matrix(rows: 0, columns: $0) }
        activations = hiddenDims.map { Matrix(rows: 0, columns: $0) }
        output = Matrix(rows: 0, columns: outputs)
        precondition(Set(hiddenDims).count == 1, "FeedForward hidden layers must share one width (the gradient scratch is reused)")
        hiddenGradient = Matrix(rows: 0, columns: hiddenDims[0])
        hiddenGradient2 = Matrix(rows: 0, columns: hiddenDims[0])
    }

    public var fanIn: [String: Int] { layers.reduce(into: [:]) { $0.merge($1.fanIn) { a, _ in a } } }

    /// y = W_n·act(… act(W_0·x + b_0) …) + b_n for every row of `input`; the result is `output`.
    @discardableResult
    public func forward(_ input: Matrix, parameters: Parameters) -> Matrix {
        var current = input
        for (index, layer) in layers.dropLast().enumerated() {
            layer.forward(current, into: preActivations[index], parameters: parameters)
            activation.forward(preActivations[index], into: activations[index])
            current = activations[index]
        }
        layers.last!.forward(current, into: output, parameters: parameters)
        return output
    }

    /// Backward pass of the last `forward` (which must have used the same `parameters`): accumulates dW, db and
    /// writes dL/dx into `inputGradient` when given.
    public func backward(input: Matrix, outputGradient: Matrix, inputGradient: Matrix?, parameters: Parameters) {
        let hiddenCount = layers.count - 1
        var upstream = outputGradient
        // Consecutive layers alternate between the two scratch matrices, so a layer never overwrites its own upstream.
        let scratch = [hiddenGradient, hiddenGradient2]
        for index in stride(from: hiddenCount, through: 0, by: -1) {
            let layerInput = index == 0 ? input : activations[index - 1]
            let destination: Matrix? = index == 0 ? inputGradient : scratch[index % 2]
            layers[index].backward(input: layerInput, outputGradient: upstream, inputGradient: destination, parameters: parameters)
            guard index > 0, let destination else { break }
            activation.backward(input: preActivations[index - 1], outputGradient: destination, inputGradient: destination)
            upstream = destination
        }
    }
}
