import Diffusion
import Foundation
import Networks
import Tensors

/// EDP's sampler (§3.7) behind the `ChunkSampler` seam: DPM-Solver on the policy's own discrete schedule
/// (`NoiseScheduleVP(policy.schedule)`) with `policy.base`, the output clipped to the normalised action box [−1, 1]
/// (the solver itself leaves the last iterate unclipped, §3.7.6). The solver is built once per policy shape.
public final class DPMSolverChunkSampler: ChunkSampler {
    public let settings: DPMSolverSettings
    var solver: DPMSolver?

    public init(settings: DPMSolverSettings = DPMSolverSettings()) { self.settings = settings }

    public func sample(policy: DiffusionPolicy, observations: Matrix, actions: Matrix, random: inout Philox) {
        let width = policy.settings.chunkWidth
        if solver == nil || solver!.width != width {
            solver = DPMSolver(schedule: NoiseScheduleVP(policy.schedule), settings: settings, width: width)
        }
        solver!.sample(network: policy.base, observations: observations, random: &random, into: actions)
        let clip = Float(policy.settings.denoisedClip)
        for index in 0..<actions.count { actions.data[index] = min(max(actions.data[index], -clip), clip) }
    }
}
