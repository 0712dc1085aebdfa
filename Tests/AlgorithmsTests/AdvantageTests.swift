import XCTest
@testable import Algorithms

/// Golden vectors of docs/algorithms.md §9 for GAE, the running reward scaler and the per-step PPO schedules.
final class AdvantageTests: XCTestCase {
    func gae(_ rewards: [Float], _ values: [Float], _ next: [Float], _ terminated: [UInt8], _ truncated: [UInt8], _ handling: TruncationHandling) -> ([Float], [Float]) {
        var advantages = [Float](repeating: 0, count: rewards.count), returns = advantages
        generalizedAdvantages(rewards: rewards, values: values, nextValues: next, terminated: terminated, truncated: truncated, count: rewards.count,
                              gamma: 0.99, lambda: 0.95, truncation: handling, advantages: &advantages, returns: &returns)
        return (advantages, returns)
    }

    func testGAEGoldenVector() {
        let values: [Float] = [0.5, 0.4, 0.3, 0.2]
        let (advantages, returns) = gae([1, 0, 2, 1], values, [0.4, 0.3, 0.2, 0.1], [0, 0, 1, 0], [0, 0, 0, 0], .reference)
        for (a, e) in zip(advantages, [2.302846925, 1.49585, 1.7, 0.899] as [Float]) { XCTAssertEqual(a, e, accuracy: 1e-5) }
        for (r, e) in zip(returns, [2.802846925, 1.89585, 2.0, 1.099] as [Float]) { XCTAssertEqual(r, e, accuracy: 1e-5) }
    }

    /// A truncated episode bootstraps from its final observation and does not leak the next episode's advantages.
    func testTruncationHandling() {
        // Decision 1 is truncated; the value of its final observation is 5, the next episode starts at decision 2.
        let rewards: [Float] = [1, 1, 10, 10], values: [Float] = [0, 0, 0, 0]
        let next: [Float] = [0, 5, 0, 0], truncated: [UInt8] = [0, 1, 0, 0]
        let (bootstrap, _) = gae(rewards, values, next, [0, 0, 0, 0], truncated, .bootstrap)
        XCTAssertEqual(bootstrap[1], 1 + 0.99 * 5, accuracy: 1e-5)
        let (reference, _) = gae(rewards, values, next, [0, 0, 0, 0], truncated, .reference)
        XCTAssertGreaterThan(reference[1], bootstrap[1] + 1, "the reference's recursion carries the next episode's advantage across the cut")
    }

    func testRunningRewardScalerGoldenVector() {
        var scaler = RunningRewardScaler(streams: 2)
        var rewards: [Float] = [1, 2, 3, 0, 1, 0.5]
        let firsts: [UInt8] = [1, 0, 0, 1, 0, 1]
        scaler.scale(rewards: &rewards, firsts: firsts, streams: 2, steps: 3)
        XCTAssertEqual(scaler.variance, 4.972412121538, accuracy: 1e-8)
        XCTAssertEqual(scaler.count, 6.0001, accuracy: 1e-10)
        for (r, e) in zip(rewards, [0.448452491624, 0.896904983248, 1.345357474872, 0, 0.448452491624, 0.224226245812] as [Float]) {
            XCTAssertEqual(r, e, accuracy: 1e-6)
        }
        var second: [Float] = [1, 1]
        scaler.scale(rewards: &second, firsts: [0, 0], streams: 2, steps: 1)
        XCTAssertEqual(scaler.runningReturns[0], 6.900499, accuracy: 1e-9)
        XCTAssertEqual(scaler.variance, 7.472315538554, accuracy: 1e-8)
        XCTAssertEqual(second[0], 0.365824171987, accuracy: 1e-6)
    }

    func testClipScheduleAndDenoisingDiscount() {
        var hyperparameters = PPOHyperparameters()
        hyperparameters.clipCoefficient = 0.01
        hyperparameters.clipCoefficientBase = 0.001
        hyperparameters.clipCoefficientRate = 3
        let clip: [Double] = [0.001, 0.001186555497, 0.001446914667, 0.001810275159, 0.002317385576, 0.003025115175,
                              0.004012831398, 0.005391300431, 0.007315108940, 0.01]
        let discount: [Double] = [0.913517247484, 0.922744694428, 0.932065347907, 0.941480149401, 0.950990049900,
                                  0.96059601, 0.970299, 0.9801, 0.99, 1]
        for j in 0..<10 {
            XCTAssertEqual(hyperparameters.clipCoefficient(chainIndex: j, fineTunedSteps: 10), clip[j], accuracy: 1e-11)
            XCTAssertEqual(hyperparameters.denoisingDiscount(chainIndex: j, fineTunedSteps: 10), discount[j], accuracy: 1e-11)
        }
        XCTAssertEqual(hyperparameters.clipCoefficient(chainIndex: 0, fineTunedSteps: 1), 0.01, "K′ = 1 uses the constant ε (no 0/0)")
    }
}
