import Dispatch

/// The learner's data parallelism (docs/learner-scaling.md): work split into a fixed number of shards, each run on
/// its own worker, and sums over shards taken in a fixed order, so that the same shard count gives the same bits
/// whatever the thread timing.
public enum Parallel {
    /// Runs `body(shard)` once for every shard in 0..<count, concurrently, and returns when all have finished.
    /// One shard runs inline on the caller's thread. Which thread runs a shard never matters: a shard's work reads
    /// shared inputs and writes only its own outputs.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 1 {
            if count == 1 { body(0) }
            return
        }
        // Safe to hand to concurrent threads as Sendable: concurrentPerform returns only after every shard has run
        // (the closure never escapes), and by the contract above shards share only read-only inputs.
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: count, execute: unsafeBitCast(body, to: (@Sendable (Int) -> Void).self))
        }
    }

    /// The contiguous part of 0..<total that shard `shard` of `shards` owns: the first `total % shards` shards
    /// take one element more than the rest.
    @inline(__always)
    public static func range(shard: Int, of shards: Int, total: Int) -> Range<Int> {
        let base = total / shards, extra = total % shards
        let start = shard * base + min(shard, extra)
        return start..<(start + base + (shard < extra ? 1 : 0))
    }

    /// buffers[0] ← Σ buffers, `count` floats each, summed in a fixed pairwise tree: at stride s = 1, 2, 4, …,
    /// buffers[i] += buffers[i + s] for i a multiple of 2s. Every element sees the same order of additions, so the
    /// result does not depend on `workers`, the number of element ranges summed concurrently.
    public static func treeSum(_ buffers: [UnsafeMutablePointer<Float>], count: Int, workers: Int) {
        guard buffers.count > 1, count > 0 else { return }
        let parts = max(1, min(workers, count / 4_096 + 1))
        forEach(parts) { part in
            let elements = range(shard: part, of: parts, total: count)
            var stride = 1
            while stride < buffers.count {
                var index = 0
                while index + stride < buffers.count {
                    let destination = buffers[index], source = buffers[index + stride]
                    for element in elements { destination[element] += source[element] }
                    index += 2 * stride
                }
                stride *= 2
            }
        }
    }
}
