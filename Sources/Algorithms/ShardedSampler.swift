import Diffusion
import Networks
import Tensors

/// Chain sampling split over workers (docs/learner-scaling.md): the rows of a batch are cut into contiguous shards, each
/// sampled by its own replica of the policy (shard 0: the policy itself), and the noise is drawn first, for the whole
/// batch, in exactly the order one `sampleChains` call draws it. The random stream therefore ends where it would with
/// one worker, and each row sees the same noise whatever the shard count; only the rounding of matrix products of
/// other shapes can differ. The learner's evaluation uses it.
public final class ShardedDiffusionSampler: RolloutPolicy {
    public let policy: DiffusionPolicy
    let replicas: [DiffusionPolicy]
    let observationShards: [Matrix], chainShards: [Matrix]
    var noise: [Float] = []

    public init(policy: DiffusionPolicy, shards: Int) {
        precondition(shards >= 1, "a sampler needs at least one shard")
        self.policy = policy
        replicas = [policy] + (1..<shards).map { _ in DiffusionPolicy(replicaOf: policy) }
        observationShards = replicas.map { Matrix(rows: 0, columns: $0.base.shape.observationDim) }
        chainShards = replicas.map { Matrix(rows: 0, columns: $0.settings.chainWidth) }
    }

    public var recordWidth: Int { policy.recordWidth }
    public var actionOffset: Int { policy.actionOffset }
    public var broadcastParameters: Parameters { policy.broadcastParameters }

    public func sample(observations: Matrix, mode: SamplingMode, random: inout Philox, records: Matrix) {
        let rows = observations.rows, width = policy.settings.chunkWidth, calls = policy.settings.samplingSteps + 1
        guard replicas.count > 1, rows > 1 else {
            policy.sampleChains(observations: observations, mode: mode, random: &random, chains: records)
            return
        }
        if noise.count < calls * rows * width { noise = [Float](repeating: 0, count: calls * rows * width) }
        noise.withUnsafeMutableBufferPointer { buffer in
            for call in 0..<calls { random.fillNormal(buffer.baseAddress! + call * rows * width, count: rows * width) }
        }
        noise.withUnsafeBufferPointer { buffer in
            let drawn = buffer.baseAddress!
            sampleShards(observations: observations, mode: mode, chains: records) { part, call, destination in
                destination.update(from: drawn + call * rows * width + part.lowerBound * width, count: part.count * width)
            }
        }
    }

    /// Each shard's contiguous rows of `observations` sampled by its replica, at once, into the same rows of `chains`.
    /// `noise(rows, call, destination)` fills the standard normals of sampling call `call` (0: the initial x, then one
    /// per step) for those rows, `rows.count · Tp·Da` values; it runs on the shards' workers, each with its own rows.
    public func sampleShards(observations: Matrix, mode: SamplingMode, chains: Matrix,
                             noise: (Range<Int>, Int, UnsafeMutablePointer<Float>) -> Void) {
        let rows = observations.rows, count = replicas.count
        chains.resize(rows: rows)
        Parallel.forEach(count) { index in
            let part = Parallel.range(shard: index, of: count, total: rows)
            guard !part.isEmpty else { return }
            let shardObservations = observationShards[index], shardChains = chainShards[index]
            shardObservations.resize(rows: part.count)
            shardObservations.data.update(from: observations.row(part.lowerBound), count: part.count * observations.columns)
            var call = 0
            replicas[index].sampleChains(observations: shardObservations, mode: mode, chains: shardChains) { destination, _ in
                noise(part, call, destination)
                call += 1
            }
            chains.row(part.lowerBound).update(from: shardChains.data, count: part.count * chains.columns)
        }
    }
}
