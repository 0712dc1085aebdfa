import Foundation
import Diffusion
import Networks
import Tensors

/// Behaviour-cloning data: normalised conditioning observations and the action chunks that followed them.
public struct ChunkDataset {
    public let observations: Matrix  // [N, To·Do] in [−1, 1]
    public let chunks: Matrix        // [N, Tp·Da] in [−1, 1]
    public init(observations: Matrix, chunks: Matrix) {
        precondition(observations.rows == chunks.rows, "dataset has \(observations.rows) observations but \(chunks.rows) chunks")
        self.observations = observations
        self.chunks = chunks
    }
    public var count: Int { observations.rows }
}

/// Settings of diffusion behaviour cloning (docs/algorithms.md §3).
public struct PretrainingSettings: Sendable, Equatable, Codable {
    public var epochs = 200
    public var batchSize = 128
    public var learningRate = 1e-3
    public var minLearningRate = 1e-4
    public var warmupEpochs = 1
    public var weightDecay = 1e-6
    public var emaDecay = 0.995
    public var emaEvery = 10
    public var emaStartEpoch = 20
    public init() {}
}

/// A behaviour-cloning loss: given a minibatch of normalised (observation, chunk) rows, zero the gradients of
/// `parameters`, accumulate ∂L/∂parameters and return L.
public protocol BehaviourCloningObjective: AnyObject {
    var parameters: Parameters { get }
    func lossAndGradient(observations: Matrix, chunks: Matrix, random: inout Philox) -> Double
}

/// The diffusion loss of docs/algorithms.md §3: L = mean (ε_θ(√ᾱ_t·a₀ + √(1−ᾱ_t)·ε, t, o) − ε)², t ~ U{0…K−1}, on the base network.
public final class DiffusionBehaviourCloning: BehaviourCloningObjective {
    public let policy: DiffusionPolicy
    let noisy: Matrix, noise: Matrix, gradient: Matrix
    var timesteps: [Float] = []

    public init(policy: DiffusionPolicy) {
        self.policy = policy
        let width = policy.settings.chunkWidth
        noisy = Matrix(rows: 0, columns: width)
        noise = Matrix(rows: 0, columns: width)
        gradient = Matrix(rows: 0, columns: width)
    }

    public var parameters: Parameters { policy.base.parameters }

    public func lossAndGradient(observations: Matrix, chunks: Matrix, random: inout Philox) -> Double {
        let network = policy.base
        let width = policy.settings.chunkWidth, size = chunks.rows
        noisy.resize(rows: size); noise.resize(rows: size); gradient.resize(rows: size)
        if timesteps.count != size { timesteps = [Float](repeating: 0, count: size) }
        random.fillNormal(noise.data, count: size * width)
        for row in 0..<size {
            let t = random.integer(below: policy.settings.denoisingSteps)
            timesteps[row] = Float(t)
            let a = Float(policy.schedule.sqrtAlphasCumulative[t]), b = Float(policy.schedule.sqrtOneMinusAlphasCumulative[t])
            let clean = chunks.row(row), epsilon = noise.row(row), destination = noisy.row(row)
            for element in 0..<width { destination[element] = a * clean[element] + b * epsilon[element] }
        }
        network.parameters.zeroGradients()
        let predicted = timesteps.withUnsafeBufferPointer { network.forward(noisyChunk: noisy, timesteps: $0.baseAddress!, observation: observations) }
        var loss = 0.0
        let scale = 2 / Float(size * width)
        for element in 0..<(size * width) {
            let error = predicted.data[element] - noise.data[element]
            loss += Double(error * error)
            gradient.data[element] = scale * error
        }
        network.backward(outputGradient: gradient)
        return loss / Double(size * width)
    }
}

/// The Gaussian baseline's pre-training (docs/algorithms.md §6): negative log-likelihood of the chunk with the std fixed
/// at `fixed_std`, i.e. mean over elements of (a − μ)²/(2σ²) + ln σ + ½ ln 2π. The std parameter is not trained.
public final class GaussianBehaviourCloning: BehaviourCloningObjective {
    public let policy: GaussianPolicy
    let meanGradient: Matrix

    public init(policy: GaussianPolicy) {
        self.policy = policy
        meanGradient = Matrix(rows: 0, columns: policy.shape.chunkWidth)
    }

    public var parameters: Parameters { policy.network.parameters }

    public func lossAndGradient(observations: Matrix, chunks: Matrix, random: inout Philox) -> Double {
        let network = policy.network
        let std = Float(policy.shape.fixedStd), count = chunks.count
        network.parameters.zeroGradients()
        let mean = network.forward(observations)
        meanGradient.resize(rows: chunks.rows)
        var loss = 0.0
        let constant = Double(logf(std)) + 0.5 * log(2 * Double.pi)
        for element in 0..<count {
            let difference = chunks.data[element] - mean.data[element]
            loss += Double(difference * difference / (2 * std * std)) + constant
            meanGradient.data[element] = -difference / (std * std) / Float(count)
        }
        network.backward(input: observations, meanGradient: meanGradient, stdGradient: [Float](repeating: 0, count: policy.shape.actionDim))
        return loss / Double(count)
    }
}

/// Behaviour cloning with the reference's optimizer and schedule (docs/algorithms.md §3): AdamW, cosine LR with warm-up
/// stepped per epoch (lr(epoch 0) = min), and an EMA copy updated every `update_ema_freq` steps from
/// `epoch_start_ema` on (overwritten with the live weights before). Fine-tuning starts from the EMA weights.
public final class Pretrainer {
    public let objective: BehaviourCloningObjective
    public let settings: PretrainingSettings
    public let optimizer: Adam
    public let ema: Parameters
    public let schedule: CosineWarmupSchedule
    var random: Philox
    public private(set) var gradientSteps = 0
    let observations: Matrix, chunks: Matrix

    public init(objective: BehaviourCloningObjective, settings: PretrainingSettings, seed: UInt64) {
        self.objective = objective
        self.settings = settings
        let parameters = objective.parameters
        optimizer = Adam(parameters: parameters, learningRate: Float(settings.minLearningRate), weightDecay: Float(settings.weightDecay))
        var layout = ParameterLayout()
        for entry in parameters.entries { _ = layout.add(entry.name, shape: entry.shape) }
        ema = Parameters(layout: layout)
        ema.copy(from: parameters)
        schedule = CosineWarmupSchedule(maxLearningRate: settings.learningRate, minLearningRate: settings.minLearningRate,
                                        firstCycleSteps: max(settings.epochs, settings.warmupEpochs + 1), warmupSteps: settings.warmupEpochs)
        random = Philox(seed: seed, stream: 0xBC)
        observations = Matrix(rows: 0, columns: 1)
        chunks = Matrix(rows: 0, columns: 1)
    }

    /// One epoch over a shuffled dataset (the last partial batch dropped); returns the mean loss.
    public func trainEpoch(_ dataset: ChunkDataset, epoch: Int) -> Double {
        optimizer.learningRate = Float(schedule.learningRate(step: epoch))
        var order: [Int] = []
        random.permutation(&order, count: dataset.count)
        let batchSize = min(settings.batchSize, dataset.count)
        let batchObservations = Matrix(rows: batchSize, columns: dataset.observations.columns)
        let batchChunks = Matrix(rows: batchSize, columns: dataset.chunks.columns)
        var lossSum = 0.0, batches = 0
        var start = 0
        while start + batchSize <= dataset.count {
            for slot in 0..<batchSize {
                let sample = order[start + slot]
                batchObservations.row(slot).update(from: dataset.observations.row(sample), count: dataset.observations.columns)
                batchChunks.row(slot).update(from: dataset.chunks.row(sample), count: dataset.chunks.columns)
            }
            lossSum += objective.lossAndGradient(observations: batchObservations, chunks: batchChunks, random: &random)
            optimizer.update()
            batches += 1
            gradientSteps += 1
            if epoch < settings.emaStartEpoch {
                ema.copy(from: objective.parameters)
            } else if gradientSteps % settings.emaEvery == 0 {
                let decay = Float(settings.emaDecay)
                let live = objective.parameters.values, average = ema.values
                for index in 0..<ema.count { average[index] = decay * average[index] + (1 - decay) * live[index] }
            }
            start += batchSize
        }
        return lossSum / Double(max(batches, 1))
    }

    /// Copies the EMA weights into every copy given (the frozen base and the trained copy of the policy).
    public func finish(into copies: [Parameters]) {
        for copy in copies { copy.copy(from: ema) }
    }
}
