import XCTest
import Foundation
@testable import Cluster
import Diffusion
import Tensors
import Transport

/// Seeded chain transport (`cluster.chain_transport: seeded`): chains rebuilt from per-step seeds match the recorded
/// ones, a failed check falls back to full chains, and a whole run works with far fewer bytes per environment step.
final class SeededChainTests: XCTestCase {
    func config(port: Int, transport: String = "seeded", checkEvery: Int = 3, policy: String = "denoising_steps: 6, ft_denoising_steps: 3") throws -> RunConfig {
        try RunConfig.parse(yaml: """
        name: test
        seed: 5
        env: {task: pendulum, n_envs: 4, act_steps: 2, horizon_steps: 2}
        model: {\(policy), time_dim: 4, mlp_dims: [16, 16, 16], critic_dims: [16, 16, 16]}
        train: {n_train_itr: 2, n_steps: 24, batch_size: 48, update_epochs: 1, val_freq: 2, eval_episodes: 2, save_model_freq: 2}
        cluster: {actors: 2, base_port: \(port), segment_steps: 6, batch_timeout_s: 60, chain_transport: \(transport), chain_check_every: \(checkEvery)}
        """)
    }

    func randomPolicy(_ config: RunConfig) -> DiffusionPolicy {
        let policy = DiffusionPolicy(settings: config.denoising, network: config.networkShape)
        var random = Philox(seed: 3)
        policy.initialize(random: &random)
        // Make the fine-tuned copy differ from the base, so both networks matter.
        for index in 0..<policy.fineTuned.parameters.count { policy.fineTuned.parameters.values[index] *= 1.1 }
        return policy
    }

    func testConfigKeys() throws {
        let seeded = try config(port: 5555)
        XCTAssertEqual(seeded.cluster.chainTransport, .seeded)
        XCTAssertEqual(seeded.cluster.chainCheckEvery, 3)
        XCTAssertEqual(try config(port: 5555, transport: "full").compatibilityHash, seeded.compatibilityHash, "the learner decides; actors follow")
        XCTAssertThrowsError(try config(port: 5555, transport: "zipped")) { XCTAssertTrue("\($0)".contains("chain_transport")) }
        XCTAssertThrowsError(try config(port: 5555, policy: "policy: gaussian")) { XCTAssertTrue("\($0)".contains("Gaussian")) }
        XCTAssertEqual(try RunConfig.parse(yaml: "cluster: {actors: 1}").cluster.chainTransport, .full)
    }

    /// A row's chain depends on its seed, environment index, observation and weights, not on its batch: sampled one
    /// decision step at a time (as an actor does) and all at once (as the learner rebuilds), the chains agree to
    /// rounding; a different seed gives a different chain.
    func testRowsDrawTheirOwnNoiseWhateverTheBatch() throws {
        let config = try config(port: 5555)
        let sampler = SeededChainSampler(policy: randomPolicy(config))
        let result = sampler.selfTest(observationWidth: config.networkShape.observationDim, environments: 4, steps: 6, seed: 11)
        XCTAssertEqual(result.decisions, 24)
        XCTAssertLessThanOrEqual(result.chainDifference, 1e-6)
        XCTAssertLessThanOrEqual(result.logProbabilityDifference, 1e-4)

        let o = config.networkShape.observationDim, width = config.denoising.chainWidth
        let observations = Matrix(rows: 8, columns: o)
        for index in 0..<(8 * o) { observations.data[index] = Float(sin(Double(index))) }
        let a = Matrix(rows: 8, columns: width), b = Matrix(rows: 8, columns: width)
        sampler.sample(observations: observations, seeds: [7, 8], environments: 4, chains: a)
        sampler.sample(observations: observations, seeds: [7, 8], environments: 4, chains: b)
        XCTAssertEqual(a.toArray(), b.toArray(), "same seeds, same batch: bitwise the same")
        sampler.sample(observations: observations, seeds: [7, 9], environments: 4, chains: b)
        XCTAssertEqual(Array(a.toArray()[0..<(4 * width)]), Array(b.toArray()[0..<(4 * width)]), "the first decision's rows keep their seed")
        XCTAssertGreaterThan(SeededChainSampler.maxDifference(UnsafeBufferPointer(start: a.row(4), count: 4 * width),
                                                              UnsafeBufferPointer(start: b.row(4), count: 4 * width)), 0.01)
        // Environment e of a decision draws stream e: rows of the same seed differ.
        XCTAssertNotEqual(Array(a.toArray()[0..<width]), Array(a.toArray()[width..<(2 * width)]))

        // Rebuilt on 3 workers (the learner's threads), each row keeps its own stream: the same chains to rounding.
        let sharded = SeededChainSampler(policy: sampler.policy, shards: 3), c = Matrix(rows: 8, columns: width)
        sharded.sample(observations: observations, seeds: [7, 8], environments: 4, chains: c)
        let difference = SeededChainSampler.maxDifference(UnsafeBufferPointer(start: a.data, count: a.count), UnsafeBufferPointer(start: c.data, count: c.count))
        XCTAssertLessThanOrEqual(difference, 1e-6, "3 workers against 1")
    }

    func testSeededSegmentsTravelWithoutChains() throws {
        let config = try config(port: 5555)
        let o = config.networkShape.observationDim, c = config.recordWidth
        let segment = Segment(policyVersion: 1, actorIndex: 0, stepOffset: 0, steps: 2, environments: 4,
                              observations: [Float](repeating: 0.1, count: 2 * 4 * o), chains: [Float](repeating: 0.2, count: 2 * 4 * c),
                              rewards: [Float](repeating: 0, count: 8), terminated: [UInt8](repeating: 0, count: 8), truncated: [UInt8](repeating: 0, count: 8),
                              firsts: [UInt8](repeating: 0, count: 8), nextObservations: [Float](repeating: 0, count: 4 * o), finalIndices: [],
                              finalObservations: [], episodeReturns: [], episodeLengths: [], chainSeeds: [1, UInt64.max])
        let codec = WireCodec()
        let seededOnly = try codec.decode(try codec.encode(segment.message(sequence: 2, observationWidth: o, chainWidth: c, includeChains: false)))
        let decoded = try Segment(message: seededOnly, observationWidth: o, chainWidth: c, environments: 4, maxSteps: 24)
        XCTAssertEqual(decoded.chainSeeds, [1, UInt64.max])
        XCTAssertTrue(decoded.chains.isEmpty)
        let checked = try Segment(message: try codec.decode(try codec.encode(segment.message(sequence: 1, observationWidth: o, chainWidth: c, includeChains: true))),
                                  observationWidth: o, chainWidth: c, environments: 4, maxSteps: 24)
        XCTAssertEqual(checked.chains, segment.chains)
        XCTAssertEqual(checked.chainSeeds, segment.chainSeeds)
        // Seeds of the wrong length, or neither chains nor seeds, are refused.
        var wrong = seededOnly
        wrong.tensors = wrong.tensors.map { $0.name == "chain_seeds" ? WireTensor(name: "chain_seeds", int64s: [1, 2, 3], shape: [3]) : $0 }
        XCTAssertThrowsError(try Segment(message: wrong, observationWidth: o, chainWidth: c, environments: 4, maxSteps: 24))
        var none = seededOnly
        none.tensors.removeAll { $0.name == "chain_seeds" }
        XCTAssertThrowsError(try Segment(message: none, observationWidth: o, chainWidth: c, environments: 4, maxSteps: 24)) {
            XCTAssertTrue("\($0)".contains("neither chains nor chain_seeds"))
        }
    }

    /// The learner rebuilds an actor's seeded segment to within the tolerance of what the actor recorded; a sampled check
    /// that finds a larger difference keeps the recorded chains and switches the run to full chains.
    func testLearnerRebuildsAndFallsBackOnAFailedCheck() throws {
        let config = try config(port: 5555)
        let directory = try makeTemporaryDirectory()
        let start = try writeRandomPolicy(config: config, to: directory)
        let learner = try Learner(config: config, run: try RunDirectory(url: directory.appendingPathComponent("run")), basePolicy: start)
        let actorModel = PolicyModel(config: config)
        _ = try Checkpoint.load(actorModel, from: start)
        // Fine-tuned weights that differ from the base (the starting policy has both equal), the same on both sides: a
        // rebuild that ran a step with the wrong network would disagree.
        for parameters in [learner.model.trainableParameters, actorModel.trainableParameters] {
            for index in 0..<parameters.count { parameters.values[index] *= 1 + 0.2 * Float(sin(Double(index))) }
        }
        let control = ControlServer(socket: try Socket(.reply), codec: learner.codec, welcomeTensors: [], configHash: config.compatibilityHash,
                                    actors: 2, seed: 1)
        try learner.weights.advance(to: 1, chainTransport: .seeded)
        let weights = learner.weights.message
        control.publish { $0.weightsMessage = weights; $0.chainTransport = .seeded; $0.policyVersion = 1 }
        let chains = learner.chains, store = learner.weights
        guard case .diffusion(let actorPolicy) = actorModel else { return XCTFail("a diffusion policy") }
        let environments = try config.makeEnvironments(count: 4, seed: 9, normalization: nil)
        try environments.resetAll()
        var firsts = [UInt8](repeating: 1, count: 4)
        var random = Philox(seed: 21)
        let recorded = try SegmentRecorder.record(version: 1, index: 1, offset: 0, steps: 6, config: config, policy: actorModel.rollout, environments: environments,
                                               records: Matrix(rows: 4, columns: config.recordWidth), firsts: &firsts, random: &random,
                                               seededSampler: SeededChainSampler(policy: actorPolicy))
        XCTAssertEqual(recorded.chainSeeds.count, 6)

        var seedsOnly = recorded
        seedsOnly.chains = []
        XCTAssertNil(chains.resolve(&seedsOnly, weights: store, log: { _ in }))
        XCTAssertEqual(seedsOnly.chains.count, recorded.chains.count)
        let difference = seedsOnly.chains.withUnsafeBufferPointer { a in recorded.chains.withUnsafeBufferPointer { SeededChainSampler.maxDifference(a, $0) } }
        XCTAssertLessThanOrEqual(difference, Float(config.cluster.chainTolerance))
        XCTAssertEqual(chains.counts.rebuiltDecisions, 24)

        var checked = recorded
        XCTAssertNil(chains.resolve(&checked, weights: store, log: { _ in }))
        XCTAssertEqual(chains.transport, .seeded)
        XCTAssertEqual(chains.counts.checks, 1)

        // Seeds for a version the learner does not hold cannot be rebuilt.
        var future = recorded
        future.chains = []
        future.policyVersion = 7
        XCTAssertEqual(chains.resolve(&future, weights: store, log: { _ in }), "stale_version")

        var tampered = recorded
        tampered.chains[5] += 1e-3
        var lines: [String] = []
        XCTAssertNil(chains.resolve(&tampered, weights: store, log: { lines.append($0) }))
        XCTAssertEqual(tampered.chains, { var c = recorded.chains; c[5] += 1e-3; return c }(), "a checked segment trains on what the actor recorded")
        XCTAssertEqual(chains.transport, .full)
        XCTAssertTrue(chains.fallbackReason?.contains("actor 1") == true, chains.fallbackReason ?? "no reason")
        XCTAssertTrue(lines.contains { $0.contains("falling back to full chains") })

        // After the fallback, seeds alone are no longer trusted, and actors are told so by every control reply,
        // the current version's weights included.
        try learner.announceChainTransport(control: control)
        var late = recorded
        late.chains = []
        XCTAssertEqual(chains.resolve(&late, weights: store, log: { _ in }), "seeded_after_fallback")
        let codec = learner.codec
        func ask(_ message: WireMessage) throws -> [String: Any] { try Messages.readMeta(try codec.decode(control.respond(to: try codec.encode(message)))) }
        let welcome = try ask(WireMessage(kind: .hello, policyVersion: 0, actorIndex: 0, sequence: 1,
                                          tensors: [Messages.meta(["config_hash": String(config.compatibilityHash), "requested_index": 0])]))
        XCTAssertEqual(welcome["chain_transport"] as? String, "full")
        XCTAssertEqual(try ask(WireMessage(kind: .weightsRequest, policyVersion: 1, actorIndex: 0, sequence: 2, tensors: []))["chain_transport"] as? String, "full")
        XCTAssertEqual(try ask(WireMessage(kind: .heartbeat, policyVersion: 1, actorIndex: 0, sequence: 3, tensors: []))["chain_transport"] as? String, "full")
    }

    func testActorFollowsTheLearnersChoice() throws {
        let actor = try Actor(config: try config(port: 5555), learnerHost: "127.0.0.1", requestedIndex: 0)
        XCTAssertEqual(actor.chainTransport, .full)
        let reply = WireMessage(kind: .heartbeatReply, policyVersion: 1, actorIndex: 0, sequence: 1,
                                tensors: [Messages.meta(["chain_transport": "seeded", "chain_check_every": 4])])
        try actor.adoptChainTransport(from: reply, log: { _ in })
        XCTAssertEqual(actor.chainTransport, .seeded)
        XCTAssertEqual(actor.chainCheckEvery, 4)
        try actor.adoptChainTransport(from: WireMessage(kind: .heartbeatReply, policyVersion: 1, actorIndex: 0, sequence: 2, tensors: []), log: { _ in })
        XCTAssertEqual(actor.chainTransport, .seeded, "a reply without meta changes nothing")
        try actor.adoptChainTransport(from: WireMessage(kind: .weights, policyVersion: 2, actorIndex: 0, sequence: 2,
                                                        tensors: [Messages.meta(["chain_transport": "full"])]), log: { _ in })
        XCTAssertEqual(actor.chainTransport, .full)
        // An unknown transport or a negative check count is refused, naming the field, and changes nothing.
        for meta in [["chain_transport": "carrier-pigeon"], ["chain_transport": "seeded", "chain_check_every": -1]] as [[String: Any]] {
            let bad = WireMessage(kind: .heartbeatReply, policyVersion: 3, actorIndex: 0, sequence: 3, tensors: [Messages.meta(meta)])
            XCTAssertThrowsError(try actor.adoptChainTransport(from: bad, log: { _ in })) { error in
                XCTAssertTrue("\(error)".contains("meta field chain_"), "\(error)")
            }
            XCTAssertEqual(actor.chainTransport, .full)
        }
    }

    /// Async mode: segments of older versions are rebuilt with those versions' kept weights, and carried segments too.
    func testAsyncSeededRun() throws {
        var config = try config(port: 24_740, checkEvery: 2)
        config.cluster.synchronization = "async"
        config.train.iterations = 3
        let directory = try makeTemporaryDirectory()
        let start = try writeRandomPolicy(config: config, to: directory)
        let result = try runInProcessCluster(config: config, start: start, in: directory)
        XCTAssertEqual(result.summary["chain_transport"] as? String, "seeded", "\(result.summary["chain_fallback"] ?? "")")
        let records = try String(contentsOf: result.run.metrics, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["transport/chain_checks"] != nil }
        XCTAssertEqual(records.count, 3)
        XCTAssertGreaterThan(records.reduce(0) { $0 + ($1["transport/chain_rebuilt_decisions"] as? Int ?? 0) }, 0)
        XCTAssertGreaterThan(records.reduce(0) { $0 + ($1["transport/chain_checks"] as? Int ?? 0) }, 0)
        for record in records { XCTAssertLessThanOrEqual(record["transport/chain_check_max_diff"] as? Double ?? 1, config.cluster.chainTolerance) }
        XCTAssertGreaterThan(records.reduce(0) { $0 + ($1["transport/policy_lag/1"] as? Int ?? 0) }, 0, "some segments were a version behind")
    }

    /// Whole runs, in process: the seeded run passes its start-up self-test and every sampled check, trains on rebuilt
    /// chains, and sends far fewer bytes per environment step than the same run with full chains.
    func testSeededRunUsesFewerBytesAndPassesItsChecks() throws {
        func bytesPerStep(_ run: RunDirectory) throws -> [Double] {
            try String(contentsOf: run.metrics, encoding: .utf8).split(separator: "\n").compactMap {
                (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["transport/bytes_per_env_step"] as? Double
            }
        }
        let model = "denoising_steps: 10, ft_denoising_steps: 8"
        let seededConfig = try config(port: 24_710, checkEvery: 4, policy: model)
        let directory = try makeTemporaryDirectory()
        let start = try writeRandomPolicy(config: seededConfig, to: directory)
        let seeded = try runInProcessCluster(config: seededConfig, start: start, in: directory.appendingPathComponent("seeded"))
        XCTAssertEqual(seeded.summary["chain_transport"] as? String, "seeded")
        XCTAssertNil(seeded.summary["chain_fallback"])
        let selfTest = try XCTUnwrap(seeded.summary["chain_self_test"] as? [String: Any])
        XCTAssertLessThanOrEqual(try XCTUnwrap(selfTest["max_chain_difference"] as? Double), seededConfig.cluster.chainTolerance)
        XCTAssertTrue(seeded.lines.contains { $0.contains("seeded-chain self-test") })
        let records = try String(contentsOf: seeded.run.metrics, encoding: .utf8).split(separator: "\n").compactMap {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }.filter { $0["transport/chain_checks"] != nil }
        XCTAssertEqual(records.count, 2)
        for record in records {
            // 2 actors × 4 segments of 6 steps per iteration; each actor's 1st, 5th, … segment is checked.
            XCTAssertGreaterThanOrEqual(record["transport/chain_checks"] as? Int ?? 0, 2)
            XCTAssertGreaterThan(record["transport/chain_rebuilt_decisions"] as? Int ?? 0, (record["transport/chain_checks"] as? Int ?? 0) * 24)
            XCTAssertLessThanOrEqual(record["transport/chain_check_max_diff"] as? Double ?? 1, seededConfig.cluster.chainTolerance)
        }
        let full = try runInProcessCluster(config: try config(port: 24_720, transport: "full", policy: model), start: start, in: directory.appendingPathComponent("full"))
        XCTAssertEqual(full.summary["chain_transport"] as? String, "full")
        let seededBytes = try bytesPerStep(seeded.run), fullBytes = try bytesPerStep(full.run)
        XCTAssertEqual(seededBytes.count, 2)
        XCTAssertEqual(fullBytes.count, 2)
        XCTAssertLessThan(seededBytes.max()!, 0.6 * fullBytes.min()!, "seeded \(seededBytes) vs full \(fullBytes) bytes per env step")
    }
}
