import Foundation
import Algorithms
import CMPI
import Networks
import Tensors

/// MPI_COMM_WORLD of a learner started as several processes (`mpirun -np N dppo learner …`; docs/learner-scaling.md).
/// Rank 0 is the learner the actors know; the other ranks only share its updates.
public final class MPIGroup: RankGroup {
    public let rank: Int
    public let size: Int

    /// The group when this process was started by `mpirun` (or `srun` with PMIx) with more than one rank; nil otherwise.
    /// Initialises MPI.
    public static func launched(environment: [String: String] = ProcessInfo.processInfo.environment) -> MPIGroup? {
        let sizeText = environment["OMPI_COMM_WORLD_SIZE"] ?? (environment["PMIX_RANK"] != nil ? environment["SLURM_STEP_NUM_TASKS"] : nil)
        guard let sizeText, let size = Int(sizeText), size > 1 else { return nil }
        return MPIGroup()
    }

    /// Only the main thread calls MPI (the shards' workers never do), which MPI_THREAD_FUNNELED covers; the process
    /// has other threads (workers, the control server, nanomsg's), so it must not claim MPI_THREAD_SINGLE.
    init() {
        var provided: Int32 = 0
        MPI_Init_thread(nil, nil, Int32(dppo_mpi_thread_funneled()), &provided)
        if provided < Int32(dppo_mpi_thread_funneled()) {
            FileHandle.standardError.write(Data("learner: this MPI offers thread level \(provided), below MPI_THREAD_FUNNELED; expect trouble\n".utf8))
        }
        var rank: Int32 = 0, size: Int32 = 0
        MPI_Comm_rank(dppo_mpi_comm_world(), &rank)
        MPI_Comm_size(dppo_mpi_comm_world(), &size)
        self.rank = Int(rank)
        self.size = Int(size)
    }

    public func allGather(_ local: UnsafePointer<Float>, counts: [Int], into result: UnsafeMutablePointer<Float>) {
        let counts32 = counts.map { Int32($0) }
        var displacements: [Int32] = [0]
        for count in counts32.dropLast() { displacements.append(displacements.last! + count) }
        MPI_Allgatherv(local, counts32[rank], dppo_mpi_float(), result, counts32, displacements, dppo_mpi_float(), dppo_mpi_comm_world())
    }

    public func allGather(_ local: [Double]) -> [Double] {
        var result = [Double](repeating: 0, count: local.count * size)
        local.withUnsafeBufferPointer { send in
            result.withUnsafeMutableBufferPointer { receive in
                _ = MPI_Allgather(send.baseAddress, Int32(local.count), dppo_mpi_double(), receive.baseAddress, Int32(local.count),
                                  dppo_mpi_double(), dppo_mpi_comm_world())
            }
        }
        return result
    }

    /// Rank 0's `bytes` bytes at `buffer` into every rank's, in pieces MPI's Int32 counts can hold.
    func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int) {
        var offset = 0
        while offset < bytes {
            let piece = min(bytes - offset, 1 << 30)
            MPI_Bcast(buffer + offset, Int32(piece), dppo_mpi_byte(), 0, dppo_mpi_comm_world())
            offset += piece
        }
    }

    func broadcast(_ floats: UnsafeMutablePointer<Float>, count: Int) { broadcast(UnsafeMutableRawPointer(floats), bytes: count * 4) }

    func broadcast(_ array: inout [UInt8]) { array.withUnsafeMutableBytes { broadcast($0.baseAddress!, bytes: $0.count) } }

    func broadcast(_ array: inout [Float]) { array.withUnsafeMutableBytes { broadcast($0.baseAddress!, bytes: $0.count) } }

    /// Rank 0's `Data` on every rank (its length first, waited for idly).
    package func broadcast(_ data: Data?) -> Data {
        var length: [Int64] = [Int64(data?.count ?? 0), 0]
        broadcastIdly(&length)
        var bytes = [UInt8](data ?? Data(count: Int(length[0])))
        if bytes.count != Int(length[0]) { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
        broadcast(&bytes)
        return Data(bytes)
    }

    /// Rank 0's two words on every rank, polling with short sleeps: a rank waiting for the next batch (the actors are
    /// rolling out) takes no core from them, as a blocking broadcast, which spins, would.
    package func broadcastIdly(_ words: inout [Int64]) {
        var request = MPI_Request(bitPattern: 0)
        words.withUnsafeMutableBytes { buffer in
            MPI_Ibcast(buffer.baseAddress, Int32(buffer.count), dppo_mpi_byte(), 0, dppo_mpi_comm_world(), &request)
            var done: Int32 = 0
            while true {
                MPI_Test(&request, &done, nil)
                if done != 0 { break }
                usleep(500)
            }
        }
    }

    /// Ends every rank of the job at once (a rank that fails must not leave the others waiting in a collective call).
    public func abort(code: Int32) -> Never {
        MPI_Abort(dppo_mpi_comm_world(), code)
        exit(code)
    }

    public func finalize() { MPI_Finalize() }
}

/// What rank 0 tells the other learner ranks: the state to start from, then each iteration's batch, and when to stop.
/// All ranks then run the same update on the same batch, each on its share (`PPOUpdate.group`), and compare parameter
/// checksums after it.
struct LearnerRanks {
    let group: MPIGroup

    /// What every rank must agree on before an update is built: rank 0's shard count (which the others adopt: the
    /// shards' parts of every pass are cut from the total over all ranks) and the settings that shape the update.
    struct Setup: Codable, Equatable {
        var shards: Int
        var configHash: UInt64
        var hyperparameters: PPOHyperparameters
        var streams: Int, steps: Int, recordWidth: Int

        init(shards: Int, config: RunConfig) {
            self.shards = shards
            configHash = config.compatibilityHash
            hyperparameters = config.train.dppo
            streams = config.streams
            steps = config.train.stepsPerIteration
            recordWidth = config.recordWidth
        }
    }

    /// Rank 0 sends its setup; the other ranks return it, after checking that their own config gives the same one
    /// (but for the shard count). Rank 0 must call this before `shareState`.
    func agree(on setup: Setup) throws -> Setup {
        let data = group.broadcast(group.rank == 0 ? try JSONEncoder().encode(setup) : nil)
        var received = try JSONDecoder().decode(Setup.self, from: data)
        let shards = received.shards
        received.shards = setup.shards
        guard received == setup else {
            throw ClusterError.ranks("learner rank \(group.rank): its config differs from rank 0's (config hash \(String(setup.configHash, radix: 16)) vs "
                              + "\(String(received.configHash, radix: 16)), or train.* or the batch size): start every rank with the same config and --set")
        }
        received.shards = shards
        return received
    }

    /// Everything an update carries from one iteration to the next, beyond the parameter and moment buffers.
    struct CarriedState: Codable {
        var actorStep: Int, criticStep: Int
        var actorScheduleSteps: Int, criticScheduleSteps: Int
        var random: Philox
        var rewardScaler: RunningRewardScaler?
    }

    /// Rank 0 sends its update's state (after a resume, the checkpoint's); the other ranks take it. Afterwards every
    /// rank's actor, frozen base, critic, optimizers, schedules, reward scaler and random stream are the same.
    func shareState(update: PPOUpdate, base: Parameters) throws {
        for parameters in [update.actor.trainableParameters, base, update.critic.parameters] {
            group.broadcast(parameters.values, count: parameters.count)
        }
        var carried = CarriedState(actorStep: update.actorOptimizer.step, criticStep: update.criticOptimizer.step,
                                   actorScheduleSteps: update.actorScheduleSteps, criticScheduleSteps: update.criticScheduleSteps,
                                   random: update.random, rewardScaler: update.rewardScaler)
        let data = group.broadcast(group.rank == 0 ? try JSONEncoder().encode(carried) : nil)
        carried = try JSONDecoder().decode(CarriedState.self, from: data)
        for (optimizer, step) in [(update.actorOptimizer, carried.actorStep), (update.criticOptimizer, carried.criticStep)] {
            var state = optimizer.state()
            group.broadcast(&state.firstMoment)
            group.broadcast(&state.secondMoment)
            optimizer.restore(step: step, firstMoment: state.firstMoment, secondMoment: state.secondMoment)
        }
        update.actorScheduleSteps = carried.actorScheduleSteps
        update.criticScheduleSteps = carried.criticScheduleSteps
        update.random = carried.random
        update.rewardScaler = carried.rewardScaler
    }

    /// Rank 0: the next iteration (0-based) and its batch. Others: waits for them; nil when rank 0 said stop.
    func shareWork(iteration: Int?, batch: RolloutBatch) -> Int? {
        var words: [Int64] = [iteration == nil ? 0 : 1, Int64(iteration ?? 0)]
        group.broadcastIdly(&words)
        guard words[0] == 1 else { return nil }
        for matrix in [batch.observations, batch.records, batch.finalObservations, batch.bootstrapObservations] {
            group.broadcast(matrix.data, count: matrix.count)
        }
        group.broadcast(&batch.rewards)
        group.broadcast(&batch.terminated)
        group.broadcast(&batch.truncated)
        group.broadcast(&batch.firsts)
        return Int(words[1])
    }

    /// Every rank's parameter checksum after the update of `iteration` (1-based); throws on every rank when they differ.
    func checkAgreement(update: PPOUpdate, iteration: Int) throws {
        let checksums = group.allGather([Double(bitPattern: update.parameterChecksum())]).map(\.bitPattern)
        guard Set(checksums).count == 1 else {
            throw ClusterError.ranks("learner ranks diverged after iteration \(iteration): parameter checksums by rank "
                              + checksums.map { String($0, radix: 16) }.joined(separator: ", ") + "; stopping (the last checkpoint is intact)")
        }
    }
}

/// A learner rank other than 0: no sockets, no files; it takes rank 0's state, then shares every update until told to stop.
public func runLearnerRank(config: RunConfig, group: MPIGroup, log: (String) -> Void = Cluster.log) throws {
    BLAS.setThreads(1)
    let ranks = LearnerRanks(group: group)
    let setup = try ranks.agree(on: LearnerRanks.Setup(shards: config.workerThreads(for: .learner), config: config))
    let model = PolicyModel(config: config)
    let critic = CriticMLP(observationDim: config.networkShape.observationDim, mlpDims: config.model.criticDims)
    let update = PPOUpdate(actor: model.makePPOActor(), critic: critic, hyperparameters: config.train.dppo, streams: config.streams,
                           seed: config.seed, shards: setup.shards, group: group)
    try ranks.shareState(update: update, base: model.baseParameters)
    log("learner rank \(group.rank)/\(group.size) (pid \(getpid())): sharing rank 0's updates on \(update.shardCount) threads")
    let batch = RolloutBatch(streams: config.streams, steps: config.train.stepsPerIteration, observationWidth: config.networkShape.observationDim,
                             recordWidth: config.recordWidth)
    while let iteration = ranks.shareWork(iteration: nil, batch: batch) {
        _ = update.update(batch: batch, iteration: iteration)
        try ranks.checkAgreement(update: update, iteration: iteration + 1)
    }
}
