import Tensors

/// The reference's ResidualMLP: a linear input layer, pre-activation residual blocks, a linear output layer.
///
/// dims = [inputs] + hidden + [outputs] with `hidden` = [h, h, …] of odd length 2n+1 gives n blocks:
///   h₀ = W_in·x + b
///   hᵢ₊₁ = hᵢ + W_b·act(W_a·act(hᵢ) + b_a) + b_b
///   y = W_out·h_n + b
public final class ResidualMLP {
    public let inputs: Int
    public let hidden: Int
    public let outputs: Int
    public let activation: Activation
    let inputLayer: Linear
    let blocks: [(a: Linear, b: Linear)]
    let outputLayer: Linear

    // Activations saved for the backward pass, one set per block.
    var hiddenStates: [Matrix]       // h₀ … h_n
    var blockActivations: [Matrix]   // act(hᵢ)
    var blockPreActivations: [Matrix] // W_a·act(hᵢ) + b_a
    var blockInnerActivations: [Matrix] // act(W_a·act(hᵢ) + b_a)
    public let output: Matrix
    // Gradient scratch.
    let hiddenGradient: Matrix
    let scratchGradient: Matrix
    let scratchGradient2: Matrix

    public init(_ name: String, inputs: Int, hiddenDims: [Int], outputs: Int, activation: Activation, layout: inout ParameterLayout) {
        precondition(!hiddenDims.isEmpty && hiddenDims.count % 2 == 1, "ResidualMLP needs an odd number of hidden dims (2·blocks + 1)")
        precondition(Set(hiddenDims).count == 1, "ResidualMLP hidden dims must all be equal")
        let width = hiddenDims[0]
        self.inputs = inputs
        self.hidden = width
        self.outputs = outputs
        self.activation = activation
        inputLayer = Linear("\(name).input", inputs: inputs, outputs: width, layout: &layout)
        blocks = (0..<(hiddenDims.count - 1) / 2).map { index in
            (Linear("\(name).block\(index).a", inputs: width, outputs: width, layout: &layout),
             Linear("\(name).block\(index).b", inputs: width, outputs: width, layout: &layout))
        }
        outputLayer = Linear("\(name).output", inputs: width, outputs: outputs, layout: &layout)
        hiddenStates = (0...blocks.count).map { _ in Matrix(rows: 0, columns: width) }
        blockActivations = blocks.map { _ in Matrix(rows: 0, columns: width) }
        blockPreActivations = blocks.map { _ in Matrix(rows: 0, columns: width) }
        blockInnerActivations = blocks.map { _ in Matrix(rows: 0, columns: width) }
        output = Matrix(rows: 0, columns: outputs)
        hiddenGradient = Matrix(rows: 0, columns: width)
        scratchGradient = Matrix(rows: 0, columns: width)
        scratchGradient2 = Matrix(rows: 0, columns: width)
    }

    public var fanIn: [String: Int] {
        var result = inputLayer.fanIn.merging(outputLayer.fanIn) { a, _ in a }
        for block in blocks {
            result.merge(block.a.fanIn) { a, _ in a }
            result.merge(block.b.fanIn) { a, _ in a }
        }
        return result
    }

    /// Forward pass over all rows of `input`; the result is in `output`.
    @discardableResult
    public func forward(_ input: Matrix, parameters: Parameters) -> Matrix {
        inputLayer.forward(input, into: hiddenStates[0], parameters: parameters)
        for (index, block) in blocks.enumerated() {
            activation.forward(hiddenStates[index], into: blockActivations[index])
            block.a.forward(blockActivations[index], into: blockPreActivations[index], parameters: parameters)
            activation.forward(blockPreActivations[index], into: blockInnerActivations[index])
            hiddenStates[index + 1].copy(from: hiddenStates[index])
            block.b.forward(blockInnerActivations[index], into: hiddenStates[index + 1], parameters: parameters, accumulate: true)
        }
        outputLayer.forward(hiddenStates[blocks.count], into: output, parameters: parameters)
        return output
    }

    /// Backward pass for the last `forward`; accumulates parameter gradients and writes dx when asked.
    public func backward(input: Matrix, outputGradient: Matrix, inputGradient: Matrix?, parameters: Parameters) {
        outputLayer.backward(input: hiddenStates[blocks.count], outputGradient: outputGradient, inputGradient: hiddenGradient, parameters: parameters)
        for (index, block) in blocks.enumerated().reversed() {
            block.b.backward(input: blockInnerActivations[index], outputGradient: hiddenGradient, inputGradient: scratchGradient, parameters: parameters)
            activation.backward(input: blockPreActivations[index], outputGradient: scratchGradient, inputGradient: scratchGradient)
            block.a.backward(input: blockActivations[index], outputGradient: scratchGradient, inputGradient: scratchGradient2, parameters: parameters)
            activation.backward(input: hiddenStates[index], outputGradient: scratchGradient2, inputGradient: scratchGradient2)
            let count = hiddenGradient.count
            let gradient = hiddenGradient.data, branch = scratchGradient2.data
            for element in 0..<count { gradient[element] += branch[element] }
        }
        inputLayer.backward(input: input, outputGradient: hiddenGradient, inputGradient: inputGradient, parameters: parameters)
    }
}
