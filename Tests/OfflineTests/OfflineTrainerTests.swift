import Datasets
import Diffusion
import Foundation
import Networks
@testable import Offline
import Tensors
import XCTest

/// Chunk transitions from trajectories: windows, discounted chunk rewards, terminated vs cut episodes.
final class OfflineDatasetTests: XCTestCase {
    func testChunkTransitionsRespectTerminationAndTimeLimits() throws {
        // Episode 0 (steps 0–3) terminates; episode 1 (steps 4–8) is cut by a time limit. Do = 1, Da = 1.
        let states: [Float] = [0, 1, 2, 3, 10, 11, 12, 13, 14]
        let trajectories = TrajectoryDataset(states: states, stateDimension: 1, actions: states.map { $0 / 20 }, actionDimension: 1,
                                             trajectoryLengths: [4, 5], rewards: [1, 2, 3, 4, 5, 6, 7, 8, 9],
                                             terminals: [false, false, false, true, false, false, false, false, false])
        let normalization = Normalization(obsMin: [0], obsMax: [14], actionMin: [-1], actionMax: [1])
        let dataset = try OfflineDataset(dataset: trajectories, normalization: normalization, conditionSteps: 2, horizonSteps: 2, discount: 0.5)
        // Episode 0: starts 0, 1, 2 (2 ends at the termination). Episode 1: starts 4, 5, 6; start 7 would need step 9.
        XCTAssertEqual(dataset.count, 6)
        func raw(_ normalized: Float) -> Float { (normalized + 1) / 2 * 14 }
        let firstWindow = (0..<2).map { raw(dataset.observations[0, $0]) }
        XCTAssertEqual(firstWindow[0], 0, accuracy: 1e-4)   // clamped to the episode's first state
        XCTAssertEqual(firstWindow[1], 0, accuracy: 1e-4)
        XCTAssertEqual(raw(dataset.nextObservations[0, 0]), 1, accuracy: 1e-4)
        XCTAssertEqual(raw(dataset.nextObservations[0, 1]), 2, accuracy: 1e-4)
        XCTAssertEqual(dataset.rewards.data[0], 1 + 0.5 * 2)
        XCTAssertEqual(dataset.discounts.data[0], 0.25)
        XCTAssertEqual(dataset.rewards.data[2], 3 + 0.5 * 4)
        XCTAssertEqual(dataset.discounts.data[2], 0, "the chunk that ends in the termination does not bootstrap")
        XCTAssertEqual(raw(dataset.observations[3, 0]), 10, accuracy: 1e-4)
        XCTAssertEqual(dataset.discounts.data[5], 0.25, "a cut episode's transitions still bootstrap")
        XCTAssertEqual(raw(dataset.nextObservations[5, 1]), 14, accuracy: 1e-4)
        XCTAssertEqual(dataset.actions[3, 0], Float(10.0 / 20), accuracy: 1e-5)
        // Monte Carlo returns run to the episode's end: G₀ = 1 + ½·2 + ¼·3 + ⅛·4, G₂ = 3 + ½·4; the cut episode's
        // sum stops at its last recorded step (start 6: 7 + ½·8 + ¼·9).
        let returns = try XCTUnwrap(dataset.returns)
        XCTAssertEqual(returns.data[0], 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 4, accuracy: 1e-6)
        XCTAssertEqual(returns.data[2], 3 + 0.5 * 4, accuracy: 1e-6)
        XCTAssertEqual(returns.data[5], 7 + 0.5 * 8 + 0.25 * 9, accuracy: 1e-6)

        var random = Philox(seed: 1)
        let batch = dataset.makeBatch(size: 64)
        dataset.sample(into: batch, random: &random)
        XCTAssertEqual(batch.count, 64)
        XCTAssertTrue((0..<64).allSatisfy { [0, 0.25].contains(batch.discounts.data[$0]) })
        XCTAssertTrue((0..<64).allSatisfy { row in (0..<6).contains { returns.data[$0] == batch.returns.data[row] } },
                      "every sampled return is one of the transitions'")
    }
}

/// Update bookkeeping of both trainers: target actor schedule, Polyak targets, max-Q backup, checkpoint sets.
final class OfflineTrainerMechanicsTests: XCTestCase {
    func tinySetup(seed: UInt64) -> (DiffusionPolicy, OfflineDataset) {
        let settings = DenoisingSettings(denoisingSteps: 4, fineTunedSteps: 4, horizonSteps: 1, actSteps: 1, actionDim: 2)
        let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 2, horizonSteps: 1, observationDim: 3, timeDim: 8,
                                                                                     mlpDims: [16, 16, 16], activation: .mish))
        var random = Philox(seed: seed)
        policy.initialize(random: &random)
        let count = 64
        let observations = Matrix.random(count, 3, &random), next = Matrix.random(count, 3, &random)
        let actions = Matrix(rows: count, columns: 2)
        random.fillUniform(actions.data, count: actions.count, low: -1, high: 1)
        let rewards = (0..<count).map { _ in random.normal() }
        let discounts = (0..<count).map { $0 % 7 == 0 ? Float(0) : 0.99 }
        let returns = (0..<count).map { 5 + 2 * observations[$0, 0] - observations[$0, 1] }   // learnable from s
        return (policy, OfflineDataset(observations: observations, actions: actions, rewards: rewards, nextObservations: next, discounts: discounts,
                                       returns: returns))
    }

    func testDiffusionQLTargetActorStaysFrozenUntilItsStart() {
        let (policy, dataset) = tinySetup(seed: 1)
        var settings = DiffusionQLSettings()
        settings.targetActor = TargetActorSchedule(decay: 0.995, every: 3, start: 3)
        settings.maxQBackup = true
        settings.maxQSamples = 3
        let trainer = DiffusionQLTrainer(policy: policy, settings: settings,
                                         critic: CriticShape(observationDim: 3, actionDim: 2, hiddenDims: [16, 16, 16]), seed: 2)
        let initial = trainer.targetPolicy.base.parameters.valueBuffer.map { $0 }
        let criticTarget = trainer.critic.target.valueBuffer.map { $0 }
        var random = Philox(seed: 3)
        let batch = dataset.makeBatch(size: 16)
        for step in 0..<4 {
            dataset.sample(into: batch, random: &random)
            let statistics = trainer.trainStep(batch: batch)
            XCTAssertEqual(statistics.step, step)
            XCTAssertTrue(statistics.metrics.allSatisfy { $0.value.isFinite }, "\(statistics)")
            let frozen = trainer.targetPolicy.base.parameters.valueBuffer.map { $0 } == initial
            XCTAssertEqual(frozen, step < 3, "target actor at step \(step)")
        }
        // EMA moves 0.5 % of the way per application; the critic target moves τ per step.
        XCTAssertNotEqual(trainer.critic.target.valueBuffer.map { $0 }, criticTarget)
        XCTAssertEqual(Set(trainer.parameterSets.keys), ["actor", "actor_ema", "critic", "critic_target"])
        XCTAssertEqual(trainer.actorOptimizer.step, 4)
    }

    func testEDPVariantsTrainAndExposeTheirState() {
        for variant in EDPVariant.allCases {
            let (policy, dataset) = tinySetup(seed: 4)
            var settings = EDPSettings(variant: variant)
            settings.maxQBackup = variant == .td3
            settings.maxQSamples = 2
            settings.crrSamples = 2
            let trainer = EDPTrainer(policy: policy, settings: settings,
                                     critic: CriticShape(observationDim: 3, actionDim: 2, hiddenDims: [16, 16, 16]), seed: 5)
            var random = Philox(seed: 6)
            let batch = dataset.makeBatch(size: 16)
            for _ in 0..<3 {
                dataset.sample(into: batch, random: &random)
                let statistics = trainer.trainStep(batch: batch)
                XCTAssertTrue(statistics.metrics.allSatisfy { $0.value.isFinite }, "\(variant): \(statistics)")
                XCTAssertGreaterThan(statistics.criticGradientNorm, 0, "\(variant)")
                XCTAssertGreaterThan(statistics.actorGradientNorm, 0, "\(variant)")
                if variant == .iql { XCTAssertGreaterThan(statistics.valueGradientNorm, 0) }
            }
            XCTAssertEqual(trainer.parameterSets["value"] != nil, variant == .iql)
            let actions = Matrix(rows: 0, columns: 2)
            trainer.selectActions(observations: batch.observations, actions: actions)
            XCTAssertEqual(actions.rows, 16)
            XCTAssertTrue(actions.toArray().allSatisfy { abs($0) <= 1 })
        }
    }

    /// Critic warm-up with a frozen actor: critics (and V) train, the actor does not move; Diffusion-QL with η = 0 trains
    /// the actor by its diffusion loss alone, exactly as the full step would with a zero Q term.
    func testFrozenActorWarmUpTrainsOnlyTheCritics() {
        let shape = CriticShape(observationDim: 3, actionDim: 2, hiddenDims: [16, 16, 16])
        for variant in EDPVariant.allCases {
            let (policy, dataset) = tinySetup(seed: 8)
            var settings = EDPSettings(variant: variant)
            settings.freezeActor = true
            let trainer = EDPTrainer(policy: policy, settings: settings, critic: shape, seed: 9)
            let actor = policy.base.parameters.valueBuffer.map { $0 }, critic = trainer.critic.parameters.valueBuffer.map { $0 }
            var random = Philox(seed: 10)
            let batch = dataset.makeBatch(size: 16)
            for _ in 0..<3 {
                dataset.sample(into: batch, random: &random)
                let statistics = trainer.trainStep(batch: batch)
                XCTAssertGreaterThan(statistics.criticGradientNorm, 0, "\(variant)")
                if variant == .iql { XCTAssertGreaterThan(statistics.valueGradientNorm, 0) }
            }
            XCTAssertEqual(policy.base.parameters.valueBuffer.map { $0 }, actor, "\(variant): the actor stays put")
            XCTAssertNotEqual(trainer.critic.parameters.valueBuffer.map { $0 }, critic, "\(variant)")
            XCTAssertEqual(trainer.actorOptimizer.step, 0)
        }
        for freeze in [true, false] {
            let (policy, dataset) = tinySetup(seed: 11)
            var settings = DiffusionQLSettings()
            settings.eta = 0
            settings.freezeActor = freeze
            let trainer = DiffusionQLTrainer(policy: policy, settings: settings, critic: shape, seed: 12)
            let actor = policy.base.parameters.valueBuffer.map { $0 }
            var random = Philox(seed: 13)
            let batch = dataset.makeBatch(size: 16)
            dataset.sample(into: batch, random: &random)
            let statistics = trainer.trainStep(batch: batch)
            XCTAssertGreaterThan(statistics.criticGradientNorm, 0)
            XCTAssertEqual(policy.base.parameters.valueBuffer.map { $0 } == actor, freeze, "frozen: \(freeze)")
            XCTAssertEqual(trainer.actorOptimizer.step, freeze ? 0 : 1)
            if !freeze { XCTAssertEqual(statistics.actorLoss, statistics.diffusionLoss) }
        }
    }

    /// Monte Carlo pre-training regresses both critics (and EDP-IQL's V) on the batch's returns, leaves the actor and
    /// the step counter alone, and hands the targets the fitted critics.
    func testCriticPretrainingFitsTheReturns() {
        let shape = CriticShape(observationDim: 3, actionDim: 2, hiddenDims: [16, 16, 16])
        let (policy, dataset) = tinySetup(seed: 14)
        let edp = EDPTrainer(policy: policy, settings: EDPSettings(variant: .iql), critic: shape, seed: 15)
        let dql = DiffusionQLTrainer(policy: tinySetup(seed: 16).0, critic: shape, seed: 17)
        let actor = policy.base.parameters.valueBuffer.map { $0 }
        var random = Philox(seed: 18)
        let batch = dataset.makeBatch(size: 32)
        dataset.sample(into: batch, random: &random)
        for (index, pretrain) in [edp.pretrainCriticStep, dql.pretrainCriticStep].enumerated() {
            let first = pretrain(batch)
            var last = first
            for _ in 0..<500 { last = pretrain(batch) }
            XCTAssertLessThan(last.criticLoss, 0.2 * first.criticLoss, "trainer \(index): the critics fit the returns")
            XCTAssertEqual(last.targetMean, mean(batch.returns), accuracy: 1e-9)
            if index == 0 { XCTAssertLessThan(last.valueLoss, 0.2 * first.valueLoss, "V fits the returns") }
        }
        XCTAssertEqual(edp.critic.target.valueBuffer.map { $0 }, edp.critic.parameters.valueBuffer.map { $0 })
        XCTAssertEqual(dql.critic.target.valueBuffer.map { $0 }, dql.critic.parameters.valueBuffer.map { $0 })
        XCTAssertEqual(policy.base.parameters.valueBuffer.map { $0 }, actor, "the actor stays put")
        XCTAssertEqual(edp.step, 0)
        XCTAssertEqual(dql.step, 0)
    }

    func testAdamStateRoundTrips() {
        let (policy, _) = tinySetup(seed: 7)
        let trainer = EDPTrainer(policy: policy, seed: 1)
        let state = (step: 3, firstMoment: [Float](repeating: 0.5, count: trainer.criticOptimizer.parameters.count),
                     secondMoment: [Float](repeating: 0.25, count: trainer.criticOptimizer.parameters.count))
        trainer.criticOptimizer.restore(step: state.step, firstMoment: state.firstMoment, secondMoment: state.secondMoment)
        let restored = trainer.criticOptimizer.state()
        XCTAssertEqual(restored.step, 3)
        XCTAssertEqual(restored.firstMoment, state.firstMoment)
        XCTAssertEqual(restored.secondMoment, state.secondMoment)
    }
}
