import Diffusion
import Foundation
import Networks
import Tensors
import XCTest
@testable import Offline

final class OfflineDPMSolverTests: XCTestCase {
    // MARK: - Fixture (docs/offline-algorithms.md §6.2)

    func fixture(_ name: String) throws -> [String: Any] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "offline-schedule-vectors", withExtension: "json", subdirectory: "Fixtures"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        return try XCTUnwrap(root[name] as? [String: Any], "fixture has no \(name)")
    }

    func doubles(_ object: [String: Any], _ key: String) throws -> [Double] {
        try XCTUnwrap(object[key] as? [Double], "fixture has no array \(key)")
    }

    func assertClose(_ actual: Double, _ expected: Double, relative: Double, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(abs(actual - expected), relative * max(abs(expected), 1e-3), "\(message): \(actual) vs \(expected)", file: file, line: line)
    }

    /// Diffusion-QL's vp formula (§1.1) with K steps.
    func vpBetas(steps: Int) -> [Double] {
        let k = Double(steps), betaMin = 0.1, betaMax = 10.0
        return (1...steps).map { 1 - exp(-betaMin / k - 0.5 * (betaMax - betaMin) * Double(2 * $0 - 1) / (k * k)) }
    }

    /// The exact ε-prediction when every coordinate j of the data is N(μ_j, s_j²): ε = σ(x − αμ)/(α²s² + σ²).
    func gaussianNoise(schedule: NoiseScheduleVP, means: [Double], stds: [Double]) -> DPMSolver.NoisePrediction {
        let output = Matrix(rows: 0, columns: means.count)
        return { x, t in
            let alpha = schedule.alpha(t), sigma = schedule.sigma(t)
            output.resize(rows: x.rows)
            for row in 0..<x.rows {
                for column in 0..<x.columns {
                    let s = stds[column], value = Double(x[row, column])
                    output[row, column] = Float(sigma * (value - alpha * means[column]) / (alpha * alpha * s * s + sigma * sigma))
                }
            }
            return output
        }
    }

    // MARK: - Golden vectors

    func checkGrid(_ name: String, schedule: NoiseScheduleVP) throws {
        let vectors = try fixture(name)
        let solver = DPMSolver(schedule: schedule, settings: DPMSolverSettings(denoisedClip: nil), width: 1)
        XCTAssertEqual(solver.steps.map(\.order), (vectors["orders"] as? [Int]) ?? [])
        XCTAssertEqual(solver.outerGridIndices, (vectors["outer_grid_indices"] as? [Int]) ?? [])
        let gridT = try doubles(vectors, "grid_t"), networkTimes = try doubles(vectors, "grid_model_input_time_index")
        let alphas = try doubles(vectors, "grid_alpha"), sigmas = try doubles(vectors, "grid_sigma")
        let lambdas = try doubles(vectors, "grid_lambda"), logAlphas = try doubles(vectors, "grid_log_alpha")
        XCTAssertEqual(solver.timeGrid.count, 16)
        for (i, t) in solver.timeGrid.enumerated() {
            XCTAssertEqual(t, gridT[i], accuracy: 1e-12, "t_\(i)")
            XCTAssertEqual(schedule.networkTime(t), networkTimes[i], accuracy: 1e-9, "network time at t_\(i)")
            assertClose(schedule.logAlpha(t), logAlphas[i], relative: 1e-9, "log α(t_\(i))")
            assertClose(schedule.alpha(t), alphas[i], relative: 1e-9, "α(t_\(i))")
            assertClose(schedule.sigma(t), sigmas[i], relative: 1e-9, "σ(t_\(i))")
            assertClose(schedule.lambda(t), lambdas[i], relative: 1e-9, "λ(t_\(i))")
        }
        // Model calls land back on the grid times t_0 … t_14 through λ⁻¹ (§3.7.5).
        for (i, t) in solver.modelCallTimes.enumerated() { XCTAssertEqual(t, gridT[i], accuracy: 1e-9, "model call \(i)") }
        XCTAssertEqual(solver.modelCallTimes.count, 15)

        let expectedSteps = try XCTUnwrap(vectors["steps"] as? [[String: Any]])
        XCTAssertEqual(solver.steps.count, expectedSteps.count)
        for (step, expected) in zip(solver.steps, expectedSteps) {
            XCTAssertEqual(step.order, expected["order"] as? Int)
            XCTAssertEqual(step.startTime, try XCTUnwrap(expected["s"] as? Double), accuracy: 1e-12)
            XCTAssertEqual(step.endTime, try XCTUnwrap(expected["t"] as? Double), accuracy: 1e-12)
            assertClose(step.startLambda, try XCTUnwrap(expected["lambda_s"] as? Double), relative: 1e-9, "λ_s")
            assertClose(step.endLambda, try XCTUnwrap(expected["lambda_t"] as? Double), relative: 1e-9, "λ_t")
            assertClose(step.stepSize, try XCTUnwrap(expected["h"] as? Double), relative: 1e-9, "h")
            for (j, key) in ["r1", "r2"].enumerated() where j < step.order - 1 {
                assertClose(step.ratios[j], try XCTUnwrap(expected[key] as? Double), relative: 1e-9, key)
            }
            for (j, key) in ["s1", "s2"].enumerated() where j < step.order - 1 {
                XCTAssertEqual(step.modelTimes[j + 1], try XCTUnwrap(expected[key] as? Double), accuracy: 1e-9, key)
            }
        }

        // The 1-D Gaussian check, outer step by outer step (solver coefficients and buffers are Float32).
        let gaussian = try XCTUnwrap(vectors["gaussian_test"] as? [String: Any])
        let model = gaussianNoise(schedule: schedule, means: [0.5], stds: [0.2])
        let x = Matrix(rows: 1, columns: 1, values: [Float(try XCTUnwrap(gaussian["x_T"] as? Double))])
        for (step, expected) in zip(solver.steps, expectedSteps) {
            solver.advance(x, through: step, model: model)
            assertClose(Double(x[0, 0]), try XCTUnwrap(expected["x_after"] as? Double), relative: 1e-5, "x after the order-\(step.order) step from \(step.startTime)")
        }
        assertClose(Double(x[0, 0]), try XCTUnwrap(gaussian["solver_output_at_t_end"] as? Double), relative: 1e-5, "solver output")
    }

    func testLinearScheduleGridMatchesEDPVectors() throws {
        let schedule = NoiseScheduleVP.linear(steps: 1000)
        let vectors = try fixture("edp_dpm_solver_linear_K1000")
        assertClose(schedule.alphasCumulative[0], try XCTUnwrap(vectors["alphas_cumprod_first"] as? Double), relative: 1e-12, "ᾱ_0")
        assertClose(schedule.alphasCumulative[999], try XCTUnwrap(vectors["alphas_cumprod_last"] as? Double), relative: 1e-9, "ᾱ_999")
        let selected = try fixture("edp_linear_K1000_selected")
        let indices = try XCTUnwrap(selected["index_k_minus_1"] as? [Int])
        for (index, expected) in zip(indices, try doubles(selected, "alphas_cumprod")) {
            assertClose(schedule.alphasCumulative[index], expected, relative: 1e-9, "ᾱ_\(index)")
        }
        try checkGrid("edp_dpm_solver_linear_K1000", schedule: schedule)
    }

    func testVPScheduleGridMatchesVectors() throws {
        try checkGrid("edp_dpm_solver_vp_K1000_alternative", schedule: NoiseScheduleVP(betas: vpBetas(steps: 1000)))
    }

    // MARK: - Continuous wrapper

    func testCosineScheduleWrapper() {
        let discrete = NoiseSchedule(steps: 20)
        let schedule = NoiseScheduleVP(discrete)
        for n in 0..<20 {
            let t = Double(n + 1) / 20
            XCTAssertEqual(schedule.alpha(t) * schedule.alpha(t), discrete.alphasCumulative[n], accuracy: 1e-12, "knot \(n)")
            XCTAssertEqual(schedule.networkTime(t), Double(n), accuracy: 1e-12, "the knot of index \(n) feeds the network \(n)")
            XCTAssertEqual(schedule.clippingIndex(t), n)
        }
        // Between knots log α is linear in t; λ⁻¹ inverts λ everywhere on [1/N, 1].
        let midpoint = 0.5 * (schedule.logAlpha(0.3) + schedule.logAlpha(0.35))
        XCTAssertEqual(schedule.logAlpha(0.325), midpoint, accuracy: 1e-12)
        for t in stride(from: 0.05, through: 1.0, by: 0.0375) {
            XCTAssertEqual(schedule.time(lambda: schedule.lambda(t)), t, accuracy: 1e-9, "λ⁻¹(λ(\(t)))")
        }
        let solver = DPMSolver(schedule: schedule, width: 12)
        XCTAssertEqual(solver.timeGrid.first, 1)
        XCTAssertEqual(solver.timeGrid.last!, 0.05, accuracy: 1e-15, "the default end time is the first knot 1/N")
        XCTAssertEqual(solver.steps.map(\.order), [3, 3, 3, 3, 2, 1])
        XCTAssertEqual(schedule.networkTime(solver.modelCallTimes[0]), 19, accuracy: 1e-12, "t = 1 feeds the network the last index")
    }

    func testOrderSchedules() {
        XCTAssertEqual(DPMSolver.orders(modelCalls: 15, order: 3), [3, 3, 3, 3, 2, 1])
        XCTAssertEqual(DPMSolver.orders(modelCalls: 16, order: 3), [3, 3, 3, 3, 3, 1])
        XCTAssertEqual(DPMSolver.orders(modelCalls: 17, order: 3), [3, 3, 3, 3, 3, 2])
        XCTAssertEqual(DPMSolver.orders(modelCalls: 15, order: 2), [2, 2, 2, 2, 2, 2, 2, 1])
        XCTAssertEqual(DPMSolver.orders(modelCalls: 4, order: 1), [1, 1, 1, 1])
        for calls in 1...40 { XCTAssertEqual(DPMSolver.orders(modelCalls: calls, order: 3).reduce(0, +), calls) }
    }

    // MARK: - Sampling

    func testEDPSettingMakesFifteenBatchedModelCalls() {
        let schedule = NoiseScheduleVP.linear(steps: 1000)
        let solver = DPMSolver(schedule: schedule, width: 12)
        let x = Matrix(rows: 7, columns: 12)
        var random = Philox(seed: 1)
        random.fillNormal(x.data, count: x.count)
        let output = Matrix(rows: 7, columns: 12)
        var times: [Double] = []
        solver.sample(x) { input, t in
            XCTAssertEqual(input.rows, 7, "one call covers the whole batch")
            times.append(t)
            output.fill(0.1)
            return output
        }
        XCTAssertEqual(times.count, 15)
        XCTAssertEqual(times, solver.modelCallTimes)
        XCTAssertTrue(x.toArray().allSatisfy(\.isFinite))
    }

    /// With the exact ε of Gaussian data, 15 calls of DPM-Solver land close to the exact probability-flow ODE solution,
    /// which maps x_T to α_ε μ + √(α_ε² s² + σ_ε²)·(x_T − α_T μ)/√(α_T² s² + σ_T²) per coordinate; a 15-step DDPM chain
    /// on the same schedule with the same exact ε misses the spread by far more.
    func testGaussianDataIsRecoveredWithFifteenCalls() {
        let schedule = NoiseScheduleVP.linear(steps: 1000)
        let means = [0.5, 0.0, -0.3, 0.2], stds = [0.6, 0.8, 1.0, 1.2]
        let width = means.count, batch = 4096
        let solver = DPMSolver(schedule: schedule, settings: DPMSolverSettings(denoisedClip: nil), width: width)
        let start = Matrix(rows: batch, columns: width)
        var random = Philox(seed: 3)
        random.fillNormal(start.data, count: start.count)
        let x = Matrix(rows: batch, columns: width)
        x.copy(from: start)
        solver.sample(x, model: gaussianNoise(schedule: schedule, means: means, stds: stds))

        let tStart = solver.timeGrid.first!, tEnd = solver.timeGrid.last!
        let ddpm = ddpmSample(start: start, schedule: schedule, steps: 15, means: means, stds: stds, random: &random)
        for column in 0..<width {
            let alphaT = schedule.alpha(tStart), sigmaT = schedule.sigma(tStart), alphaE = schedule.alpha(tEnd), sigmaE = schedule.sigma(tEnd)
            let s = stds[column], mu = means[column]
            let scale = (alphaE * alphaE * s * s + sigmaE * sigmaE).squareRoot() / (alphaT * alphaT * s * s + sigmaT * sigmaT).squareRoot()
            let exact = (0..<batch).map { alphaE * mu + scale * (Double(start[$0, column]) - alphaT * mu) }
            let solved = (0..<batch).map { Double(x[$0, column]) }
            let chain = (0..<batch).map { ddpm[$0 * width + column] }
            let (exactMean, exactStd) = moments(exact), (solvedMean, solvedStd) = moments(solved), (_, chainStd) = moments(chain)
            // The exact ODE output is a sample of N(α_ε μ, α_ε² s² + σ_ε²) ≈ the data distribution.
            XCTAssertEqual(exactMean, mu, accuracy: 4 * s / Double(batch).squareRoot())
            XCTAssertEqual(exactStd / s, 1, accuracy: 0.05)
            XCTAssertEqual(solvedMean, exactMean, accuracy: 0.01 * s, "mean of coordinate \(column)")
            let solverError = abs(solvedStd / exactStd - 1), chainError = abs(chainStd / exactStd - 1)
            XCTAssertLessThan(solverError, 0.03, "std of coordinate \(column)")
            XCTAssertGreaterThan(chainError, 4 * solverError, "15-step DDPM should be much further off (coordinate \(column))")
        }
        // Deterministic ODE sampler: the same x_T gives the same sample.
        let again = Matrix(rows: batch, columns: width)
        again.copy(from: start)
        solver.sample(again, model: gaussianNoise(schedule: schedule, means: means, stds: stds))
        XCTAssertEqual(again.toArray(), x.toArray())
    }

    /// DDPM ancestral sampling (§1.3, no clipping) over `steps` evenly strided indices of the discrete schedule, in Float64.
    func ddpmSample(start: Matrix, schedule: NoiseScheduleVP, steps: Int, means: [Double], stds: [Double], random: inout Philox) -> [Double] {
        let last = schedule.discreteSteps - 1
        let indices = (0..<steps).map { Int((Double($0) * Double(last) / Double(steps - 1)).rounded()) }
        var x = start.toArray().map(Double.init)
        let width = start.columns
        for j in stride(from: steps - 1, through: 0, by: -1) {
            let alphaBar = schedule.alphasCumulative[indices[j]], previous = j > 0 ? schedule.alphasCumulative[indices[j - 1]] : 1
            let beta = 1 - alphaBar / previous
            let c1 = beta * previous.squareRoot() / (1 - alphaBar), c2 = (1 - previous) * (1 - beta).squareRoot() / (1 - alphaBar)
            let std = (beta * (1 - previous) / (1 - alphaBar)).squareRoot()
            for index in x.indices {
                let mu = means[index % width], s = stds[index % width]
                let epsilon = (1 - alphaBar).squareRoot() * (x[index] - alphaBar.squareRoot() * mu) / (alphaBar * s * s + 1 - alphaBar)
                let denoised = (x[index] - (1 - alphaBar).squareRoot() * epsilon) / alphaBar.squareRoot()
                x[index] = c1 * denoised + c2 * x[index] + (j > 0 ? std * Double(random.normal()) : 0)
            }
        }
        return x
    }

    func moments(_ values: [Double]) -> (mean: Double, std: Double) {
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return (mean, variance.squareRoot())
    }

    /// A model that always pushes ε̂ to +∞ is clipped so that the implied x̂₀ is −a_max; one first-order step
    /// (DDIM) from t = 1 then gives α_ε·(−a_max) + σ_ε·ε̂ with ε̂ = (x·√(1/ᾱ) + a_max)/√(1/ᾱ − 1) at ᾱ = ᾱ_{N−1}.
    func testNoiseClippingBoundsTheImpliedActions() {
        let schedule = NoiseScheduleVP.linear(steps: 1000)
        let clip = 0.9
        let solver = DPMSolver(schedule: schedule, settings: DPMSolverSettings(modelCalls: 1, order: 1, denoisedClip: clip), width: 2)
        let x = Matrix(rows: 2, columns: 2, values: [0.3, -1.2, 2.0, 0.0])
        let start = x.toArray()
        let huge = Matrix(rows: 2, columns: 2)
        huge.fill(1e6)
        solver.sample(x) { _, _ in huge }
        let alphaBar = schedule.alphasCumulative[999]
        let alphaEnd = schedule.alpha(1e-3), sigmaEnd = schedule.sigma(1e-3)
        for (index, value) in start.enumerated() {
            let epsilon = (Double(value) / alphaBar.squareRoot() + clip) / (1 / alphaBar - 1).squareRoot()
            XCTAssertEqual(Double(x.data[index]), -alphaEnd * clip + sigmaEnd * epsilon, accuracy: 1e-4)
        }
    }

    /// With DPPO's ε-network: a batch equals its rows sampled one by one, and the same noise gives the same actions.
    func testNetworkSamplingIsBatchedAndDeterministic() {
        let shape = DiffusionMLPShape(actionDim: 3, horizonSteps: 4, observationDim: 11, timeDim: 16, mlpDims: [32, 32, 32], activation: .mish)
        let network = DiffusionMLP(shape: shape)
        var random = Philox(seed: 9)
        network.initialize(random: &random)
        let solver = DPMSolver(schedule: NoiseScheduleVP(NoiseSchedule(steps: 20)), width: shape.chunkWidth)
        let observations = Matrix(rows: 5, columns: 11)
        random.fillUniform(observations.data, count: observations.count, low: -1, high: 1)
        var first = Philox(seed: 21), second = Philox(seed: 21)
        let actions = Matrix(rows: 0, columns: shape.chunkWidth), repeated = Matrix(rows: 0, columns: shape.chunkWidth)
        solver.sample(network: network, observations: observations, random: &first, into: actions)
        solver.sample(network: network, observations: observations, random: &second, into: repeated)
        XCTAssertEqual(actions.rows, 5)
        XCTAssertEqual(actions.toArray(), repeated.toArray())

        var noise = Philox(seed: 21)
        let start = Matrix(rows: 5, columns: shape.chunkWidth)
        noise.fillNormal(start.data, count: start.count)
        for row in 0..<5 {
            let single = Matrix(rows: 1, columns: shape.chunkWidth, values: Array(UnsafeBufferPointer(start: start.row(row), count: shape.chunkWidth)))
            let observation = Matrix(rows: 1, columns: 11, values: Array(UnsafeBufferPointer(start: observations.row(row), count: 11)))
            solver.sample(single, network: network, observations: observation)
            for column in 0..<shape.chunkWidth {
                XCTAssertEqual(single[0, column], actions[row, column], accuracy: 1e-4, "row \(row)")
            }
        }
    }
}
