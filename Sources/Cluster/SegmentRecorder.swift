import Foundation
import Algorithms
import Datasets
import Diffusion
import Environments
import Tensors
import Transport

/// The rollout half of an actor: decisions sampled and stepped, recorded as one `Segment` (docs/wire-format.md);
/// no sockets. The actor sends what this records; the benchmarks and tests call it directly.
package enum SegmentRecorder {
    /// Rolls out `steps` decisions of `policy` (exploration sampling) in `environments` and records them as one
    /// segment; no I/O. `records` is scratch of [environments × record width]; `firsts` carries episode starts across calls.
    /// With `seededSampler` (the policy's, seeded chain transport), each decision step draws a 64-bit seed from `random`,
    /// samples its chains from it and records it in `chainSeeds`.
    package static func record(version: UInt64, index: Int, offset: Int, steps: Int, config: RunConfig, policy: any RolloutPolicy,
                        environments: VectorEnvironment, records: Matrix, firsts: inout [UInt8], random: inout Philox,
                        seededSampler: SeededChainSampler? = nil) throws -> Segment {
        let e = environments.count
        let o = config.networkShape.observationDim, c = config.recordWidth
        var segment = Segment(policyVersion: version, actorIndex: index, stepOffset: offset, steps: steps, environments: e,
                              observations: [], chains: [], rewards: [], terminated: [], truncated: [], firsts: [],
                              nextObservations: [], finalIndices: [], finalObservations: [], episodeReturns: [], episodeLengths: [])
        segment.observations.reserveCapacity(steps * e * o)
        segment.chains.reserveCapacity(steps * e * c)
        for step in 0..<steps {
            segment.observations.append(contentsOf: environments.observations.buffer)
            if let seededSampler {
                let seed = random.nextUInt64()
                withUnsafePointer(to: seed) {
                    seededSampler.sample(observations: environments.observations, seeds: UnsafeBufferPointer(start: $0, count: 1), environments: e, chains: records)
                }
                segment.chainSeeds.append(seed)
            } else {
                policy.sample(observations: environments.observations, mode: .exploration, random: &random, records: records)
            }
            segment.chains.append(contentsOf: records.buffer)
            try environments.step(chunks: records, offset: policy.actionOffset)
            segment.firsts.append(contentsOf: firsts)
            for environment in 0..<e {
                segment.rewards.append(environments.rewards[environment])
                segment.terminated.append(environments.terminated[environment] ? 1 : 0)
                segment.truncated.append(environments.truncated[environment] ? 1 : 0)
                firsts[environment] = (environments.terminated[environment] || environments.truncated[environment]) ? 1 : 0
                if environments.truncated[environment] && !environments.terminated[environment] {
                    segment.finalIndices.append(Int32(step * e + environment))
                    segment.finalObservations.append(contentsOf: UnsafeBufferPointer(start: environments.finalObservations.row(environment), count: o))
                }
            }
            for episode in environments.finishedEpisodes {
                segment.episodeReturns.append(Float(episode.totalReward))
                segment.episodeLengths.append(Int32(episode.length))
            }
        }
        segment.nextObservations = environments.observations.toArray()
        return segment
    }
}
