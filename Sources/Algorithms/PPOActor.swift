import Foundation
import Diffusion
import Networks
import Tensors

/// What the PPO update needs from a policy: its trainable parameters, how a decision's record splits into
/// likelihood terms, and the likelihood of those terms with its backward pass.
/// DPPO's terms are the K′ fine-tuned denoising transitions of a chain; a Gaussian policy has one term per decision.
public protocol PPOActor: AnyObject {
    /// θ: the parameters the actor optimizer steps and the learner broadcasts.
    var trainableParameters: Parameters { get }
    /// Likelihood terms per decision (K′ for DPPO, 1 for a Gaussian policy).
    var termsPerDecision: Int { get }
    /// Floats per decision record (a chain of K′+1 chunks, or one action chunk).
    var recordWidth: Int { get }
    /// Floats per row of `PPOMinibatch.inputs` and `.outputs`: one action chunk, Tp·Da.
    var termWidth: Int { get }
    /// Copies term `term` of a decision's record into row `slot` of `minibatch.inputs` / `.outputs`.
    func gather(record: UnsafePointer<Float>, term: Int, slot: Int, into minibatch: PPOMinibatch)
    /// The clamped log-likelihood of each minibatch row under θ; keeps what its backward needs.
    func logProbabilities(_ minibatch: PPOMinibatch, into result: UnsafeMutablePointer<Float>)
    /// Accumulates ∂L/∂θ given ∂L/∂(log-likelihood) of each row of the last `logProbabilities` call.
    func backwardLogProbabilities(gradient: UnsafePointer<Float>)
    /// Ratio clip ε of term j.
    func clipCoefficient(term: Int, hyperparameters: PPOHyperparameters) -> Double
    /// Factor on the normalised advantage of term j (DPPO's denoising discount γ_d^t).
    func advantageScale(term: Int, hyperparameters: PPOHyperparameters) -> Double
    /// The BC regulariser: samples teacher actions with the frozen base policy for `observations` (one row per distinct
    /// decision, each standing for `weights[row]` of the loss), adds coefficient·∂L_bc/∂θ, returns L_bc = −Σ w·log π_θ.
    func accumulateBehaviourCloningLoss(observations: Matrix, weights: [Float], coefficient: Double, random: inout Philox) -> Double
    /// A shard's copy: the same parameter values (θ and the frozen base), its own gradients and buffers, so that
    /// copies can score and backpropagate different rows at once (docs/learner-scaling.md).
    func makeReplica() -> PPOActor
}

/// DPPO's view of a diffusion policy: term j of a decision is chain transition j (step t = K′−1−j).
public final class DiffusionPPOActor: PPOActor {
    public let policy: DiffusionPolicy
    let teacherChains: Matrix, teacherInputs: Matrix, teacherOutputs: Matrix, teacherObservations: Matrix
    var timesteps: [Int] = []

    public init(policy: DiffusionPolicy) {
        self.policy = policy
        let width = policy.settings.chunkWidth, observationWidth = policy.base.shape.observationDim
        teacherChains = Matrix(rows: 0, columns: policy.settings.chainWidth)
        teacherInputs = Matrix(rows: 0, columns: width)
        teacherOutputs = Matrix(rows: 0, columns: width)
        teacherObservations = Matrix(rows: 0, columns: observationWidth)
    }

    public var trainableParameters: Parameters { policy.fineTuned.parameters }
    public func makeReplica() -> PPOActor { DiffusionPPOActor(policy: DiffusionPolicy(replicaOf: policy)) }
    public var termsPerDecision: Int { policy.settings.fineTunedSteps }
    public var recordWidth: Int { policy.settings.chainWidth }
    public var termWidth: Int { policy.settings.chunkWidth }

    public func gather(record: UnsafePointer<Float>, term j: Int, slot: Int, into minibatch: PPOMinibatch) {
        let width = policy.settings.chunkWidth
        minibatch.inputs.row(slot).update(from: record + j * width, count: width)
        minibatch.outputs.row(slot).update(from: record + (j + 1) * width, count: width)
    }

    public func logProbabilities(_ minibatch: PPOMinibatch, into result: UnsafeMutablePointer<Float>) {
        let kPrime = policy.settings.fineTunedSteps
        timesteps.removeAll(keepingCapacity: true)
        for j in minibatch.terms { timesteps.append(kPrime - 1 - j) }
        policy.transitionLogProbabilities(inputs: minibatch.inputs, outputs: minibatch.outputs, timesteps: timesteps,
                                          observations: minibatch.observations, into: result)
    }

    public func backwardLogProbabilities(gradient: UnsafePointer<Float>) { policy.backwardTransitionLogProbabilities(gradient: gradient) }

    public func clipCoefficient(term j: Int, hyperparameters: PPOHyperparameters) -> Double {
        hyperparameters.clipCoefficient(chainIndex: j, fineTunedSteps: policy.settings.fineTunedSteps)
    }

    public func advantageScale(term j: Int, hyperparameters: PPOHyperparameters) -> Double {
        hyperparameters.denoisingDiscount(chainIndex: j, fineTunedSteps: policy.settings.fineTunedSteps)
    }

    /// §4.7: teacher chains from θ_base, all K′ of their transitions scored under θ.
    public func accumulateBehaviourCloningLoss(observations: Matrix, weights: [Float], coefficient: Double, random: inout Philox) -> Double {
        let kPrime = policy.settings.fineTunedSteps, width = policy.settings.chunkWidth
        let decisions = observations.rows, rows = decisions * kPrime
        policy.sampleChains(observations: observations, mode: .exploration, random: &random, chains: teacherChains, useBasePolicy: true)
        teacherInputs.resize(rows: rows); teacherOutputs.resize(rows: rows); teacherObservations.resize(rows: rows)
        var steps: [Int] = [], rowWeights: [Float] = []
        for decision in 0..<decisions {
            let chain = teacherChains.row(decision)
            for j in 0..<kPrime {
                let row = decision * kPrime + j
                teacherInputs.row(row).update(from: chain + j * width, count: width)
                teacherOutputs.row(row).update(from: chain + (j + 1) * width, count: width)
                teacherObservations.row(row).update(from: observations.row(decision), count: observations.columns)
                steps.append(kPrime - 1 - j)
                rowWeights.append(weights[decision] / Float(kPrime))
            }
        }
        var logProbabilities = [Float](repeating: 0, count: rows)
        logProbabilities.withUnsafeMutableBufferPointer {
            policy.transitionLogProbabilities(inputs: teacherInputs, outputs: teacherOutputs, timesteps: steps, observations: teacherObservations, into: $0.baseAddress!)
        }
        var loss = 0.0
        for row in 0..<rows { loss -= Double(rowWeights[row]) * Double(logProbabilities[row]) }
        let gradient = rowWeights.map { -Float(coefficient) * $0 }
        gradient.withUnsafeBufferPointer { policy.backwardTransitionLogProbabilities(gradient: $0.baseAddress!) }
        return loss
    }
}
