import XCTest
import Foundation
import Algorithms
import Diffusion
import Networks
import Tensors

/// Parity with the DPPO reference (irom-princeton/dppo v0.8): network outputs, chain sampling with the
/// reference's own noise, transition log-likelihoods, and the PPO loss with its gradients, against numbers that
/// `scripts/generate_parity_fixtures.py` produced by running the reference's PPODiffusion, DiffusionMLP and
/// CriticObs (see Fixtures/README.md).
///
/// The fixtures folder is `$DPPO_FIXTURES` when set (any seed's output of the generator), else the committed
/// `Fixtures/`. Every configuration subfolder (`ddpm/`, `ddim/`) is checked.
///
/// Tolerance: |a − b| ≤ 1e−4 · max(|b|, s), where b is the reference's value and s the scale of that quantity:
/// for a tensor, the largest |b| in it (an element near zero carries the rounding error of the computation that
/// produced its neighbours, not one proportional to itself); for the policy loss, mean |Â·ρ| (it is a mean of
/// O(1) terms of both signs that nearly cancel); for approx_kl, mean |ρ − 1| (it is (ρ − 1) − ln ρ, a difference
/// of terms that size, so float32 rounding of ρ sets its absolute error); 0 for quantities bounded away from zero
/// (value loss, ratio mean, gradient norms), i.e. plain 1e−4 relative. The clip fraction is a count and must match
/// exactly; the generator keeps every input of a non-smooth operation (ratio clip, log-prob clamp, x̂₀ clamp,
/// value clip) away from its kink, so no rounding difference can flip a branch.
final class ParityTests: XCTestCase {
    static let tolerance = 1e-4

    // MARK: Tests, one per configuration and quantity

    func testDDPMNetworkOutputs() throws { try checkNetworkOutputs(try fixture("ddpm")) }
    func testDDPMSamplingExploration() throws { try checkSampling(try fixture("ddpm"), mode: .exploration) }
    func testDDPMSamplingDeterministic() throws { try checkSampling(try fixture("ddpm"), mode: .deterministic) }
    func testDDPMTransitionLogProbabilities() throws { try checkLogProbabilities(try fixture("ddpm")) }
    func testDDPMLossAndGradients() throws { try checkLoss(try fixture("ddpm")) }

    func testDDIMNetworkOutputs() throws { try checkNetworkOutputs(try fixture("ddim")) }
    func testDDIMSamplingExploration() throws { try checkSampling(try fixture("ddim"), mode: .exploration) }
    func testDDIMSamplingDeterministic() throws { try checkSampling(try fixture("ddim"), mode: .deterministic) }
    func testDDIMTransitionLogProbabilities() throws { try checkLogProbabilities(try fixture("ddim")) }
    func testDDIMLossAndGradients() throws { try checkLoss(try fixture("ddim")) }

    // MARK: Checks

    /// ε̂ of both networks for arbitrary (x, t, o) rows, V of the critic, and parameter counts: a wrong weight
    /// mapping or layer layout shows up here before anything else.
    func checkNetworkOutputs(_ fixture: Fixture) throws {
        let policy = try fixture.policy()
        let critic = try fixture.critic()
        XCTAssertEqual(policy.fineTuned.parameters.count, fixture.int("parameter_counts", "actor"), "\(fixture.name): actor parameter count")
        XCTAssertEqual(critic.parameters.count, fixture.int("parameter_counts", "critic"), "\(fixture.name): critic parameter count")

        let x = try fixture.matrix("network.x", columns: fixture.chunkWidth)
        let observations = try fixture.matrix("network.obs", columns: fixture.observationWidth)
        let times = try fixture.values("network.t")
        for (network, key) in [(policy.fineTuned, "network.eps_ft"), (policy.base, "network.eps_base")] {
            let output = times.withUnsafeBufferPointer { network.forward(noisyChunk: x, timesteps: $0.baseAddress!, observation: observations) }
            compare(output.toArray(), try fixture.values(key), scale: nil, "\(fixture.name) \(key)")
        }
        let values = critic.forward(try fixture.matrix("batch.obs", columns: fixture.observationWidth))
        compare(values.toArray(), try fixture.values("batch.values"), scale: nil, "\(fixture.name) critic values")
    }

    /// Chains from the reference's recorded noise: the initial x, then one draw per sampling step.
    func checkSampling(_ fixture: Fixture, mode: SamplingMode) throws {
        let policy = try fixture.policy()
        let name = mode == .exploration ? "exploration" : "deterministic"
        let noise = try fixture.values("sample.\(name).noise")
        let observations = try fixture.matrix("batch.obs", columns: fixture.observationWidth)
        let draw = observations.rows * fixture.chunkWidth
        let steps = fixture.int("config", "sampling_steps")
        XCTAssertEqual(noise.count, (steps + 1) * draw, "\(fixture.name): recorded noise size")
        let chains = Matrix(rows: 0, columns: policy.settings.chainWidth)
        var calls = 0, badRequests: [Int] = []
        policy.sampleChains(observations: observations, mode: mode, chains: chains) { destination, count in
            if count == draw && calls <= steps {
                noise.withUnsafeBufferPointer { destination.update(from: $0.baseAddress! + calls * draw, count: count) }
            } else {
                badRequests.append(count)
                destination.update(repeating: 0, count: count)
            }
            calls += 1
        }
        XCTAssertEqual(calls, steps + 1, "\(fixture.name) \(name): noise requests (the reference draws the initial x, then once per step)")
        XCTAssertEqual(badRequests, [], "\(fixture.name) \(name): noise requests of the wrong size (expected \(draw) values each) or too many")
        compare(chains.toArray(), try fixture.values("sample.\(name).chains"), scale: nil, "\(fixture.name) \(name) chains")
    }

    /// Transition log-likelihoods (mean over the first Ta rows of the clamped element log-probs) for every
    /// fine-tuned transition of the batch chains (the reference's get_logprobs) and for the minibatch pairs
    /// (get_logprobs_subsample).
    func checkLogProbabilities(_ fixture: Fixture) throws {
        let policy = try fixture.policy()
        let kPrime = policy.settings.fineTunedSteps, width = fixture.chunkWidth
        let chains = try fixture.values("batch.chains")
        let observations = try fixture.values("batch.obs")
        let decisions = observations.count / fixture.observationWidth
        let inputs = Matrix(rows: decisions * kPrime, columns: width)
        let outputs = Matrix(rows: decisions * kPrime, columns: width)
        let rowObservations = Matrix(rows: decisions * kPrime, columns: fixture.observationWidth)
        var timesteps: [Int] = []
        for b in 0..<decisions {
            for j in 0..<kPrime {
                let row = b * kPrime + j
                let chain = b * (kPrime + 1) * width
                for e in 0..<width {
                    inputs[row, e] = chains[chain + j * width + e]
                    outputs[row, e] = chains[chain + (j + 1) * width + e]
                }
                for e in 0..<fixture.observationWidth { rowObservations[row, e] = observations[b * fixture.observationWidth + e] }
                timesteps.append(kPrime - 1 - j)
            }
        }
        var result = [Float](repeating: 0, count: decisions * kPrime)
        result.withUnsafeMutableBufferPointer {
            policy.transitionLogProbabilities(inputs: inputs, outputs: outputs, timesteps: timesteps, observations: rowObservations, into: $0.baseAddress!)
        }
        let expected = fixture.reduceLogProbabilities(try fixture.values("batch.logprobs"))
        compare(result.map(Double.init), expected, scale: nil, "\(fixture.name) get_logprobs (batch chains)")

        let minibatch = try fixture.minibatch()
        var pairResult = [Float](repeating: 0, count: minibatch.count)
        let pairTimesteps = minibatch.terms.map { kPrime - 1 - $0 }
        pairResult.withUnsafeMutableBufferPointer {
            policy.transitionLogProbabilities(inputs: minibatch.inputs, outputs: minibatch.outputs, timesteps: pairTimesteps,
                                              observations: minibatch.observations, into: $0.baseAddress!)
        }
        compare(pairResult.map(Double.init), fixture.reduceLogProbabilities(try fixture.values("ppo.newlogprobs")), scale: nil,
                "\(fixture.name) get_logprobs_subsample (pairs)")
    }

    /// PPODiffusion.loss: policy loss, value loss, diagnostics, and the gradients of pg_loss + vf_coef·v_loss.
    func checkLoss(_ fixture: Fixture) throws {
        let policy = try fixture.policy()
        let critic = try fixture.critic()
        let update = PPOUpdate(policy: policy, critic: critic, hyperparameters: fixture.hyperparameters(), streams: 1, seed: 0)
        let minibatch = try fixture.minibatch()
        let terms = update.computeLoss(minibatch)
        let outputs = fixture.json["outputs"] as! [String: Any]
        func output(_ key: String) -> Double { (outputs[key] as! NSNumber).doubleValue }
        let scales = fixture.json["scales"] as! [String: Any]
        func scale(_ key: String) -> Double { (scales[key] as! NSNumber).doubleValue }

        compare([terms.policyLoss], [output("pg_loss")], scale: scale("pg_loss"), "\(fixture.name) pg_loss")
        compare([terms.valueLoss], [output("v_loss")], scale: 0, "\(fixture.name) v_loss")
        compare([terms.ratio], [output("ratio_mean")], scale: 0, "\(fixture.name) ratio mean")
        compare([terms.approxKL], [output("approx_kl")], scale: scale("approx_kl"), "\(fixture.name) approx_kl")
        XCTAssertEqual(Int((terms.clipFraction * Double(minibatch.count)).rounded()), Int((output("clipfrac") * Double(minibatch.count)).rounded()),
                       "\(fixture.name): clipped pairs (clipfrac \(terms.clipFraction) vs \(output("clipfrac")))")
        compare([terms.actorGradientNorm], [output("actor_ft_grad_norm")], scale: 0, "\(fixture.name) actor_ft gradient norm")
        compare([terms.criticGradientNorm], [output("critic_grad_norm")], scale: 0, "\(fixture.name) critic gradient norm")
        compare([policy.fineTuned.parameters.gradientNorm()], [output("actor_ft_grad_norm")], scale: 0, "\(fixture.name) actor_ft gradient buffer norm")
        compare([critic.parameters.gradientNorm()], [output("critic_grad_norm")], scale: 0, "\(fixture.name) critic gradient buffer norm")

        // Per-tensor gradient norms (locate a mismatch) and a few full gradient tensors.
        let norms = fixture.json["gradient_norms"] as! [String: Any]
        for (key, value) in norms.sorted(by: { $0.key < $1.key }) {
            let (parameters, name) = key.hasPrefix("ft.") ? (policy.fineTuned.parameters, String(key.dropFirst(3)))
                                                           : (critic.parameters, String(key.dropFirst("critic.".count)))
            let gradient = try XCTUnwrap(gradientValues(parameters, name), "\(fixture.name): no parameter \(name)")
            let norm = gradient.reduce(0) { $0 + Double($1) * Double($1) }.squareRoot()
            compare([norm], [(value as! NSNumber).doubleValue], scale: 0, "\(fixture.name) gradient norm of \(key)")
        }
        for key in fixture.tensors.keys.sorted() where key.hasPrefix("grad.") {
            let qualified = String(key.dropFirst("grad.".count))
            let (parameters, name) = qualified.hasPrefix("ft.") ? (policy.fineTuned.parameters, String(qualified.dropFirst(3)))
                                                                 : (critic.parameters, String(qualified.dropFirst("critic.".count)))
            let gradient = try XCTUnwrap(gradientValues(parameters, name), "\(fixture.name): no parameter \(name)")
            compare(gradient.map(Double.init), try fixture.values(key), scale: nil, "\(fixture.name) gradient of \(qualified)")
        }
        XCTAssertEqual(policy.base.parameters.gradientNorm(), 0, "\(fixture.name): the base network gets no gradient")
    }

    func gradientValues(_ parameters: Parameters, _ name: String) -> [Float]? {
        guard let entry = parameters.entry(named: name) else { return nil }
        return Array(UnsafeBufferPointer(start: parameters.gradients + entry.offset, count: entry.count))
    }

    // MARK: Comparison

    /// |a − b| ≤ 1e−4·max(|b|, s) element-wise; s = `scale`, or the largest |b| of the tensor when nil.
    /// Prints the worst ratio |a − b| / (1e−4·max(|b|, s)) so runs show how much headroom is left.
    func compare(_ actual: [Double], _ expected: [Double], scale: Double?, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(name): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        guard actual.count == expected.count, !expected.isEmpty else { return }
        let s = scale ?? expected.map(abs).max()!
        var worst = 0.0, worstIndex = 0, failures = 0
        for (index, (a, b)) in zip(actual, expected).enumerated() {
            let allowed = Self.tolerance * max(abs(b), s)
            let used = allowed > 0 ? abs(a - b) / allowed : (a == b ? 0 : .infinity)
            if !(used <= 1) { failures += 1 }
            if !(used <= worst) { worst = used; worstIndex = index }
        }
        print(String(format: "parity %@: %d values, worst %.3g of tolerance (index %d: %.9g vs %.9g, scale %.3g)",
                     name, actual.count, worst, worstIndex, actual[worstIndex], expected[worstIndex], s))
        if failures > 0 {
            XCTFail("\(name): \(failures) of \(actual.count) values differ by more than 1e-4·max(|ref|, \(s)); worst at \(worstIndex): "
                    + "\(actual[worstIndex]) vs reference \(expected[worstIndex]) (\(worst)× the tolerance)", file: file, line: line)
        }
    }
    func compare(_ actual: [Float], _ expected: [Float], scale: Double?, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        compare(actual.map(Double.init), expected.map(Double.init), scale: scale, name, file: file, line: line)
    }
    func compare(_ actual: [Double], _ expected: [Float], scale: Double?, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        compare(actual, expected.map(Double.init), scale: scale, name, file: file, line: line)
    }
}

// MARK: - Fixture access

struct Fixture {
    let name: String
    let json: [String: Any]
    let tensors: [String: NamedTensor]

    var config: [String: Any] { json["config"] as! [String: Any] }
    func int(_ section: String, _ key: String) -> Int { ((json[section] as! [String: Any])[key] as! NSNumber).intValue }
    func double(_ key: String) -> Double { (config[key] as! NSNumber).doubleValue }
    func optionalDouble(_ key: String) -> Double? { (config[key] as? NSNumber)?.doubleValue }
    var chunkWidth: Int { int("config", "horizon_steps") * int("config", "action_dim") }
    var observationWidth: Int { int("config", "obs_dim") * int("config", "cond_steps") }

    func values(_ key: String) throws -> [Float] {
        guard let tensor = tensors[key] else { throw FixtureError.missing("\(name)/fixture.safetensors has no tensor \(key)") }
        return tensor.values
    }

    func matrix(_ key: String, columns: Int) throws -> Matrix {
        let data = try values(key)
        return Matrix(rows: data.count / columns, columns: columns, values: data)
    }

    var settings: DenoisingSettings {
        let ddim = config["use_ddim"] as! Bool
        return DenoisingSettings(
            denoisingSteps: int("config", "denoising_steps"), fineTunedSteps: int("config", "ft_denoising_steps"),
            horizonSteps: int("config", "horizon_steps"), actSteps: int("config", "act_steps"), actionDim: int("config", "action_dim"),
            minSamplingStd: double("min_sampling_denoising_std"), minLogProbStd: double("min_logprob_denoising_std"),
            randnClip: double("randn_clip_value"), denoisedClip: double("denoised_clip_value"),
            useDDIM: ddim, ddimSteps: ddim ? int("config", "ddim_steps") : 0, eta: optionalDouble("eta_training") ?? 1)
    }

    static func activation(_ name: String) -> Activation {
        switch name.lowercased() {
        case "relu": return .relu
        case "mish": return .mish
        default: fatalError("activation \(name) is not implemented")
        }
    }

    func policy() throws -> DiffusionPolicy {
        let shape = DiffusionMLPShape(actionDim: int("config", "action_dim"), horizonSteps: int("config", "horizon_steps"),
                                      observationDim: observationWidth, timeDim: int("config", "time_dim"),
                                      mlpDims: (config["mlp_dims"] as! [NSNumber]).map(\.intValue),
                                      activation: Self.activation(config["actor_activation"] as! String))
        let settings = self.settings
        try settings.validate()
        let policy = DiffusionPolicy(settings: settings, network: shape)
        try policy.base.parameters.load(tensors, prefix: "base.")
        try policy.fineTuned.parameters.load(tensors, prefix: "ft.")
        return policy
    }

    func critic() throws -> CriticMLP {
        let critic = CriticMLP(observationDim: observationWidth, mlpDims: (config["critic_dims"] as! [NSNumber]).map(\.intValue),
                               activation: Self.activation(config["critic_activation"] as! String))
        try critic.parameters.load(tensors, prefix: "critic.")
        return critic
    }

    func hyperparameters() -> PPOHyperparameters {
        var h = PPOHyperparameters()
        h.gammaDenoising = double("gamma_denoising")
        h.clipCoefficient = double("clip_ploss_coef")
        h.clipCoefficientBase = double("clip_ploss_coef_base")
        h.clipCoefficientRate = double("clip_ploss_coef_rate")
        h.valueCoefficient = double("vf_coef")
        h.clipValueCoefficient = optionalDouble("clip_vloss_coef")
        h.advantageLowerQuantile = double("clip_advantage_lower_quantile")
        h.advantageUpperQuantile = double("clip_advantage_upper_quantile")
        return h
    }

    /// The loss's reduction of element-wise log-probs [N, Tp, Da]: clamp to [−5, 2], first Ta rows, mean.
    func reduceLogProbabilities(_ elements: [Float]) -> [Double] {
        let width = chunkWidth, scored = int("config", "act_steps") * int("config", "action_dim")
        return (0..<(elements.count / width)).map { row in
            (0..<scored).reduce(0.0) { $0 + Double(min(max(elements[row * width + $1], -5), 2)) } / Double(scored)
        }
    }

    /// The reference's minibatch as our PPOMinibatch; old log-probs reduced as the reference's loss reduces them.
    func minibatch() throws -> PPOMinibatch {
        let observations = try values("ppo.obs"), inputs = try values("ppo.chains_prev"), outputs = try values("ppo.chains_next")
        let indices = try values("ppo.denoising_inds"), decisions = try values("ppo.decision")
        let returns = try values("ppo.returns"), oldValues = try values("ppo.oldvalues"), advantages = try values("ppo.advantages")
        let oldLogProbabilities = reduceLogProbabilities(try values("ppo.oldlogprobs"))
        let count = indices.count
        let minibatch = PPOMinibatch(observationWidth: observationWidth, chunkWidth: chunkWidth)
        minibatch.resize(count)
        minibatch.observations.data.update(from: observations, count: count * observationWidth)
        minibatch.inputs.data.update(from: inputs, count: count * chunkWidth)
        minibatch.outputs.data.update(from: outputs, count: count * chunkWidth)
        for pair in 0..<count {
            minibatch.terms.append(Int(indices[pair]))
            minibatch.decisions.append(Int(decisions[pair]))
            minibatch.returns.append(returns[pair])
            minibatch.oldValues.append(oldValues[pair])
            minibatch.advantages.append(advantages[pair])
            minibatch.oldLogProbabilities.append(Float(oldLogProbabilities[pair]))
        }
        return minibatch
    }
}

enum FixtureError: Error, CustomStringConvertible {
    case missing(String)
    var description: String { switch self { case .missing(let message): return message } }
}

/// Safe unguarded by the compiler: every access holds `fixtureLock`.
nonisolated(unsafe) private var fixtureCache: [String: Fixture] = [:]
private let fixtureLock = NSLock()

/// Loads `<fixtures>/<name>/fixture.{json,safetensors}`; fixtures = $DPPO_FIXTURES or the bundled Fixtures/.
func fixture(_ name: String) throws -> Fixture {
    fixtureLock.lock()
    defer { fixtureLock.unlock() }
    if let cached = fixtureCache[name] { return cached }
    let root: URL
    if let path = ProcessInfo.processInfo.environment["DPPO_FIXTURES"], !path.isEmpty {
        root = URL(fileURLWithPath: path, isDirectory: true)
    } else {
        guard let bundled = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            throw FixtureError.missing("the ParityTests bundle has no Fixtures folder")
        }
        root = bundled
    }
    let folder = root.appendingPathComponent(name, isDirectory: true)
    let jsonURL = folder.appendingPathComponent("fixture.json"), tensorURL = folder.appendingPathComponent("fixture.safetensors")
    guard FileManager.default.fileExists(atPath: jsonURL.path), FileManager.default.fileExists(atPath: tensorURL.path) else {
        throw FixtureError.missing("no fixture at \(folder.path) (generate one with scripts/generate_parity_fixtures.py)")
    }
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: jsonURL)) as! [String: Any]
    let loaded = Fixture(name: name, json: json, tensors: try Safetensors.read(from: tensorURL).tensors)
    fixtureCache[name] = loaded
    return loaded
}
