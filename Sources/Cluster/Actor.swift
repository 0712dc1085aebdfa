import Foundation
import Algorithms
import Diffusion
import Environments
import Tensors
import Transport

/// The actor process: connects PUSH `trajectories`, SUB `weights`, REQ `control`; for each new
/// policy version it fetches the weights, rolls out `n_steps` decisions in its environments with
/// exploration sampling, and streams them to the learner in segments.
public final class Actor {
    let config: RunConfig
    let codec = WireCodec()
    let endpoints: Endpoints
    let requestedIndex: Int?
    let model: PolicyModel
    var sequence: UInt64 = 0

    public init(config: RunConfig, learnerHost: String, requestedIndex: Int?) {
        self.config = config
        endpoints = Endpoints(host: learnerHost, basePort: config.cluster.basePort)
        self.requestedIndex = requestedIndex
        BLAS.setThreads(1)
        model = PolicyModel(config: config)
    }

    /// Runs until the learner says to shut down or stops answering for `giveUpSeconds`.
    public func run(giveUpSeconds: Double = 60, log: (String) -> Void = Cluster.log) throws {
        let push = try Socket(.push, sendTimeoutMilliseconds: 5_000)
        try push.connect(endpoints.trajectories)
        let subscriber = try Socket(.subscribe, receiveTimeoutMilliseconds: 100)
        try subscriber.connect(endpoints.weights)
        let request = try Socket(.request, receiveTimeoutMilliseconds: 2_000)
        try request.connect(endpoints.control)

        // hello → welcome: our index, our seed, and the frozen base weights.
        var helloMeta: [String: Any] = ["config_hash": String(config.compatibilityHash)]
        if let requestedIndex { helloMeta["requested_index"] = requestedIndex }
        let hello = WireMessage(kind: .hello, policyVersion: 0, actorIndex: 0, sequence: 0, tensors: [Messages.meta(helloMeta)])
        let welcome = try call(request, hello, giveUpSeconds: giveUpSeconds)
        guard welcome.kind == .welcome else { throw refusalError(welcome) }
        let meta = try Messages.readMeta(welcome)
        let index = Int(welcome.actorIndex)
        let seed = UInt64((meta["seed"] as? String) ?? "") ?? config.seed
        try welcome.tensor(named: "base").copyFloats(into: model.baseParameters.values, count: model.baseParameters.count)
        let normalization = try Messages.readNormalization(welcome)
        log("actor \(index): joined learner at \(endpoints.control), seed \(seed), \(config.environment.environmentsPerActor) environments")

        let environments = try config.makeEnvironments(count: config.environment.environmentsPerActor, seed: seed, normalization: normalization)
        try environments.resetAll()
        var firsts = [UInt8](repeating: 1, count: environments.count)
        var random = Philox(seed: seed, stream: 0xAC70)
        var rolledVersion: UInt64 = 0
        var announcedVersion = welcome.policyVersion
        var lastContact = Date()
        var lastHeartbeat = Date.distantPast

        while true {
            if let bytes = try subscriber.receive(), let notice = try? codec.decode(bytes) {
                if notice.kind == .shutdown { log("actor \(index): learner finished, exiting"); return }
                if notice.kind == .weightsNotice { announcedVersion = max(announcedVersion, notice.policyVersion); lastContact = Date() }
            }
            if Date().timeIntervalSince(lastHeartbeat) > 1 {
                lastHeartbeat = Date()
                let beat = WireMessage(kind: .heartbeat, policyVersion: rolledVersion, actorIndex: UInt32(index), sequence: sequence, tensors: [])
                if let reply = try? call(request, beat, giveUpSeconds: 2) {
                    lastContact = Date()
                    if reply.kind == .shutdown { log("actor \(index): learner finished, exiting"); return }
                    announcedVersion = max(announcedVersion, reply.policyVersion)
                }
            }
            if Date().timeIntervalSince(lastContact) > giveUpSeconds {
                throw ConfigError("actor \(index): no word from the learner for \(Int(giveUpSeconds)) s, giving up")
            }
            guard announcedVersion > rolledVersion else { continue }

            let weights = try call(request, WireMessage(kind: .weightsRequest, policyVersion: announcedVersion, actorIndex: UInt32(index), sequence: sequence, tensors: []), giveUpSeconds: giveUpSeconds)
            guard weights.kind == .weights else { throw refusalError(weights) }
            try weights.tensor(named: "fine_tuned").copyFloats(into: model.trainableParameters.values, count: model.trainableParameters.count)
            rolledVersion = weights.policyVersion
            announcedVersion = max(announcedVersion, rolledVersion)
            try rollout(version: rolledVersion, index: index, environments: environments, firsts: &firsts, random: &random, push: push)
            lastContact = Date()
        }
    }

    /// Rolls out one iteration's decisions for `version` and sends them as segments.
    func rollout(version: UInt64, index: Int, environments: VectorEnvironment, firsts: inout [UInt8], random: inout Philox, push: Socket) throws {
        let e = environments.count
        let o = config.networkShape.observationDim, c = config.recordWidth
        let policy = model.rollout
        let records = Matrix(rows: e, columns: c)
        let total = config.train.stepsPerIteration
        var offset = 0
        while offset < total {
            let steps = min(config.cluster.segmentSteps, total - offset)
            var segment = Segment(policyVersion: version, actorIndex: index, stepOffset: offset, steps: steps, environments: e,
                                  observations: [], chains: [], rewards: [], terminated: [], truncated: [], firsts: [],
                                  nextObservations: [], finalIndices: [], finalObservations: [], episodeReturns: [], episodeLengths: [])
            segment.observations.reserveCapacity(steps * e * o)
            segment.chains.reserveCapacity(steps * e * c)
            for step in 0..<steps {
                segment.observations.append(contentsOf: environments.observations.buffer)
                policy.sample(observations: environments.observations, mode: .exploration, random: &random, records: records)
                segment.chains.append(contentsOf: records.buffer)
                try environments.step(chunks: records, offset: policy.actionOffset)
                segment.firsts.append(contentsOf: firsts)
                for environment in 0..<e {
                    segment.rewards.append(environments.rewards[environment])
                    segment.terminated.append(environments.terminated[environment] ? 1 : 0)
                    segment.truncated.append(environments.truncated[environment] ? 1 : 0)
                    firsts[environment] = (environments.terminated[environment] || environments.truncated[environment]) ? 1 : 0
                    if environments.truncated[environment] && !environments.terminated[environment] {
                        segment.finalIndices.append(Int32(step * e + environment))
                        segment.finalObservations.append(contentsOf: UnsafeBufferPointer(start: environments.finalObservations.row(environment), count: o))
                    }
                }
                for episode in environments.finishedEpisodes {
                    segment.episodeReturns.append(Float(episode.totalReward))
                    segment.episodeLengths.append(Int32(episode.length))
                }
            }
            segment.nextObservations = environments.observations.toArray()
            sequence += 1
            let bytes = try codec.encode(segment.message(sequence: sequence, observationWidth: o, chainWidth: c))
            guard try push.send(bytes) else { throw ConfigError("actor \(index): the learner did not take a segment within 5 s") }
            offset += steps
        }
    }

    /// Sends a request and waits for its reply, retrying on timeouts until `giveUpSeconds`.
    func call(_ socket: Socket, _ message: WireMessage, giveUpSeconds: Double) throws -> WireMessage {
        let bytes = try codec.encode(message)
        let deadline = Date().addingTimeInterval(giveUpSeconds)
        repeat {
            guard try socket.send(bytes) else { continue }
            if let reply = try socket.receive() { return try codec.decode(reply) }
        } while Date() < deadline
        throw ConfigError("no reply from the learner's control endpoint \(endpoints.control) within \(Int(giveUpSeconds)) s")
    }

    func refusalError(_ message: WireMessage) -> Error {
        let meta = (try? Messages.readMeta(message)) ?? [:]
        return ConfigError("the learner refused: \(meta["detail"] ?? message.kind)")
    }
}
