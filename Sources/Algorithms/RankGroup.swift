import Tensors

/// The learner processes one update is split across (MPI ranks; docs/learner-scaling.md). Every rank holds the whole
/// batch and the same parameters, takes its own contiguous share of every pass, and every call here is collective:
/// all ranks make it, in the same order, with the same counts, so all ranks end every minibatch with the same sums.
public protocol RankGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Every rank's `counts[rank]` floats, concatenated in rank order into `result`, on every rank.
    func allGather(_ local: UnsafePointer<Float>, counts: [Int], into result: UnsafeMutablePointer<Float>)
    /// Every rank's `local` (the same count on each), concatenated in rank order, on every rank.
    func allGather(_ local: [Double]) -> [Double]
}

extension RankGroup {
    /// buffer ← the sum over ranks of each rank's `buffer` (`count` floats), taken in the pairwise tree of
    /// `Parallel.treeSum` over ranks, so every rank gets the same bits. `scratch` holds size × count floats.
    public func sum(_ buffer: UnsafeMutablePointer<Float>, count: Int, scratch: Matrix, workers: Int) {
        guard size > 1 else { return }
        scratch.resize(rows: size)
        precondition(scratch.columns == count, "scratch columns \(scratch.columns) ≠ \(count)")
        allGather(buffer, counts: [Int](repeating: count, count: size), into: scratch.data)
        Parallel.treeSum((0..<size).map { scratch.row($0) }, count: count, workers: workers)
        buffer.update(from: scratch.row(0), count: count)
    }
}
