/// What a message means. The raw value is the `kind` field of the wire header.
public enum MessageKind: UInt16, Sendable, CaseIterable {
    /// An actor's trajectory segment, sent to the learner.
    case segment = 1
    /// The learner announces that a new policy version is available.
    case weightsNotice = 2
    /// An actor introduces itself to the learner.
    case hello = 3
    /// The learner accepts an actor and tells it its index and settings.
    case welcome = 4
    /// An actor asks for the current policy weights.
    case weightsRequest = 5
    /// Policy weights, the reply to `weightsRequest`.
    case weights = 6
    /// A liveness probe.
    case heartbeat = 7
    /// The answer to `heartbeat`.
    case heartbeatReply = 8
    /// The receiver should stop.
    case shutdown = 9
    /// A request was understood but declined; the tensors say why.
    case refusal = 10
}

/// One message of the DPPO wire format: a few header fields and a list of named tensors.
public struct WireMessage: Equatable, Sendable {
    /// What the message means.
    public var kind: MessageKind
    /// The policy version the message was produced with or refers to.
    public var policyVersion: UInt64
    /// The index of the actor that sent or is addressed by the message.
    public var actorIndex: UInt32
    /// A per-sender counter, so a receiver can spot gaps and duplicates.
    public var sequence: UInt64
    /// The message body, in order; names are unique within a message.
    public var tensors: [WireTensor]

    /// Creates a message; numeric fields default to 0 and the body to no tensors.
    public init(
        kind: MessageKind,
        policyVersion: UInt64 = 0,
        actorIndex: UInt32 = 0,
        sequence: UInt64 = 0,
        tensors: [WireTensor] = []
    ) {
        self.kind = kind
        self.policyVersion = policyVersion
        self.actorIndex = actorIndex
        self.sequence = sequence
        self.tensors = tensors
    }

    /// The first tensor called `name`; throws `.missingTensor(name)` when there is none.
    public func tensor(named name: String) throws(WireError) -> WireTensor {
        guard let found = tensors.first(where: { $0.name == name }) else {
            throw .missingTensor(name)
        }
        return found
    }
}
