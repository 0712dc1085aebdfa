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
/// The noise and timesteps are drawn for the whole minibatch; its rows are then split over `shards` workers, each with
/// a replica of the base network, and their gradients summed in a fixed order (docs/learner-scaling.md).
public final class DiffusionBehaviourCloning: BehaviourCloningObjective {
    public let policy: DiffusionPolicy
    let noisy: Matrix, noise: Matrix
    var timesteps: [Float] = []
    let workers: [BehaviourCloningShard]

    public init(policy: DiffusionPolicy, shards: Int = 1) {
        precondition(shards >= 1, "behaviour cloning needs at least one shard")
        self.policy = policy
        let width = policy.settings.chunkWidth
        noisy = Matrix(rows: 0, columns: width)
        noise = Matrix(rows: 0, columns: width)
        let observationWidth = policy.base.shape.observationDim
        workers = ([policy.base] + (1..<shards).map { _ in policy.base.replica() }).map {
            BehaviourCloningShard(network: $0, observationWidth: observationWidth, chunkWidth: width)
        }
    }

    public var parameters: Parameters { policy.base.parameters }

    public func lossAndGradient(observations: Matrix, chunks: Matrix, random: inout Philox) -> Double {
        let width = policy.settings.chunkWidth, size = chunks.rows
        noisy.resize(rows: size); noise.resize(rows: size)
        if timesteps.count != size { timesteps = [Float](repeating: 0, count: size) }
        random.fillNormal(noise.data, count: size * width)
        for row in 0..<size {
            let t = random.integer(below: policy.settings.denoisingSteps)
            timesteps[row] = Float(t)
            let a = Float(policy.schedule.sqrtAlphasCumulative[t]), b = Float(policy.schedule.sqrtOneMinusAlphasCumulative[t])
            let clean = chunks.row(row), epsilon = noise.row(row), destination = noisy.row(row)
            for element in 0..<width { destination[element] = a * clean[element] + b * epsilon[element] }
        }
        let scale = 2 / Float(size * width), count = workers.count
        Parallel.forEach(count) { index in
            let worker = workers[index], rows = Parallel.range(shard: index, of: count, total: size)
            worker.take(rows: rows, observations: observations, inputs: noisy, targets: noise)
            worker.network.parameters.zeroGradients()
            worker.loss = 0
            guard !rows.isEmpty else { return }
            let predicted = timesteps.withUnsafeBufferPointer {
                worker.network.forward(noisyChunk: worker.inputs, timesteps: $0.baseAddress! + rows.lowerBound, observation: worker.observations)
            }
            for element in 0..<(rows.count * width) {
                let error = predicted.data[element] - worker.targets.data[element]
                worker.loss += Double(error * error)
                worker.gradient.data[element] = scale * error
            }
            worker.network.backward(outputGradient: worker.gradient)
        }
        Parallel.treeSum(workers.map { $0.network.parameters.gradients }, count: parameters.count, workers: count)
        return workers.reduce(0) { $0 + $1.loss } / Double(size * width)
    }
}

/// One worker's rows of a behaviour-cloning minibatch and its network replica (shard 0: the trained network).
final class BehaviourCloningShard {
    let network: DiffusionMLP
    let observations: Matrix, inputs: Matrix, targets: Matrix, gradient: Matrix
    var loss = 0.0

    init(network: DiffusionMLP, observationWidth: Int, chunkWidth: Int) {
        self.network = network
        observations = Matrix(rows: 0, columns: observationWidth)
        inputs = Matrix(rows: 0, columns: chunkWidth)
        targets = Matrix(rows: 0, columns: chunkWidth)
        gradient = Matrix(rows: 0, columns: chunkWidth)
    }

    /// Copies `rows` of the minibatch's matrices into this shard's.
    func take(rows: Range<Int>, observations source: Matrix, inputs sourceInputs: Matrix, targets sourceTargets: Matrix) {
        for (matrix, from) in [(observations, source), (inputs, sourceInputs), (targets, sourceTargets)] {
            matrix.resize(rows: rows.count)
            matrix.data.update(from: from.row(rows.lowerBound), count: rows.count * from.columns)
        }
        gradient.resize(rows: rows.count)
    }
}

/// The Gaussian baseline's pre-training (docs/algorithms.md §6): negative log-likelihood of the chunk with the std fixed
/// at `fixed_std`, i.e. mean over elements of (a − μ)²/(2σ²) + ln σ + ½ ln 2π. The std parameter is not trained.
/// Rows are split over `shards` replicas of the network like the diffusion loss's.
public final class GaussianBehaviourCloning: BehaviourCloningObjective {
    public let policy: GaussianPolicy
    let networks: [GaussianMLP]
    let workers: [GaussianCloningShard]

    public init(policy: GaussianPolicy, shards: Int = 1) {
        precondition(shards >= 1, "behaviour cloning needs at least one shard")
        self.policy = policy
        networks = [policy.network] + (1..<shards).map { _ in policy.network.replica() }
        workers = networks.map { GaussianCloningShard(network: $0) }
    }

    public var parameters: Parameters { policy.network.parameters }

    public func lossAndGradient(observations: Matrix, chunks: Matrix, random: inout Philox) -> Double {
        let std = Float(policy.shape.fixedStd), count = chunks.count, size = chunks.rows
        let constant = Double(logf(std)) + 0.5 * log(2 * Double.pi)
        let shards = workers.count
        Parallel.forEach(shards) { index in
            let worker = workers[index], rows = Parallel.range(shard: index, of: shards, total: size)
            worker.network.parameters.zeroGradients()
            worker.loss = 0
            guard !rows.isEmpty else { return }
            worker.observations.resize(rows: rows.count)
            worker.observations.data.update(from: observations.row(rows.lowerBound), count: rows.count * observations.columns)
            let mean = worker.network.forward(worker.observations)
            worker.meanGradient.resize(rows: rows.count)
            let targets = chunks.row(rows.lowerBound)
            for element in 0..<(rows.count * chunks.columns) {
                let difference = targets[element] - mean.data[element]
                worker.loss += Double(difference * difference / (2 * std * std)) + constant
                worker.meanGradient.data[element] = -difference / (std * std) / Float(count)
            }
            worker.network.backward(input: worker.observations, meanGradient: worker.meanGradient, stdGradient: worker.stdGradient)
        }
        Parallel.treeSum(workers.map { $0.network.parameters.gradients }, count: parameters.count, workers: shards)
        return workers.reduce(0) { $0 + $1.loss } / Double(count)
    }
}

/// One worker's rows of a Gaussian behaviour-cloning minibatch and its network replica.
final class GaussianCloningShard {
    let network: GaussianMLP
    let observations: Matrix, meanGradient: Matrix
    let stdGradient: [Float]
    var loss = 0.0

    init(network: GaussianMLP) {
        self.network = network
        observations = Matrix(rows: 0, columns: network.shape.observationDim)
        meanGradient = Matrix(rows: 0, columns: network.shape.chunkWidth)
        stdGradient = [Float](repeating: 0, count: network.shape.actionDim)
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
