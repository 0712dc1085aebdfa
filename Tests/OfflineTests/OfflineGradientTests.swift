import Algorithms
import Diffusion
import Foundation
import Networks
@testable import Offline
import ReferenceNetworks
import Tensors
import XCTest

/// Float64 finite-difference checks of every offline backward pass (relative error < 1e−3 per tensor).
final class OfflineGradientTests: XCTestCase {
    func smallPolicy(steps: Int = 3, seed: UInt64 = 1) -> DiffusionPolicy {
        let settings = DenoisingSettings(denoisingSteps: steps, fineTunedSteps: steps, horizonSteps: 2, actSteps: 2, actionDim: 2)
        let policy = DiffusionPolicy(settings: settings, network: DiffusionMLPShape(actionDim: 2, horizonSteps: 2, observationDim: 3, timeDim: 8,
                                                                                     mlpDims: [12, 12, 12], activation: .mish))
        var random = Philox(seed: seed)
        policy.initialize(random: &random)
        return policy
    }

    func smallCritic(seed: UInt64 = 2) -> TwinQCritic {
        let critic = TwinQCritic(shape: CriticShape(observationDim: 3, actionDim: 4, hiddenDims: [16, 16, 16]))
        var random = Philox(seed: seed)
        critic.initialize(random: &random)
        return critic
    }

    func testTwinCriticParameterAndActionGradients() {
        var random = Philox(seed: 11)
        let critic = smallCritic()
        let s = Matrix.random(5, 3, &random), a = Matrix.random(5, 4, &random, scale: 0.7)
        let r1 = Matrix.random(5, 1, &random), r2 = Matrix.random(5, 1, &random)
        let (q1, q2) = critic.forward(observations: s, actions: a)
        let reference1 = OfflineReference.q("q1", critic, observations: s.rowsAsDoubles, actions: a.rowsAsDoubles)
        let reference2 = OfflineReference.q("q2", critic, observations: s.rowsAsDoubles, actions: a.rowsAsDoubles)
        for row in 0..<5 {
            XCTAssertEqual(Double(q1[row, 0]), reference1[row], accuracy: 1e-5)
            XCTAssertEqual(Double(q2[row, 0]), reference2[row], accuracy: 1e-5)
        }
        critic.parameters.zeroGradients()
        let actionGradient = Matrix(rows: 0, columns: 4)
        critic.backward(q1Gradient: r1, q2Gradient: r2, actionGradient: actionGradient)
        func loss(_ actions: [[Double]]) -> Double {
            let v1 = OfflineReference.q("q1", critic, observations: s.rowsAsDoubles, actions: actions)
            let v2 = OfflineReference.q("q2", critic, observations: s.rowsAsDoubles, actions: actions)
            return (0..<5).reduce(0.0) { $0 + v1[$1] * Double(r1[$1, 0]) + v2[$1] * Double(r2[$1, 0]) }
        }
        let check = gradientCheck(critic.parameters, coordinatesPerTensor: 16) { loss(a.rowsAsDoubles) }
        XCTAssertLessThan(check.worst, 1e-3, "worst tensor \(check.name)")
        let h = 1e-6
        for row in 0..<5 { for column in 0..<4 {
            var plus = a.rowsAsDoubles, minus = plus
            plus[row][column] += h; minus[row][column] -= h
            let numeric = (loss(plus) - loss(minus)) / (2 * h)
            XCTAssertEqual(Double(actionGradient[row, column]), numeric, accuracy: 1e-4 * max(1, abs(numeric)))
        } }
    }

    func testExpectileLossMatchesHandComputation() {
        // u = target − value = (0.5, −0.5, −0.5); weights (0.7, 0.3, 0.3); loss = (0.7 + 0.3 + 0.3)·0.25/3.
        let targets: [Float] = [1, 0, 2], values: [Float] = [0.5, 0.5, 2.5]
        var gradient = [Float](repeating: 0, count: 3)
        let loss = expectileLoss(targets: targets, values: values, count: 3, expectile: 0.7, valueGradient: &gradient)
        XCTAssertEqual(loss, 0.325 / 3, accuracy: 1e-7)
        XCTAssertEqual(gradient[0], -2 * 0.7 * 0.5 / 3, accuracy: 1e-6)
        XCTAssertEqual(gradient[1], 2 * 0.3 * 0.5 / 3, accuracy: 1e-6)
        XCTAssertEqual(gradient[2], 2 * 0.3 * 0.5 / 3, accuracy: 1e-6)
    }

    func testValueNetworkExpectileGradients() {
        var random = Philox(seed: 12)
        let shape = CriticShape(observationDim: 3, actionDim: 4, hiddenDims: [16, 16, 16])
        let value = ValueNetwork(shape: shape)
        value.initialize(random: &random)
        let s = Matrix.random(6, 3, &random)
        let targets = (0..<6).map { _ in random.normal() * 0.3 }
        value.parameters.zeroGradients()
        let v = value.forward(s)
        let gradient = Matrix(rows: 6, columns: 1)
        _ = expectileLoss(targets: targets, values: v.data, count: 6, expectile: 0.7, valueGradient: gradient.data)
        value.backward(observations: s, valueGradient: gradient)
        let check = gradientCheck(value.parameters, coordinatesPerTensor: 16) {
            let values = OfflineReference.feedForward(s.rowsAsDoubles, value.parameters, prefix: "v", layers: 4).map { $0[0] }
            return (0..<6).reduce(0.0) { sum, row in
                let u = Double(targets[row]) - values[row]
                return sum + (u < 0 ? 0.3 : 0.7) * u * u / 6
            }
        }
        XCTAssertLessThan(check.worst, 1e-3, "worst tensor \(check.name)")
    }

    /// â by replaying the chain's draws in Float64: initial noise, then one draw per step (noise clamped to ±randn_clip).
    func referenceChain(_ policy: DiffusionPolicy, observations: Matrix, random start: Philox) -> [[Double]] {
        var replay = start
        let rows = observations.rows, width = policy.settings.chunkWidth
        let clip = Double(policy.settings.denoisedClip), noiseClip = Double(policy.settings.randnClip)
        let initial = Matrix(rows: rows, columns: width)
        replay.fillNormal(initial.data, count: rows * width)
        var x = initial.rowsAsDoubles
        let z = Matrix(rows: rows, columns: width)
        for t in stride(from: policy.settings.denoisingSteps - 1, through: 0, by: -1) {
            let step = policy.reverseStep(t, mode: .deterministic)
            let e = Reference.diffusionMLP(policy.base, chunk: x, timesteps: [Double](repeating: Double(step.networkTime), count: rows),
                                             observation: observations.rowsAsDoubles)
            replay.fillNormal(z.data, count: rows * width)
            x = (0..<rows).map { row in (0..<width).map { element in
                let denoised = min(max(Double(step.s1) * x[row][element] - Double(step.s2) * e[row][element], -clip), clip)
                let noise = min(max(Double(z[row, element]), -noiseClip), noiseClip)
                return Double(step.c1) * denoised + Double(step.c2) * x[row][element] + Double(step.std) * noise
            } }
        }
        return x
    }

    /// Diffusion-QL's policy term −η·mean Q1(s, â)/c through all K network calls of the chain (§2.2, §7.3).
    func testDiffusionQLActorLossThroughWholeChain() {
        let policy = smallPolicy()
        let critic = smallCritic()
        var random = Philox(seed: 13)
        let observations = Matrix.random(4, 3, &random)
        let chain = DifferentiableChain(policy: policy)
        let start = random
        let action = chain.sample(observations: observations, random: &random)
        let reference = referenceChain(policy, observations: observations, random: start)
        XCTAssertEqual(action.rowsAsDoubles.flatMap { $0 }, reference.flatMap { $0 }, accuracy: 1e-4)

        let eta = 2.5, normaliser = 0.7
        policy.base.parameters.zeroGradients()
        critic.forward(observations: observations, actions: action)
        let gradient = Matrix(rows: 4, columns: 1, values: [Float](repeating: Float(-eta / (4 * normaliser)), count: 4))
        let actionGradient = Matrix(rows: 0, columns: 4)
        critic.backward(q1Gradient: gradient, q2Gradient: nil, actionGradient: actionGradient)
        chain.backward(actionGradient: actionGradient)
        let check = gradientCheck(policy.base.parameters, coordinatesPerTensor: 16) {
            let sampled = referenceChain(policy, observations: observations, random: start)
            let q = OfflineReference.q("q1", critic, observations: observations.rowsAsDoubles, actions: sampled)
            return -eta * q.reduce(0, +) / 4 / normaliser
        }
        XCTAssertLessThan(check.worst, 1e-3, "worst tensor \(check.name)")
    }

    /// (L_diff, â⁰) by replaying the action approximation's draws in Float64.
    func referenceApproximation(_ policy: DiffusionPolicy, observations: Matrix, actions: Matrix, random start: Philox) -> (loss: Double, denoised: [[Double]]) {
        var replay = start
        let rows = actions.rows, width = policy.settings.chunkWidth, schedule = policy.schedule
        let noise = Matrix(rows: rows, columns: width)
        replay.fillNormal(noise.data, count: rows * width)
        let steps = (0..<rows).map { _ in replay.integer(below: schedule.steps) }
        let clean = actions.rowsAsDoubles, epsilon = noise.rowsAsDoubles
        let noisy = (0..<rows).map { row in (0..<width).map { schedule.sqrtAlphasCumulative[steps[row]] * clean[row][$0] + schedule.sqrtOneMinusAlphasCumulative[steps[row]] * epsilon[row][$0] } }
        let predicted = Reference.diffusionMLP(policy.base, chunk: noisy, timesteps: steps.map(Double.init), observation: observations.rowsAsDoubles)
        var loss = 0.0
        var denoised = noisy
        for row in 0..<rows { for element in 0..<width {
            loss += pow(predicted[row][element] - epsilon[row][element], 2) / Double(rows * width)
            let raw = schedule.sqrtRecipAlphasCumulative[steps[row]] * noisy[row][element] - schedule.sqrtRecipMinusOneAlphasCumulative[steps[row]] * predicted[row][element]
            denoised[row][element] = min(max(raw, -1), 1)
        } }
        return (loss, denoised)
    }

    /// EDP's action approximation (§3.2): gradient of w·L_diff + Σ r ⊙ â⁰ through the one ε-network pass.
    func testActionApproximationGradients() {
        let policy = smallPolicy(steps: 20)
        var random = Philox(seed: 14)
        let observations = Matrix.random(6, 3, &random), actions = Matrix.random(6, 4, &random, scale: 0.5)
        let r = Matrix.random(6, 4, &random)
        let approximation = ActionApproximation(policy: policy)
        let start = random
        policy.base.parameters.zeroGradients()
        let loss = approximation.forward(observations: observations, actions: actions, random: &random)
        let reference = referenceApproximation(policy, observations: observations, actions: actions, random: start)
        XCTAssertEqual(loss, reference.loss, accuracy: 1e-5 * max(1, reference.loss))
        XCTAssertEqual(approximation.denoised.rowsAsDoubles.flatMap { $0 }, reference.denoised.flatMap { $0 }, accuracy: 1e-4)
        approximation.backward(diffusionWeight: 0.5, denoisedGradient: r)
        let check = gradientCheck(policy.base.parameters, coordinatesPerTensor: 16) {
            let value = referenceApproximation(policy, observations: observations, actions: actions, random: start)
            var projected = 0.0
            for row in 0..<6 { for element in 0..<4 { projected += value.denoised[row][element] * Double(r[row, element]) } }
            return 0.5 * value.loss + projected
        }
        XCTAssertLessThan(check.worst, 1e-3, "worst tensor \(check.name)")
    }

    func testActionApproximationLossIsTheBehaviourCloningLoss() {
        let policy = smallPolicy(steps: 20)
        var random = Philox(seed: 15)
        let observations = Matrix.random(8, 3, &random), actions = Matrix.random(8, 4, &random, scale: 0.5)
        var first = random, second = random
        let approximated = ActionApproximation(policy: policy).forward(observations: observations, actions: actions, random: &first)
        let cloned = DiffusionBehaviourCloning(policy: policy).lossAndGradient(observations: observations, chunks: actions, random: &second)
        XCTAssertEqual(approximated, cloned, accuracy: 1e-9)
    }

    func randomBatch(rows: Int, random: inout Philox) -> OfflineBatch {
        let batch = OfflineBatch(rows: rows, observationDim: 3, actionDim: 4)
        random.fillNormal(batch.observations.data, count: batch.observations.count)
        random.fillUniform(batch.actions.data, count: batch.actions.count, low: -0.9, high: 0.9)
        random.fillNormal(batch.rewards.data, count: rows)
        random.fillNormal(batch.nextObservations.data, count: batch.nextObservations.count)
        batch.discounts.fill(0.99)
        return batch
    }

    /// CRR and IQL policy losses (§3.4–3.6): −mean f·log N(a; â⁰, I) + L_diff with f held fixed (stop-gradient), and
    /// the weights against a Float64 recomputation.
    func testWeightedRegressionLossesAndWeights() {
        for variant in [EDPVariant.crr, .iql] {
            let policy = smallPolicy(steps: 20)
            var settings = EDPSettings(variant: variant)
            settings.crrSamples = 3
            settings.guideCoefficient = 0.7
            let trainer = EDPTrainer(policy: policy, settings: settings,
                                     critic: CriticShape(observationDim: 3, actionDim: 4, hiddenDims: [16, 16, 16]), seed: 3)
            var random = Philox(seed: 16)
            let batch = randomBatch(rows: 5, random: &random)
            // Make the target critic differ from the online one so IQL's choice of copy is visible.
            for index in 0..<trainer.critic.target.count { trainer.critic.target.values[index] *= 0.9 }
            let start = trainer.random
            var statistics = OfflineStatistics()
            trainer.policyStep(batch: batch, statistics: &statistics)

            let s = batch.observations.rowsAsDoubles, a = batch.actions.rowsAsDoubles
            let denoised = trainer.approximation.denoised.rowsAsDoubles
            var expectedWeights: [Double] = []
            switch variant {
            case .crr:
                var replay = start
                let skip = Matrix(rows: 5, columns: 4)
                replay.fillNormal(skip.data, count: 20)
                for _ in 0..<5 { _ = replay.integer(below: policy.schedule.steps) }
                var perturbed: [[[Double]]] = Array(repeating: [], count: 5)
                for row in 0..<5 { for _ in 0..<3 { perturbed[row].append((0..<4).map { denoised[row][$0] + Double(replay.normal()) }) } }
                let q1 = OfflineReference.q("q1", trainer.critic, observations: s, actions: a), q2 = OfflineReference.q("q2", trainer.critic, observations: s, actions: a)
                for row in 0..<5 {
                    let samples = perturbed[row]
                    let p1 = OfflineReference.q("q1", trainer.critic, observations: Array(repeating: s[row], count: 3), actions: samples)
                    let p2 = OfflineReference.q("q2", trainer.critic, observations: Array(repeating: s[row], count: 3), actions: samples)
                    let baseline = (0..<3).reduce(0.0) { $0 + min(p1[$1], p2[$1]) } / 3
                    expectedWeights.append(min(20, exp(min(q1[row], q2[row]) - baseline)))
                }
            case .iql:
                let target = trainer.critic.target
                let q1 = OfflineReference.q("q1", trainer.critic, observations: s, actions: a, parameters: target)
                let q2 = OfflineReference.q("q2", trainer.critic, observations: s, actions: a, parameters: target)
                let v = OfflineReference.feedForward(s, trainer.value.parameters, prefix: "v", layers: 4).map { $0[0] }
                expectedWeights = (0..<5).map { min(100, exp(3 * (min(q1[$0], q2[$0]) - v[$0]))) }
            case .td3:
                XCTFail("not a weighted-regression variant")
            }
            for row in 0..<5 {
                XCTAssertEqual(Double(trainer.weights.data[row]), expectedWeights[row], accuracy: 1e-4 * max(1, expectedWeights[row]), "\(variant) weight \(row)")
            }
            let weights = (0..<5).map { Double(trainer.weights.data[$0]) }
            let check = gradientCheck(policy.base.parameters, coordinatesPerTensor: 16) {
                let value = referenceApproximation(policy, observations: batch.observations, actions: batch.actions, random: start)
                var guide = 0.0
                for row in 0..<5 {
                    let squared = (0..<4).reduce(0.0) { $0 + pow(a[row][$1] - value.denoised[row][$1], 2) }
                    guide -= weights[row] * (-0.5 * squared - 2 * log(2 * Double.pi)) / 5
                }
                return value.loss + 0.7 * guide
            }
            XCTAssertLessThan(check.worst, 1e-3, "\(variant): worst tensor \(check.name)")
        }
    }

    /// EDP-TD3's policy term −λ·mean Q_j(s, â⁰) with λ = α/sg(mean |Q_j|) (§3.3), through the one ε-network pass.
    func testTD3GuideLossGradients() {
        let policy = smallPolicy(steps: 20)
        let trainer = EDPTrainer(policy: policy, settings: EDPSettings(variant: .td3),
                                 critic: CriticShape(observationDim: 3, actionDim: 4, hiddenDims: [16, 16, 16]), seed: 4)
        var random = Philox(seed: 17)
        let batch = randomBatch(rows: 5, random: &random)
        var replay = trainer.random
        let start = replay
        var statistics = OfflineStatistics()
        trainer.policyStep(batch: batch, statistics: &statistics)
        // The coin flip follows the action approximation's draws.
        let skip = Matrix(rows: 5, columns: 4)
        replay.fillNormal(skip.data, count: 20)
        for _ in 0..<5 { _ = replay.integer(below: policy.schedule.steps) }
        let name = replay.uniform() < 0.5 ? "q1" : "q2"
        let denoised = trainer.approximation.denoised.rowsAsDoubles
        let values = OfflineReference.q(name, trainer.critic, observations: batch.observations.rowsAsDoubles, actions: denoised)
        let lambda = 2.0 / (values.map(abs).reduce(0, +) / 5)
        let check = gradientCheck(policy.base.parameters, coordinatesPerTensor: 16) {
            let value = referenceApproximation(policy, observations: batch.observations, actions: batch.actions, random: start)
            let q = OfflineReference.q(name, trainer.critic, observations: batch.observations.rowsAsDoubles, actions: value.denoised)
            return value.loss - lambda * q.reduce(0, +) / 5
        }
        XCTAssertLessThan(check.worst, 1e-3, "worst tensor \(check.name)")
    }
}

/// Values the spec gives (docs/offline-algorithms.md §6, offline-schedule-vectors.json).
final class OfflineGoldenTests: XCTestCase {
    func fixture() throws -> [String: Any] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "offline-schedule-vectors", withExtension: "json", subdirectory: "Fixtures"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    /// §6.1 worked reverse step: vp K = 5, i = 2, a^k = 0.7, ε̂ = 0.4 → x̂₀ = 0.836597468, μ = 0.700523458.
    func testReverseStepMatchesWorkedExample() throws {
        let schedule = try XCTUnwrap(fixture()["diffusion_ql_vp_K5"] as? [String: Any])
        func value(_ key: String) throws -> Float { Float(try XCTUnwrap(schedule[key] as? [Double])[2]) }
        let step = ReverseStepCoefficients(networkTime: 2, s1: try value("sqrt_recip_alphas_cumprod"), s2: try value("sqrt_recipm1_alphas_cumprod"),
                                           c1: try value("posterior_mean_coef1"), c2: try value("posterior_mean_coef2"),
                                           std: try value("posterior_variance").squareRoot())
        let result = step.mean(x: 0.7, epsilon: 0.4, clip: 1)
        XCTAssertEqual(Double(result.denoised), 0.836597468, accuracy: 1e-6)
        XCTAssertEqual(Double(result.mean), 0.700523458, accuracy: 1e-6)
        XCTAssertEqual(Double(step.std), 0.653254676, accuracy: 1e-6)
    }

    /// §6.2 action approximation: linear K = 1000, index 99, a = 0.3, ε = 0.5, ε̂ = 0.45.
    func testActionApproximationMatchesWorkedExample() throws {
        let selected = try XCTUnwrap(fixture()["edp_linear_K1000_selected"] as? [String: Any])
        let alphaBar = try XCTUnwrap(selected["alphas_cumprod"] as? [Double])[2]
        let noisy = ActionApproximation.noised(clean: 0.3, noise: 0.5, sqrtAlphaBar: Float(alphaBar.squareRoot()),
                                               sqrtOneMinusAlphaBar: Float((1 - alphaBar).squareRoot()))
        XCTAssertEqual(Double(noisy), 0.444587055, accuracy: 1e-6)
        let denoised = ActionApproximation.denoised(noisy: noisy, epsilon: 0.45, sqrtRecipAlphaBar: Float((1 / alphaBar).squareRoot()),
                                                    sqrtRecipMinusOneAlphaBar: Float((1 / alphaBar - 1).squareRoot()))
        XCTAssertEqual(Double(denoised), 0.316941417, accuracy: 1e-6)
        let action: [Float] = [0.3], estimate: [Float] = [denoised]
        XCTAssertEqual(ActionApproximation.surrogateLogProbability(actions: action, denoised: estimate, count: 1), -0.919082039, accuracy: 1e-6)
    }
}

func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) where abs(x - y) > accuracy * max(1, abs(y)) {
        XCTFail("\(x) ≠ \(y) (accuracy \(accuracy))", file: file, line: line)
        return
    }
}
