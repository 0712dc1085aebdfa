import Tensors

/// One iteration of on-policy data: `streams` environment streams × `steps` decisions each,
/// stored stream-major (row = stream·steps + step) so that GAE walks each stream contiguously.
public final class RolloutBatch {
    public let streams: Int
    public let steps: Int
    public let observations: Matrix          // [N, To·Do] conditioning of each decision
    public let records: Matrix               // [N, recordWidth]: recorded chains [(K′+1)·Tp·Da], or action chunks
    public var rewards: [Float]              // summed over the executed chunk
    public var terminated: [UInt8]
    public var truncated: [UInt8]
    public var firsts: [UInt8]               // 1 when the decision starts an episode
    public let finalObservations: Matrix     // [N, To·Do], valid where truncated
    public let bootstrapObservations: Matrix // [streams, To·Do], the observation after each stream's last decision

    public init(streams: Int, steps: Int, observationWidth: Int, recordWidth: Int) {
        self.streams = streams
        self.steps = steps
        let count = streams * steps
        observations = Matrix(rows: count, columns: observationWidth)
        records = Matrix(rows: count, columns: recordWidth)
        rewards = [Float](repeating: 0, count: count)
        terminated = [UInt8](repeating: 0, count: count)
        truncated = [UInt8](repeating: 0, count: count)
        firsts = [UInt8](repeating: 0, count: count)
        finalObservations = Matrix(rows: count, columns: observationWidth)
        bootstrapObservations = Matrix(rows: streams, columns: observationWidth)
    }

    public var count: Int { streams * steps }

    @inline(__always) public func row(stream: Int, step: Int) -> Int { stream * steps + step }
}
