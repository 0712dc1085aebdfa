import Foundation
import Algorithms

/// The rules that turn the segments actors send into one iteration's batch, with no socket in sight: the learner
/// hands it every decoded segment, and it places the usable ones in `batch` and counts the rest in `drops`.
///
/// A batch holds, per actor, `n_steps` contiguous decisions of one actor process, because GAE runs along each
/// environment stream. `strict` mode (exact DPPO) takes only the current policy version, `async` mode any version up
/// to `max_policy_lag` behind whose weights are still kept (docs/architecture.md, "Synchronisation"). Drop reasons:
/// - `stale_version`: strict, any other version; async, too old, from the future, or weights no longer kept;
/// - `duplicate`: strict, the actor's stream is already complete; async, more than `n_steps` decisions are waiting
///   for the next batch;
/// - `out_of_order`: strict, a segment that neither starts a stream (step 0) nor continues it (next step, next
///   sequence number);
/// - `restarted_stream`: the segments of a partial stream that a new start threw away;
/// - `bad_shape`: async, a segment longer than the batch;
/// - whatever `prepare` (the seeded-chain rebuild) returns for a segment it refuses.
struct BatchAssembler {
    enum Mode: Equatable {
        case strict
        case async(maxPolicyLag: UInt64)
    }

    /// Where one actor's stream stands: the batch rows it fills (strict mode: also the step its next segment must
    /// start at), the offset in the actor's quota its next segment must have (async mode), the last segment's sequence
    /// number, and what the segments used so far held.
    struct StreamProgress {
        var rows = 0
        var nextOffset = 0
        var lastSequence: UInt64 = 0
        var segments = 0
        var episodeReturns: [Double] = []
    }

    /// A strict-mode request that an actor roll the current version again (see `redoRequests`).
    struct RedoRequest: Equatable {
        var actor: Int
        /// The sequence number the actor reports having sent, and where its stream stops here.
        var reportedSequence: UInt64
        var rows: Int
        var lastSequence: UInt64
        /// Requests made of this actor in this batch, this one included.
        var count: Int
    }

    /// What an actor last reported in its heartbeat: the version it rolls out and the last sequence number it sent.
    struct ActorPosition {
        var policyVersion: UInt64
        var sequence: UInt64
    }

    /// Redo requests per actor and batch before the actor is left to `batch_timeout_s`.
    static let maxRedos = 3

    let mode: Mode
    let actors: Int
    /// Decisions per environment per iteration (`train.n_steps`).
    let steps: Int
    let observationWidth: Int
    let recordWidth: Int
    let stallTimeout: TimeInterval
    let drops: DropLedger
    let batch: RolloutBatch
    /// The policy version that sampled each batch row.
    private(set) var rowVersions: [UInt64]
    private(set) var streams: [StreamProgress]
    /// The version the batch is for.
    private(set) var version: UInt64 = 0
    /// Segment messages judged for this batch by policy lag: 0, 1, 2 or more (or from the future).
    private(set) var lagCounts = [0, 0, 0]
    /// Decisions (steps × environments) in the segments used for this batch.
    private(set) var decisions = 0
    /// Segments used, and redo requests made, since the learner started.
    private(set) var segmentsUsed = 0
    private(set) var redoRequestCount = 0
    /// When a segment was last used (the batch timeout runs from it).
    private(set) var lastProgress = Date()
    /// Strict mode: the actors asked to roll a version again, and which version, until a segment of theirs is used.
    private(set) var redoTable: [Int: UInt64] = [:]
    /// Async mode: segments that arrived for an actor whose stream was already complete, in order, for the next batch.
    private var carried: [[(sequence: UInt64, segment: Segment)]]
    private var lastHeard: [Date]
    private var redos: [Int]
    private var lastStallCheck = Date()

    init(mode: Mode, actors: Int, steps: Int, environments: Int, observationWidth: Int, recordWidth: Int,
         stallTimeout: TimeInterval, drops: DropLedger) {
        self.mode = mode
        self.actors = actors
        self.steps = steps
        self.observationWidth = observationWidth
        self.recordWidth = recordWidth
        self.stallTimeout = stallTimeout
        self.drops = drops
        batch = RolloutBatch(streams: actors * environments, steps: steps, observationWidth: observationWidth, recordWidth: recordWidth)
        rowVersions = [UInt64](repeating: 0, count: batch.count)
        streams = Array(repeating: StreamProgress(), count: actors)
        carried = Array(repeating: [], count: actors)
        lastHeard = Array(repeating: Date(), count: actors)
        redos = Array(repeating: 0, count: actors)
    }

    var isComplete: Bool { !streams.contains { $0.rows < steps } }
    /// The actors whose streams are not complete yet.
    var missingActors: [Int] { streams.indices.filter { streams[$0].rows < steps } }
    /// The returns of the training episodes that finished in the segments used.
    var episodeReturns: [Double] { streams.flatMap(\.episodeReturns) }

    /// Starts the batch of `version`. Async mode first judges the segments carried over from the last batch, in
    /// order, with `holdsWeights` and `prepare` as in `offer`.
    mutating func begin(version: UInt64, now: Date = Date(), holdsWeights: (UInt64) -> Bool,
                        prepare: (inout Segment) -> String?) {
        self.version = version
        streams = Array(repeating: StreamProgress(), count: actors)
        lagCounts = [0, 0, 0]
        decisions = 0
        redoTable = [:]
        lastProgress = now
        lastStallCheck = now
        lastHeard = Array(repeating: now, count: actors)
        redos = Array(repeating: 0, count: actors)
        let waiting = carried
        carried = Array(repeating: [], count: actors)
        for list in waiting {
            for (sequence, segment) in list {
                offer(segment, sequence: sequence, now: now, holdsWeights: holdsWeights, prepare: prepare)
            }
        }
    }

    /// Judges a segment message's version before its tensors are decoded: strict mode counts its lag and drops any
    /// version but the batch's; async mode judges versions in `offer`.
    mutating func admits(messageVersion: UInt64) -> Bool {
        guard mode == .strict else { return true }
        countLag(of: messageVersion)
        guard messageVersion == version else { drops.drop("stale_version"); return false }
        return true
    }

    /// Offers one decoded segment (of a known actor, `sequence` its message's sequence number). `holdsWeights` says
    /// whether a version's weights are still kept (async), `prepare` makes its chains the ones to train on or returns
    /// why to drop it. Returns true when the segment was used.
    @discardableResult
    mutating func offer(_ segment: Segment, sequence: UInt64, now: Date = Date(), holdsWeights: (UInt64) -> Bool,
                        prepare: (inout Segment) -> String?) -> Bool {
        switch mode {
        case .strict: return offerStrict(segment, sequence: sequence, now: now, prepare: prepare)
        case .async(let maxLag):
            return offerAsync(segment, sequence: sequence, now: now, maxLag: maxLag, holdsWeights: holdsWeights, prepare: prepare)
        }
    }

    /// Strict: a segment continues its actor's stream when it starts where the stream ends with the next sequence
    /// number, and starts it afresh at step 0 (an actor restarted after a crash, or one that rejoined a restarted
    /// learner, sends exactly this).
    private mutating func offerStrict(_ received: Segment, sequence: UInt64, now: Date,
                                      prepare: (inout Segment) -> String?) -> Bool {
        var segment = received
        var stream = streams[segment.actorIndex]
        lastHeard[segment.actorIndex] = now
        guard stream.rows < steps else { drops.drop("duplicate"); return false }
        guard segment.stepOffset == 0 || (segment.stepOffset == stream.rows && sequence == stream.lastSequence &+ 1) else {
            drops.drop("out_of_order"); return false
        }
        if let reason = prepare(&segment) { drops.drop(reason); return false }
        if segment.stepOffset == 0 {
            if stream.segments > 0 { drops.drop("restarted_stream", stream.segments) }
            stream = StreamProgress()
        }
        // The actor's stream moves again: any redo asked of it is answered (or was not needed).
        redoTable[segment.actorIndex] = nil
        use(segment, sequence: sequence, into: &stream, now: now)
        return true
    }

    /// Async: the batch takes the first usable segments; per actor one contiguous run of consecutive segments of one
    /// process (the next sequence number at the offset where the last one ended, cyclically in the actor's quota). A
    /// segment that breaks the run discards it and starts a new one; segments for a complete run wait for the next
    /// batch, where their lag is judged (and counted) again.
    private mutating func offerAsync(_ received: Segment, sequence: UInt64, now: Date, maxLag: UInt64,
                                     holdsWeights: (UInt64) -> Bool, prepare: (inout Segment) -> String?) -> Bool {
        var segment = received
        let lag = segment.policyVersion <= version ? version - segment.policyVersion : 2
        let usable = segment.policyVersion <= version && lag <= maxLag && holdsWeights(segment.policyVersion)
        var stream = streams[segment.actorIndex]
        if usable && stream.rows >= steps {
            let waiting = carried[segment.actorIndex].reduce(0) { $0 + $1.segment.steps }
            if waiting + segment.steps <= steps { carried[segment.actorIndex].append((sequence, segment)) } else { drops.drop("duplicate") }
            return false
        }
        countLag(of: segment.policyVersion)
        guard usable else { drops.drop("stale_version"); return false }
        if let reason = prepare(&segment) { drops.drop(reason); return false }
        let continues = stream.rows > 0 && sequence == stream.lastSequence &+ 1 && segment.stepOffset == stream.nextOffset
            && stream.rows + segment.steps <= steps
        if !continues {
            if stream.segments > 0 { drops.drop("restarted_stream", stream.segments) }
            stream = StreamProgress()
            guard segment.steps <= steps else { drops.drop("bad_shape"); return false }
        }
        use(segment, sequence: sequence, into: &stream, now: now)
        return true
    }

    /// Strict mode's answer to lost segments (a connection that broke with messages in flight, a segment dropped as
    /// malformed in transit): an actor whose heartbeats say it sent more of the current version than arrived, and from
    /// which nothing has arrived for `stall_timeout_s`, is asked to roll the version again from step 0, which restarts
    /// its stream here. A request stands until a segment of the actor is used; it is made at most `maxRedos` times per
    /// actor and batch (an actor whose data is always refused, e.g. `non_finite`, is then left to `batch_timeout_s`,
    /// whose error names it), and not again while one is pending. Checks at most once a second.
    mutating func redoRequests(now: Date, positions: (Int) -> ActorPosition?) -> [RedoRequest] {
        guard mode == .strict, now.timeIntervalSince(lastStallCheck) > 1 else { return [] }
        lastStallCheck = now
        var requests: [RedoRequest] = []
        for (index, stream) in streams.enumerated()
        where stream.rows < steps && redos[index] < Self.maxRedos && redoTable[index] == nil {
            guard now.timeIntervalSince(lastHeard[index]) > stallTimeout, let position = positions(index),
                  position.policyVersion == version, position.sequence > stream.lastSequence else { continue }
            redoTable[index] = version
            lastHeard[index] = now
            redos[index] += 1
            redoRequestCount += 1
            requests.append(RedoRequest(actor: index, reportedSequence: position.sequence, rows: stream.rows,
                                        lastSequence: stream.lastSequence, count: redos[index]))
        }
        return requests
    }

    private mutating func countLag(of segmentVersion: UInt64) {
        let lag = segmentVersion <= version ? version - segmentVersion : 2
        lagCounts[Int(min(lag, 2))] += 1
    }

    /// Places `segment` at the end of its actor's stream and counts it.
    private mutating func use(_ segment: Segment, sequence: UInt64, into stream: inout StreamProgress, now: Date) {
        place(segment, at: stream.rows)
        stream.rows += segment.steps
        stream.nextOffset = (segment.stepOffset + segment.steps) % steps
        stream.lastSequence = sequence
        stream.segments += 1
        stream.episodeReturns += segment.episodeReturns.map(Double.init)
        streams[segment.actorIndex] = stream
        segmentsUsed += 1
        decisions += segment.steps * segment.environments
        lastProgress = now
    }

    /// Copies `segment` into its actor's streams from batch step `start`.
    private mutating func place(_ segment: Segment, at start: Int) {
        let e = segment.environments, o = observationWidth, c = recordWidth
        for step in 0..<segment.steps {
            for environment in 0..<e {
                let source = step * e + environment
                let row = batch.row(stream: segment.actorIndex * e + environment, step: start + step)
                rowVersions[row] = segment.policyVersion
                segment.observations.withUnsafeBufferPointer {
                    batch.observations.row(row).update(from: $0.baseAddress! + source * o, count: o)
                }
                segment.chains.withUnsafeBufferPointer {
                    batch.records.row(row).update(from: $0.baseAddress! + source * c, count: c)
                }
                batch.rewards[row] = segment.rewards[source]
                batch.terminated[row] = segment.terminated[source]
                batch.truncated[row] = segment.truncated[source]
                batch.firsts[row] = segment.firsts[source]
            }
        }
        for (slot, flat) in segment.finalIndices.enumerated() {
            let step = Int(flat) / e, environment = Int(flat) % e
            let row = batch.row(stream: segment.actorIndex * e + environment, step: start + step)
            segment.finalObservations.withUnsafeBufferPointer {
                batch.finalObservations.row(row).update(from: $0.baseAddress! + slot * o, count: o)
            }
        }
        guard start + segment.steps == batch.steps else { return }
        for environment in 0..<e {
            segment.nextObservations.withUnsafeBufferPointer {
                batch.bootstrapObservations.row(segment.actorIndex * e + environment)
                    .update(from: $0.baseAddress! + environment * o, count: o)
            }
        }
    }
}
