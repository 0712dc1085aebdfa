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

/// Settings of diffusion behaviour cloning (dppo.md §3).
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

/// Trains ε_θ with L = mean (ε_θ(√ᾱ_t·a₀ + √(1−ᾱ_t)·ε, t, o) − ε)², t ~ U{0…K−1}; keeps an EMA copy.
public final class DiffusionPretrainer {
    public let policy: DiffusionPolicy
    public let settings: PretrainingSettings
    public let optimizer: Adam
    public let ema: Parameters
    public let schedule: CosineWarmupSchedule
    var random: Philox
    public private(set) var gradientSteps = 0
    let noisy: Matrix, noise: Matrix, observations: Matrix, targets: Matrix, gradient: Matrix
    var timesteps: [Float] = []

    public init(policy: DiffusionPolicy, settings: PretrainingSettings, seed: UInt64) {
        self.policy = policy
        self.settings = settings
        let network = policy.base
        optimizer = Adam(parameters: network.parameters, learningRate: Float(settings.minLearningRate), weightDecay: Float(settings.weightDecay))
        var layout = ParameterLayout()
        for entry in network.parameters.entries { _ = layout.add(entry.name, shape: entry.shape) }
        ema = Parameters(layout: layout)
        ema.copy(from: network.parameters)
        schedule = CosineWarmupSchedule(maxLearningRate: settings.learningRate, minLearningRate: settings.minLearningRate,
                                        firstCycleSteps: max(settings.epochs, settings.warmupEpochs + 1), warmupSteps: settings.warmupEpochs)
        random = Philox(seed: seed, stream: 0xBC)
        let width = policy.settings.chunkWidth
        noisy = Matrix(rows: 0, columns: width)
        noise = Matrix(rows: 0, columns: width)
        targets = Matrix(rows: 0, columns: width)
        gradient = Matrix(rows: 0, columns: width)
        observations = Matrix(rows: 0, columns: network.shape.observationDim)
    }

    /// One epoch over a shuffled dataset; returns the mean loss. The learning rate follows the
    /// per-epoch cosine schedule (lr(epoch 0) = min, as in the reference).
    public func trainEpoch(_ dataset: ChunkDataset, epoch: Int) -> Double {
        optimizer.learningRate = Float(schedule.learningRate(step: epoch))
        var order: [Int] = []
        random.permutation(&order, count: dataset.count)
        let batchSize = min(settings.batchSize, dataset.count)
        var lossSum = 0.0, batches = 0
        var start = 0
        while start + batchSize <= dataset.count {
            lossSum += step(dataset, indices: order[start..<(start + batchSize)])
            batches += 1
            gradientSteps += 1
            if epoch < settings.emaStartEpoch {
                ema.copy(from: policy.base.parameters)
            } else if gradientSteps % settings.emaEvery == 0 {
                let decay = Float(settings.emaDecay)
                let live = policy.base.parameters.values, average = ema.values
                for index in 0..<ema.count { average[index] = decay * average[index] + (1 - decay) * live[index] }
            }
            start += batchSize
        }
        return lossSum / Double(max(batches, 1))
    }

    func step(_ dataset: ChunkDataset, indices: ArraySlice<Int>) -> Double {
        let network = policy.base
        let width = policy.settings.chunkWidth
        let size = indices.count
        noisy.resize(rows: size); noise.resize(rows: size); observations.resize(rows: size); gradient.resize(rows: size)
        if timesteps.count != size { timesteps = [Float](repeating: 0, count: size) }
        random.fillNormal(noise.data, count: size * width)
        for (slot, sample) in indices.enumerated() {
            let t = random.integer(below: policy.settings.denoisingSteps)
            timesteps[slot] = Float(t)
            let a = Float(policy.schedule.sqrtAlphasCumulative[t]), b = Float(policy.schedule.sqrtOneMinusAlphasCumulative[t])
            let clean = dataset.chunks.row(sample), epsilon = noise.row(slot), destination = noisy.row(slot)
            for element in 0..<width { destination[element] = a * clean[element] + b * epsilon[element] }
            observations.row(slot).update(from: dataset.observations.row(sample), count: observations.columns)
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
        optimizer.update()
        return loss / Double(size * width)
    }

    /// Copies the EMA weights into both networks: the starting point of fine-tuning.
    public func finish() {
        policy.base.parameters.copy(from: ema)
        policy.fineTuned.parameters.copy(from: ema)
    }
}
