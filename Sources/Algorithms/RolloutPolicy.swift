import Diffusion
import Networks
import Tensors

/// What an actor needs from a policy: batched sampling that writes one record per observation row
/// (the record is what the learner scores later), where the executed action chunk sits in that record,
/// and the parameters the learner broadcasts.
public protocol RolloutPolicy: AnyObject {
    /// Floats per decision record.
    var recordWidth: Int { get }
    /// Offset of the action chunk [Tp·Da] inside a record.
    var actionOffset: Int { get }
    /// The parameters the learner trains and broadcasts (θ).
    var broadcastParameters: Parameters { get }
    /// Samples one record per row of `observations` [B, To·Do] into `records` [B, recordWidth].
    func sample(observations: Matrix, mode: SamplingMode, random: inout Philox, records: Matrix)
}

extension DiffusionPolicy: RolloutPolicy {
    public var recordWidth: Int { settings.chainWidth }
    public var actionOffset: Int { settings.fineTunedSteps * settings.chunkWidth }
    public var broadcastParameters: Parameters { fineTuned.parameters }
    public func sample(observations: Matrix, mode: SamplingMode, random: inout Philox, records: Matrix) {
        sampleChains(observations: observations, mode: mode, random: &random, chains: records)
    }
}
