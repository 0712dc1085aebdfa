import Foundation

/// The messages taken off `trajectories` and the segments (or messages) dropped, by reason.
///
/// Every message taken off the socket ends in exactly one place: a reason here or the batch (of which
/// `restarted_stream` may later discard some). The fuzz test checks this, reading the totals from another thread.
public final class DropLedger: @unchecked Sendable {
    // @unchecked: every stored property is read and written only under `lock`.
    private let lock = NSLock()
    private var counts: [String: Int]
    private var total = 0
    private var received = 0

    /// A ledger that continues `counts` (a resumed run's drops so far).
    init(counts: [String: Int] = [:]) {
        self.counts = counts
    }

    /// Counts `count` dropped segments (or messages) under `reason`.
    func drop(_ reason: String, _ count: Int = 1) {
        lock.withLock {
            counts[reason, default: 0] += count
            total += count
        }
    }

    /// Counts one message taken off the socket.
    func receive() { lock.withLock { received += 1 } }

    /// Drops by reason since the run began (a resumed run's included).
    public var byReason: [String: Int] { lock.withLock { counts } }
    /// Drops counted by this process.
    public var droppedTotal: Int { lock.withLock { total } }
    /// Messages taken off `trajectories` by this process.
    public var messagesReceived: Int { lock.withLock { received } }
}
