import Algorithms
import Foundation
import Tensors

extension TrajectoryDataset {
    /// The behaviour-cloning samples of docs/algorithms.md §3, normalised with `normalization`.
    ///
    /// A sample is a window start i inside one episode [s, e) with i + Tp ≤ e: windows never cross
    /// or pad the episode end, so an episode of L steps gives max(L − Tp + 1, 0) samples. Its
    /// conditioning row is the To states i − To + 1 … i (most recent last), each index clamped to
    /// s, which repeats the episode's first state; its chunk row is actions i … i + Tp − 1.
    /// Rows follow storage order: episode by episode, i ascending.
    ///
    /// - Returns: observations `[samples, To·Do]` and chunks `[samples, Tp·Da]`.
    public func chunkDataset(conditionSteps: Int, horizonSteps: Int, normalization: Normalization) throws -> ChunkDataset {
        guard conditionSteps >= 1 else { throw DatasetError.invalidWindow("cond_steps (To) must be at least 1, not \(conditionSteps)") }
        guard horizonSteps >= 1 else { throw DatasetError.invalidWindow("horizon_steps (Tp) must be at least 1, not \(horizonSteps)") }
        try validate()
        try normalization.validate()
        try normalization.requireDimensions(states: stateDimension, actions: actionDimension)

        let windows = episodeRanges.flatMap { episode in
            episode.count >= horizonSteps ? (episode.lowerBound...(episode.upperBound - horizonSteps)).map { (start: $0, episodeStart: episode.lowerBound) } : []
        }
        guard !windows.isEmpty else {
            throw DatasetError.invalidWindow("no episode has the horizon_steps = \(horizonSteps) steps a window needs (the longest has \(trajectoryLengths.max() ?? 0))")
        }

        let normalizedStates = Normalization.normalize(states, minimum: normalization.obsMin, maximum: normalization.obsMax)
        let normalizedActions = Normalization.normalize(actions, minimum: normalization.actionMin, maximum: normalization.actionMax)
        let observations = Matrix(rows: windows.count, columns: conditionSteps * stateDimension)
        let chunks = Matrix(rows: windows.count, columns: horizonSteps * actionDimension)
        normalizedStates.withUnsafeBufferPointer { stateRows in
            normalizedActions.withUnsafeBufferPointer { actionRows in
                for (sample, window) in windows.enumerated() {
                    for slot in 0..<conditionSteps {
                        let step = max(window.start - (conditionSteps - 1 - slot), window.episodeStart)
                        (observations.row(sample) + slot * stateDimension).update(from: stateRows.baseAddress! + step * stateDimension, count: stateDimension)
                    }
                    chunks.row(sample).update(from: actionRows.baseAddress! + window.start * actionDimension, count: horizonSteps * actionDimension)
                }
            }
        }
        return ChunkDataset(observations: observations, chunks: chunks)
    }
}
