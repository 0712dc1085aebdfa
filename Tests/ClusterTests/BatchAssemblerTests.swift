import XCTest
import Foundation
@testable import Cluster

/// The batch rules without a socket: every drop reason of `BatchAssembler`, in both modes, the placement of rows,
/// async carry-over and strict-mode redo requests. Actors 2, 2 environments each, n_steps 4, segments of 2 steps.
final class BatchAssemblerTests: XCTestCase {
    let observationWidth = 3, recordWidth = 2, environments = 2, steps = 4

    func makeAssembler(_ mode: BatchAssembler.Mode, drops: DropLedger = DropLedger()) -> BatchAssembler {
        BatchAssembler(mode: mode, actors: 2, steps: steps, environments: environments, observationWidth: observationWidth,
                       recordWidth: recordWidth, stallTimeout: 10, drops: drops)
    }

    /// A segment whose every observation is `marker`, so its rows can be found in the batch.
    func segment(actor: Int, version: UInt64, offset: Int, steps count: Int = 2, marker: Float = 0, episodeReturns: [Float] = []) -> Segment {
        let rows = count * environments
        return Segment(policyVersion: version, actorIndex: actor, stepOffset: offset, steps: count, environments: environments,
                       observations: [Float](repeating: marker, count: rows * observationWidth),
                       chains: [Float](repeating: marker, count: rows * recordWidth),
                       rewards: [Float](repeating: 1, count: rows), terminated: [UInt8](repeating: 0, count: rows),
                       truncated: [UInt8](repeating: 0, count: rows), firsts: [UInt8](repeating: 0, count: rows),
                       nextObservations: [Float](repeating: marker, count: environments * observationWidth),
                       finalIndices: [], finalObservations: [], episodeReturns: episodeReturns, episodeLengths: [])
    }

    let keep: (UInt64) -> Bool = { _ in true }
    let use: (inout Segment) -> String? = { _ in nil }

    /// Offers a segment as the learner does: the version check first (strict), then the decoded segment.
    @discardableResult
    func deliver(_ segment: Segment, sequence: UInt64, to assembler: inout BatchAssembler, now: Date = Date(),
                 holds: ((UInt64) -> Bool)? = nil) -> Bool {
        guard assembler.admits(messageVersion: segment.policyVersion) else { return false }
        return assembler.offer(segment, sequence: sequence, now: now, holdsWeights: holds ?? keep, prepare: use)
    }

    func testStrictBatchTakesContiguousCurrentVersionStreams() {
        var assembler = makeAssembler(.strict)
        assembler.begin(version: 3, holdsWeights: keep, prepare: use)
        XCTAssertEqual(assembler.missingActors, [0, 1])
        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 0, marker: 1, episodeReturns: [5]), sequence: 10, to: &assembler))
        XCTAssertTrue(deliver(segment(actor: 1, version: 3, offset: 0, marker: 3), sequence: 20, to: &assembler))
        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 2, marker: 2), sequence: 11, to: &assembler))
        XCTAssertFalse(assembler.isComplete)
        XCTAssertEqual(assembler.missingActors, [1])
        XCTAssertTrue(deliver(segment(actor: 1, version: 3, offset: 2, marker: 4, episodeReturns: [7, 9]), sequence: 21, to: &assembler))
        XCTAssertTrue(assembler.isComplete)
        XCTAssertEqual(assembler.drops.byReason, [:])
        XCTAssertEqual(assembler.episodeReturns, [5, 7, 9])
        XCTAssertEqual(assembler.lagCounts, [4, 0, 0])
        XCTAssertEqual(assembler.decisions, 16)
        XCTAssertEqual(assembler.segmentsUsed, 4)
        let batch = assembler.batch
        for stream in 0..<4 {
            for step in 0..<steps {
                let expected = Float(stream < 2 ? 1 : 3) + (step < 2 ? 0 : 1)
                XCTAssertEqual(batch.observations.row(batch.row(stream: stream, step: step))[0], expected, "stream \(stream) step \(step)")
            }
            XCTAssertEqual(batch.bootstrapObservations.row(stream)[0], stream < 2 ? 2 : 4, "the last segment's next observation")
        }
        XCTAssertEqual(Set(assembler.rowVersions), [3])
    }

    func testStrictDropReasons() {
        let drops = DropLedger()
        var assembler = makeAssembler(.strict, drops: drops)
        assembler.begin(version: 3, holdsWeights: keep, prepare: use)
        XCTAssertFalse(deliver(segment(actor: 0, version: 2, offset: 0), sequence: 1, to: &assembler))
        XCTAssertFalse(deliver(segment(actor: 0, version: 4, offset: 0), sequence: 1, to: &assembler))
        XCTAssertEqual(drops.byReason, ["stale_version": 2])
        XCTAssertEqual(assembler.lagCounts, [0, 1, 1], "lag 1 and one from the future")

        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 0), sequence: 5, to: &assembler))
        XCTAssertFalse(deliver(segment(actor: 0, version: 3, offset: 2), sequence: 7, to: &assembler), "a sequence number skipped")
        XCTAssertFalse(deliver(segment(actor: 0, version: 3, offset: 1, steps: 1), sequence: 6, to: &assembler), "not where the stream ends")
        XCTAssertEqual(drops.byReason["out_of_order"], 2)

        // A fresh start discards the partial stream (one segment).
        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 0, marker: 8), sequence: 30, to: &assembler))
        XCTAssertEqual(drops.byReason["restarted_stream"], 1)
        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 2, marker: 9), sequence: 31, to: &assembler))
        XCTAssertFalse(deliver(segment(actor: 0, version: 3, offset: 0), sequence: 32, to: &assembler), "the stream is complete")
        XCTAssertEqual(drops.byReason["duplicate"], 1)
        XCTAssertEqual(assembler.batch.observations.row(assembler.batch.row(stream: 0, step: 0))[0], 8, "the restarted stream's rows")

        var refusing = segment(actor: 1, version: 3, offset: 0)
        refusing.chainSeeds = [1, 2]
        XCTAssertTrue(assembler.admits(messageVersion: 3))
        XCTAssertFalse(assembler.offer(refusing, sequence: 1, holdsWeights: keep, prepare: { _ in "non_finite" }))
        XCTAssertEqual(drops.byReason["non_finite"], 1, "prepare's reason is counted")
        XCTAssertEqual(drops.droppedTotal, 2 + 2 + 1 + 1 + 1)
        XCTAssertEqual(assembler.missingActors, [1])
    }

    func testStrictRedoRequestsForAStalledStream() {
        var assembler = makeAssembler(.strict)
        let start = Date()
        assembler.begin(version: 3, now: start, holdsWeights: keep, prepare: use)
        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 0), sequence: 5, to: &assembler, now: start))
        // Actor 0 reports having sent sequence 6 (lost in transit); actor 1 has sent nothing of version 3.
        let positions: (Int) -> BatchAssembler.ActorPosition? = { actor in
            actor == 0 ? .init(policyVersion: 3, sequence: 6) : .init(policyVersion: 2, sequence: 40)
        }
        XCTAssertEqual(assembler.redoRequests(now: start.addingTimeInterval(5), positions: positions), [], "not stalled yet")
        let requests = assembler.redoRequests(now: start.addingTimeInterval(11), positions: positions)
        XCTAssertEqual(requests, [.init(actor: 0, reportedSequence: 6, rows: 2, lastSequence: 5, count: 1)])
        XCTAssertEqual(assembler.redoTable, [0: 3])
        XCTAssertEqual(assembler.redoRequests(now: start.addingTimeInterval(30), positions: positions), [], "one request pending at a time")
        // The actor rolls the version again: its restart answers the request.
        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 0), sequence: 50, to: &assembler, now: start.addingTimeInterval(31)))
        XCTAssertEqual(assembler.redoTable, [:])
        XCTAssertEqual(assembler.redoRequestCount, 1)
        var later = start.addingTimeInterval(31)
        for count in 2...BatchAssembler.maxRedos {
            later.addTimeInterval(11)
            let onlyActor0: (Int) -> BatchAssembler.ActorPosition? = { $0 == 0 ? .init(policyVersion: 3, sequence: 999) : nil }
            XCTAssertEqual(assembler.redoRequests(now: later, positions: onlyActor0).map(\.count), [count])
            XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 0), sequence: 100 + UInt64(count), to: &assembler, now: later))
        }
        later.addTimeInterval(11)
        XCTAssertEqual(assembler.redoRequests(now: later, positions: { _ in .init(policyVersion: 3, sequence: 999) }).map(\.actor), [1],
                       "actor 0 has had its \(BatchAssembler.maxRedos) requests this batch")
        var async = makeAssembler(.async(maxPolicyLag: 1))
        async.begin(version: 3, now: start, holdsWeights: keep, prepare: use)
        XCTAssertEqual(async.redoRequests(now: start.addingTimeInterval(60), positions: positions), [], "async mode never asks")
    }

    func testAsyncTakesLaggedSegmentsAndCarriesTheRest() {
        let drops = DropLedger()
        var assembler = makeAssembler(.async(maxPolicyLag: 1), drops: drops)
        let kept: (UInt64) -> Bool = { $0 >= 2 }
        assembler.begin(version: 3, holdsWeights: kept, prepare: use)
        XCTAssertFalse(deliver(segment(actor: 0, version: 1, offset: 0), sequence: 1, to: &assembler, holds: kept), "lag 2 > 1")
        XCTAssertFalse(deliver(segment(actor: 0, version: 4, offset: 0), sequence: 2, to: &assembler, holds: kept), "from the future")
        XCTAssertEqual(drops.byReason, ["stale_version": 2])
        // Any offset starts a run; the next sequence at the next offset (cyclically in the quota) continues it.
        XCTAssertTrue(deliver(segment(actor: 0, version: 2, offset: 2, marker: 1), sequence: 10, to: &assembler, holds: kept))
        XCTAssertTrue(deliver(segment(actor: 0, version: 3, offset: 0, marker: 2), sequence: 11, to: &assembler, holds: kept))
        XCTAssertEqual(assembler.rowVersions[assembler.batch.row(stream: 0, step: 0)], 2)
        XCTAssertEqual(assembler.rowVersions[assembler.batch.row(stream: 0, step: 3)], 3)
        // Actor 0 is complete: its next segments wait for the next batch, up to n_steps decisions.
        XCTAssertFalse(deliver(segment(actor: 0, version: 3, offset: 2, marker: 5), sequence: 12, to: &assembler, holds: kept))
        XCTAssertFalse(deliver(segment(actor: 0, version: 3, offset: 0, marker: 6), sequence: 13, to: &assembler, holds: kept))
        XCTAssertFalse(deliver(segment(actor: 0, version: 3, offset: 2), sequence: 14, to: &assembler, holds: kept))
        XCTAssertEqual(drops.byReason["duplicate"], 1)
        // A break in actor 1's run discards it.
        XCTAssertTrue(deliver(segment(actor: 1, version: 3, offset: 0), sequence: 20, to: &assembler, holds: kept))
        XCTAssertTrue(deliver(segment(actor: 1, version: 3, offset: 0), sequence: 22, to: &assembler, holds: kept))
        XCTAssertEqual(drops.byReason["restarted_stream"], 1)
        XCTAssertFalse(deliver(segment(actor: 1, version: 3, offset: 0, steps: 5), sequence: 23, to: &assembler, holds: kept))
        XCTAssertEqual(drops.byReason["bad_shape"], 1, "longer than the batch")
        XCTAssertEqual(drops.byReason["restarted_stream"], 2)
        XCTAssertTrue(deliver(segment(actor: 1, version: 3, offset: 0), sequence: 30, to: &assembler, holds: kept))
        XCTAssertTrue(deliver(segment(actor: 1, version: 3, offset: 2), sequence: 31, to: &assembler, holds: kept))
        XCTAssertTrue(assembler.isComplete)

        // The next batch starts with the carried segments, judged again against version 4.
        assembler.begin(version: 4, holdsWeights: { $0 >= 3 }, prepare: use)
        XCTAssertEqual(assembler.missingActors, [1])
        XCTAssertEqual(assembler.lagCounts, [0, 2, 0])
        XCTAssertEqual(assembler.batch.observations.row(assembler.batch.row(stream: 0, step: 0))[0], 5)
        XCTAssertEqual(assembler.batch.observations.row(assembler.batch.row(stream: 1, step: 3))[0], 6)
        XCTAssertEqual(Set(assembler.rowVersions[0..<(environments * steps)]), [3])
    }

    func testAsyncDropsSegmentsWhoseWeightsAreGone() {
        let drops = DropLedger(counts: ["stale_version": 4])
        var assembler = makeAssembler(.async(maxPolicyLag: 2), drops: drops)
        assembler.begin(version: 3, holdsWeights: { $0 == 3 }, prepare: use)
        XCTAssertFalse(deliver(segment(actor: 0, version: 2, offset: 0), sequence: 1, to: &assembler, holds: { $0 == 3 }),
                       "within the lag, but a resumed learner no longer holds version 2")
        XCTAssertEqual(drops.byReason, ["stale_version": 5], "a resumed run's counts continue")
        XCTAssertEqual(drops.droppedTotal, 1, "this process dropped one")
    }
}
