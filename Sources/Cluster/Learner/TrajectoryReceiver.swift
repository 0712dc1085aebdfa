import Foundation
import Transport

/// The learner's end of `trajectories`: takes one message at a time off the PULL socket, verifies and decodes it into
/// a segment of the run's shapes, and counts what arrived (`Traffic`) and what it refused (`DropLedger`). The batch
/// rules are `BatchAssembler`'s.
final class TrajectoryReceiver {
    /// What arrived on `trajectories` while one batch was collected.
    struct Traffic {
        /// Messages of any kind and their bytes as they came off the wire.
        var messages = 0
        var wireBytes = 0
        /// Messages already waiting in the receive queue when collection began (sent during the update or evaluation).
        var queueDepth = 0
        /// Wire bytes and raw tensor-data bytes of the messages that decoded, for the compression ratio.
        var decodedWireBytes = 0
        var decodedRawBytes = 0
    }

    enum Received {
        /// Nothing arrived within the receive timeout.
        case nothing
        /// A message was taken and dropped (counted in the ledger), or the queue counted at batch start ran empty.
        case judged
        case segment(Segment, sequence: UInt64)
    }

    /// The receive timeout while waiting for data; a batch starts with 0 to count what is already queued.
    static let waitMilliseconds: Int32 = 200

    let socket: Socket
    let codec: WireCodec
    let drops: DropLedger
    let actors: Int
    let observationWidth: Int
    let recordWidth: Int
    let environments: Int
    let maxSteps: Int
    private(set) var traffic = Traffic()
    /// Wire bytes taken off the socket since the learner started.
    private(set) var bytesReceived = 0
    private var countingQueue = false

    init(socket: Socket, codec: WireCodec, drops: DropLedger, actors: Int, observationWidth: Int, recordWidth: Int,
         environments: Int, maxSteps: Int) {
        self.socket = socket
        self.codec = codec
        self.drops = drops
        self.actors = actors
        self.observationWidth = observationWidth
        self.recordWidth = recordWidth
        self.environments = environments
        self.maxSteps = maxSteps
    }

    /// Starts a batch's traffic counts, first counting what is already queued: it receives without waiting until the
    /// queue is empty, then waits as usual.
    func beginBatch() throws(SocketError) {
        traffic = Traffic()
        try socket.setReceiveTimeout(milliseconds: 0)
        countingQueue = true
    }

    func endBatch() {
        countingQueue = false
        try? socket.setReceiveTimeout(milliseconds: Self.waitMilliseconds)
    }

    /// Takes the next message and decodes it as a segment of a known actor. `admit` judges a segment message's
    /// version before its tensors are decoded, dropping it by returning false.
    func next(admit: (UInt64) -> Bool) throws(SocketError) -> Received {
        guard let bytes = try socket.receive() else {
            guard countingQueue else { return .nothing }
            countingQueue = false
            try socket.setReceiveTimeout(milliseconds: Self.waitMilliseconds)
            return .judged
        }
        drops.receive()
        if countingQueue { traffic.queueDepth += 1 }
        traffic.messages += 1
        traffic.wireBytes += bytes.count
        bytesReceived += bytes.count
        let message: WireMessage
        do { message = try codec.decode(bytes) } catch { drops.drop(error.reason); return .judged }
        traffic.decodedWireBytes += bytes.count
        traffic.decodedRawBytes += message.tensors.reduce(0) { $0 + $1.bytes.count }
        guard message.kind == .segment else { drops.drop("unexpected_kind"); return .judged }
        guard admit(message.policyVersion) else { return .judged }
        let segment: Segment
        do {
            segment = try Segment(message: message, observationWidth: observationWidth, chainWidth: recordWidth,
                                  environments: environments, maxSteps: maxSteps)
        } catch let error as SegmentError {
            drops.drop(error.reason); return .judged
        } catch let error as WireError {
            drops.drop(error.reason); return .judged
        } catch {
            // Hardening: whatever else a hostile segment makes decoding throw, drop it rather than end the run.
            drops.drop("malformed_segment"); return .judged
        }
        guard segment.actorIndex < actors else { drops.drop("bad_actor_index"); return .judged }
        return .segment(segment, sequence: message.sequence)
    }
}
