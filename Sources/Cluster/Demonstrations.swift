import Foundation
import Datasets
import Diffusion
import Environments
import Tensors

/// Episodes of a task's scripted controller as a dataset in environment units: raw states, the actions taken
/// (with Gaussian noise, clipped to the action bounds), rewards and episode lengths. Pendulum's controller has a
/// gain; the tabletop tasks' (`TabletopDemonstrator`) grasps along one of two axes per episode, and the dataset
/// records which (`modes`, one per episode) and whether each succeeded (`successes`).
public func collectDemonstrations(config: RunConfig, episodes: Int, gain: Double, seed: UInt64) throws -> TrajectoryDataset {
    if let task = config.environment.task.tabletop { return try collectTabletopDemonstrations(task: task, config: config, episodes: episodes, seed: seed) }
    guard config.environment.task == .pendulum else {
        throw ConfigError("env.task \(config.environment.task.rawValue) has no scripted demonstrator; give pretrain.dataset instead")
    }
    let environment = Pendulum()
    var random = Philox(seed: seed, stream: 0xDE30)
    var states: [Float] = [], actions: [Float] = [], rewards: [Float] = [], lengths: [Int] = []
    var observation = [Float](repeating: 0, count: environment.observationDim)
    for _ in 0..<episodes {
        observation.withUnsafeMutableBufferPointer { environment.reset(random: &random, observation: $0.baseAddress!) }
        for _ in 0..<environment.maxEpisodeSteps {
            states += observation
            let torque = observation.withUnsafeBufferPointer { Pendulum.scriptedTorque(observation: $0.baseAddress!, gain: Float(gain)) }
            let noisy = min(max(torque + Float(config.pretrain.demonstratorNoise) * Pendulum.maxTorque * random.normal(), -Pendulum.maxTorque), Pendulum.maxTorque)
            actions.append(noisy)
            var action = [noisy]
            let outcome = observation.withUnsafeMutableBufferPointer { o in action.withUnsafeMutableBufferPointer { environment.step(action: $0.baseAddress!, observation: o.baseAddress!) } }
            rewards.append(outcome.reward)
        }
        lengths.append(environment.maxEpisodeSteps)
    }
    let dataset = TrajectoryDataset(states: states, stateDimension: environment.observationDim, actions: actions, actionDimension: environment.actionDim,
                                    trajectoryLengths: lengths, rewards: rewards, terminals: [Bool](repeating: false, count: rewards.count),
                                    metadata: ["task": config.environment.task.rawValue, "source": "scripted demonstrator, gain \(gain), noise \(config.pretrain.demonstratorNoise)"])
    try dataset.validate()
    return dataset
}

/// Tabletop demonstrations: every episode runs to success or the episode limit; the mode is drawn per episode
/// (`pretrain.demo_modes` mixed) or fixed. Failed episodes are kept, as a demonstrator's data would hold them.
func collectTabletopDemonstrations(task: TabletopTask, config: RunConfig, episodes: Int, seed: UInt64) throws -> TrajectoryDataset {
    let environment = try TabletopEnvironment(task: task)
    var random = Philox(seed: seed, stream: 0xDE31)
    var states: [Float] = [], actions: [Float] = [], rewards: [Float] = [], terminals: [Bool] = [], lengths: [Int] = []
    var modes: [String] = [], successes: [String] = []
    var observation = [Float](repeating: 0, count: environment.observationDim)
    var action = [Float](repeating: 0, count: environment.actionDim)
    let fixed = TabletopDemonstrator.Mode(rawValue: config.pretrain.demonstrationModes)
    for _ in 0..<episodes {
        let mode = fixed ?? (random.uniform() < 0.5 ? .alongY : .alongX)
        var demonstrator = TabletopDemonstrator(task: task, mode: mode, noise: config.pretrain.demonstratorNoise)
        observation.withUnsafeMutableBufferPointer { environment.reset(random: &random, observation: $0.baseAddress!) }
        var length = 0
        while length < environment.maxEpisodeSteps {
            states += observation
            observation.withUnsafeBufferPointer { o in action.withUnsafeMutableBufferPointer {
                demonstrator.act(observation: o.baseAddress!, random: &random, action: $0.baseAddress!)
            } }
            actions += action
            let outcome = observation.withUnsafeMutableBufferPointer { o in action.withUnsafeBufferPointer {
                environment.step(action: $0.baseAddress!, observation: o.baseAddress!)
            } }
            rewards.append(outcome.reward)
            terminals.append(outcome.terminated)
            length += 1
            if outcome.terminated { break }
        }
        lengths.append(length)
        modes.append(mode.rawValue)
        successes.append(environment.succeeded ? "1" : "0")
    }
    let succeeded = successes.filter { $0 == "1" }.count
    let dataset = TrajectoryDataset(states: states, stateDimension: environment.observationDim, actions: actions, actionDimension: environment.actionDim,
                                    trajectoryLengths: lengths, rewards: rewards, terminals: terminals,
                                    metadata: ["task": task.rawValue, "source": "scripted tabletop demonstrator, modes \(config.pretrain.demonstrationModes), noise \(config.pretrain.demonstratorNoise)",
                                               "modes": modes.joined(separator: ","), "successes": successes.joined(separator: ","),
                                               "success_rate": String(format: "%.4f", Double(succeeded) / Double(max(episodes, 1)))])
    try dataset.validate()
    return dataset
}

/// The behaviour-cloning data a config names: `pretrain.dataset` (our .safetensors format, or the DPPO reference's
/// `.npz` with `pretrain.normalization_path`), or else demonstrations of the task's scripted controller.
public func loadPretrainingData(config: RunConfig) throws -> TrajectoryDataset {
    let dataset: TrajectoryDataset
    let path = config.pretrain.dataset
    if path.isEmpty {
        dataset = try collectDemonstrations(config: config, episodes: config.pretrain.demonstrationEpisodes, gain: config.pretrain.demonstratorGain,
                                            seed: config.seed &+ 99)
    } else if path.hasSuffix(".npz") {
        let normalization = try config.pretrain.normalizationPath.isEmpty ? nil : Normalization(referenceFile: URL(fileURLWithPath: config.pretrain.normalizationPath))
        dataset = try TrajectoryDataset(referenceNPZ: URL(fileURLWithPath: path), normalization: normalization)
        // The reference stores its .npz normalised to [-1, 1] whenever it writes a normalization.npz; trained on as
        // raw values, the policy acts in the wrong units (Hopper: -1,610 instead of -212).
        if normalization == nil, let computed = try? Normalization(dataset: dataset),
           (computed.obsMin + computed.actionMin).allSatisfy({ $0 >= -1.001 }), (computed.obsMax + computed.actionMax).allSatisfy({ $0 <= 1.001 }) {
            throw ConfigError("\(path): every state and action lies in [-1, 1], as in a DPPO reference dataset stored normalised; set "
                              + "pretrain.normalization_path to its normalization.npz (usually beside it). If the values really are raw, "
                              + "convert the file once with `dppo dataset import --npz \(path) --output DATA.safetensors` and use that")
        }
    } else {
        dataset = try TrajectoryDataset(contentsOf: URL(fileURLWithPath: path))
    }
    let prototype = config.environment.description
    guard dataset.stateDimension == prototype.observationDim, dataset.actionDimension == prototype.actionDim else {
        throw ConfigError("dataset \(path) has state dim \(dataset.stateDimension) and action dim \(dataset.actionDimension); env.task \(config.environment.spec.label) needs \(prototype.observationDim) and \(prototype.actionDim)")
    }
    return dataset
}

/// Rolls a checkpoint's policy out for `episodes` complete episodes (one environment each) and records every executed
/// step in environment units: the data source of "medium"/"expert" datasets collected from partly or fully trained policies.
///
/// The recorded action is the control the environment executed: the policy's sample clipped to the task's action
/// bounds, as D4RL's data holds it. A Gaussian policy samples far past the bounds (a third of the Hopper medium data's
/// raw samples lie outside [−1, 1]), and every value past a bound acts alike; kept raw, they widen the action
/// normalisation threefold and leave the critics of offline RL a flat region to extrapolate over.
/// `rawActions` keeps the samples as drawn instead. Rewards are the environment's either way (Gymnasium's control
/// cost sees the unclipped sample).
public func collectPolicyEpisodes(config: RunConfig, checkpoint: URL, episodes: Int, mode: SamplingMode,
                                  rawActions: Bool = false) throws -> TrajectoryDataset {
    let model = PolicyModel(config: config)
    let info = try Checkpoint.load(model, from: checkpoint)
    let environments = try config.makeEnvironments(count: episodes, seed: config.seed &+ 4242, normalization: info.normalization)
    let stateDim = environments.observationDim, actionDim = environments.actionDim
    let task = environments.batch.task
    let (low, high) = rawActions ? ([Float](repeating: -.infinity, count: actionDim), [Float](repeating: .infinity, count: actionDim))
                                 : (task.actionLow, task.actionHigh)
    var states = [[Float]](repeating: [], count: episodes), actions = [[Float]](repeating: [], count: episodes)
    var rewards = [[Float]](repeating: [], count: episodes), terminals = [[Bool]](repeating: [], count: episodes)
    var finished = [Bool](repeating: false, count: episodes)
    environments.transitionObserver = { index, observation, action, reward, terminated in
        guard !finished[index] else { return }
        states[index] += UnsafeBufferPointer(start: observation, count: stateDim)
        for column in 0..<actionDim { actions[index].append(min(max(action[column], low[column]), high[column])) }
        rewards[index].append(reward)
        terminals[index].append(terminated)
    }
    try environments.resetAll()
    var random = Philox(seed: config.seed &+ 4242, stream: 0xC011)
    let records = Matrix(rows: episodes, columns: model.rollout.recordWidth)
    while finished.contains(false) {
        model.rollout.sample(observations: environments.observations, mode: mode, random: &random, records: records)
        try environments.step(chunks: records, offset: model.rollout.actionOffset)
        for episode in environments.finishedEpisodes { finished[episode.environmentIndex] = true }
    }
    let dataset = TrajectoryDataset(states: states.flatMap { $0 }, stateDimension: stateDim, actions: actions.flatMap { $0 }, actionDimension: actionDim,
                                    trajectoryLengths: rewards.map(\.count), rewards: rewards.flatMap { $0 }, terminals: terminals.flatMap { $0 },
                                    metadata: ["task": config.environment.spec.label,
                                               "source": "\(checkpoint.lastPathComponent) (\(mode == .deterministic ? "deterministic" : "stochastic"))",
                                               "actions": rawActions ? "sampled, unclipped" : "executed, clipped to the action bounds"])
    try dataset.validate()
    return dataset
}
