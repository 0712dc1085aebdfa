import Algorithms
import Cluster
import Diffusion
import Foundation
import Networks
import Tensors

/// `dppo bench scaling` (and the `learner_update_scaling` part of `dppo bench`): the learner update of the Hopper
/// workload on 1, 2, 4, … threads, and under `mpirun` across ranks (docs/learner-scaling.md).
extension Benchmarks {
    /// 1, 2, 4, … up to the core count, and the core count itself.
    public static func defaultScalingThreads(cores: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Int] {
        var counts: [Int] = []
        var count = 1
        while count < cores { counts.append(count); count *= 2 }
        return counts + [max(cores, 1)]
    }

    /// One PPO minibatch of the Hopper workload (`learnerSamples` decisions × K′ pairs) split over each thread count in
    /// turn; the bound of t threads is t × the single-thread bound (`sgemmGFLOPS` on one core).
    /// Under `mpirun` (`group`), every thread count runs on every rank, and rank 0 first measures one thread alone
    /// (the other ranks waiting idly) for the efficiency's baseline.
    public static func learnerScaling(threads counts: [Int], learnerSamples: Int = 5_000, seconds: Double = 2, sgemmGFLOPS: Double? = nil,
                                      group: MPIGroup? = nil, log: (String) -> Void = Cluster.log) -> [BenchmarkReport.LearnerScaling] {
        BLAS.setThreads(1)
        let ranks = group?.size ?? 1
        var gflops = sgemmGFLOPS ?? 0
        var oneThread: Double?
        if group == nil || group?.rank == 0 {
            if sgemmGFLOPS == nil { gflops = Benchmarks.sgemmGFLOPS(rows: 8_192, seconds: seconds / 2) }
            if group != nil {
                oneThread = learnerScaling(threads: [1], learnerSamples: learnerSamples, seconds: seconds, sgemmGFLOPS: gflops, log: log)
                    .first?.env_step_samples_per_second
            }
        }
        var counts = counts
        if let group {
            // Rank 0's sgemm rate and thread counts: every rank must make the same sequence of collective calls.
            var words: [Int64] = [Int64(bitPattern: gflops.bitPattern), 0]
            group.broadcastIdly(&words)
            gflops = Double(bitPattern: UInt64(bitPattern: words[0]))
            counts = (try? JSONDecoder().decode([Int].self, from: group.broadcast(group.rank == 0 ? try? JSONEncoder().encode(counts) : nil))) ?? []
        }
        var results: [BenchmarkReport.LearnerScaling] = []
        for threads in counts {
            let policy = DiffusionPolicy(settings: settings, network: network)
            var random = Philox(seed: 7)
            policy.initialize(random: &random)
            let critic = CriticMLP(observationDim: network.observationDim)
            critic.initialize(random: &random)
            let (update, batch, minibatchFLOPs) = hopperUpdate(policy: policy, critic: critic, learnerSamples: learnerSamples, random: &random,
                                                               shards: threads, group: group)
            update.trainOneMinibatch(batch: batch)
            update.resetTiming()
            // Every rank must make the same number of calls (each is collective): a fixed count under mpirun.
            let perSecond = group == nil ? Timing.rate(seconds: seconds * 2, minimumCalls: 2) { update.trainOneMinibatch(batch: batch) }
                : Timing.rate(seconds: 0, minimumCalls: 3) { update.trainOneMinibatch(batch: batch) }
            let samples = perSecond * Double(learnerSamples)
            oneThread = oneThread ?? (threads == 1 && ranks == 1 ? samples : nil)
            let workers = Double(threads * ranks)
            let entry = BenchmarkReport.LearnerScaling(
                threads: threads, ranks: ranks, env_step_samples_per_second: samples,
                bound_env_step_samples_per_second: workers * gflops * 1e9 / minibatchFLOPs * Double(learnerSamples),
                efficiency: oneThread.map { samples / (workers * $0) } ?? .nan, serial_fraction: update.timing.serialFraction)
            if (group?.rank ?? 0) == 0 {
                log(String(format: "learner scaling  %2d threads × %d ranks: %7.0f env-step samples/s  bound %7.0f (%.0f%%)  efficiency %.2f  serial %.2f%%",
                           threads, ranks, samples, entry.bound_env_step_samples_per_second, 100 * samples / entry.bound_env_step_samples_per_second,
                           entry.efficiency, 100 * entry.serial_fraction))
            }
            results.append(entry)
        }
        return results
    }
}
