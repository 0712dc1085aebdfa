import Foundation
import Algorithms
import Environments
import Tensors

/// Collects behaviour-cloning data from a task's scripted controller: for each decision, the
/// normalised observation history and the next Tp normalised actions the controller took.
public func collectDemonstrations(config: RunConfig, seed: UInt64) throws -> (dataset: ChunkDataset, meanReturn: Double) {
    guard config.environment.task == .pendulum else {
        throw ConfigError("env.task \(config.environment.task.rawValue) has no scripted demonstrator; give pretrain.checkpoint instead")
    }
    let episodes = config.pretrain.demonstrationEpisodes
    let tp = config.environment.horizonSteps, to = config.environment.conditionSteps
    let environment = Pendulum()
    var random = Philox(seed: seed, stream: 0xDE30)
    let observationWidth = to * environment.observationDim
    var observations: [Float] = [], chunks: [Float] = []
    var returns: [Double] = []
    var raw = [Float](repeating: 0, count: 3)
    let low = environment.observationLow, high = environment.observationHigh
    func normalized(_ x: [Float]) -> [Float] { (0..<3).map { 2 * (x[$0] - low[$0]) / (high[$0] - low[$0] + 1e-6) - 1 } }
    for _ in 0..<episodes {
        raw.withUnsafeMutableBufferPointer { environment.reset(random: &random, observation: $0.baseAddress!) }
        var history: [[Float]] = [normalized(raw)]
        var actions: [Float] = []
        var total = 0.0
        for _ in 0..<environment.maxEpisodeSteps {
            let torque = raw.withUnsafeBufferPointer { Pendulum.scriptedTorque(observation: $0.baseAddress!, gain: Float(config.pretrain.demonstratorGain)) }
            let noisy = min(max(torque + Float(config.pretrain.demonstratorNoise) * Pendulum.maxTorque * random.normal(), -Pendulum.maxTorque), Pendulum.maxTorque)
            actions.append(noisy / Pendulum.maxTorque)
            var action = [noisy]
            let outcome = raw.withUnsafeMutableBufferPointer { o in action.withUnsafeMutableBufferPointer { environment.step(action: $0.baseAddress!, observation: o.baseAddress!) } }
            total += Double(outcome.reward)
            history.append(normalized(raw))
        }
        returns.append(total)
        // Window start i: condition on the To observations ending at i (repeating the first), predict actions i..<i+Tp.
        for start in 0...(actions.count - tp) {
            for lag in stride(from: to - 1, through: 0, by: -1) { observations += history[max(start - lag, 0)] }
            chunks += actions[start..<(start + tp)]
        }
    }
    let count = chunks.count / tp
    let dataset = ChunkDataset(observations: Matrix(rows: count, columns: observationWidth, values: observations),
                               chunks: Matrix(rows: count, columns: tp * environment.actionDim, values: chunks))
    return (dataset, returns.reduce(0, +) / Double(returns.count))
}
