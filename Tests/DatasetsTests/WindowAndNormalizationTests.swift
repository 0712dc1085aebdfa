import Algorithms
import Datasets
import Foundation
import XCTest

final class WindowAndNormalizationTests: XCTestCase {
    /// Episodes of 3 and 2 steps, Do = Da = 1. With min 0/max 4 and min 10/max 14 the map is
    /// x_n ≈ x/2 − 1 and a_n ≈ (a − 10)/2 − 1 (less a hair for the 1e−6).
    func testWindowsPadTheEpisodeStartAndNeverCrossTheEpisodeEnd() throws {
        let dataset = TrajectoryDataset(states: [0, 1, 2, 3, 4], stateDimension: 1, actions: [10, 11, 12, 13, 14], actionDimension: 1,
                                        trajectoryLengths: [3, 2])
        let normalization = Normalization(obsMin: [0], obsMax: [4], actionMin: [10], actionMax: [14])
        let windows = try dataset.chunkDataset(conditionSteps: 2, horizonSteps: 2, normalization: normalization)
        // Starts i = 0, 1 in episode [0, 3) (i = 2 would need step 3 of the next episode) and i = 3 in [3, 5).
        XCTAssertEqual(windows.count, 3)
        XCTAssertEqual(windows.observations.columns, 2)
        XCTAssertEqual(windows.chunks.columns, 2)
        // i = 0: (s0, s0), the first state repeated; i = 1: (s0, s1); i = 3: (s3, s3), not s2 of the previous episode.
        assertEqual(windows.observations.toArray(), [-1, -1, -1, -0.5, 0.5, 0.5], accuracy: 1e-5)
        // i = 0: (a0, a1); i = 1: (a1, a2); i = 3: (a3, a4).
        assertEqual(windows.chunks.toArray(), [-1, -0.5, -0.5, 0, 0.5, 1], accuracy: 1e-5)

        let single = try dataset.chunkDataset(conditionSteps: 1, horizonSteps: 3, normalization: normalization)
        XCTAssertEqual(single.count, 1, "only the 3-step episode holds a 3-step window")
        assertEqual(single.chunks.toArray(), [-1, -0.5, 0], accuracy: 1e-5)

        assertThrows(try dataset.chunkDataset(conditionSteps: 1, horizonSteps: 4, normalization: normalization),
                     mentioning: ["horizon_steps = 4", "longest has 3"])
        assertThrows(try dataset.chunkDataset(conditionSteps: 0, horizonSteps: 1, normalization: normalization), mentioning: ["cond_steps"])
        assertThrows(try dataset.chunkDataset(conditionSteps: 1, horizonSteps: 1, normalization: fixtureNormalization),
                     mentioning: ["obs_min has 2 entries", "1 are expected"])
    }

    /// Normalising the imported (environment-unit) data with the reference's statistics gives back
    /// the values the reference stored, rows in order, two state columns side by side.
    func testWindowsOfImportedDataReproduceTheReferenceNormalisedValues() throws {
        let dataset = try TrajectoryDataset(referenceNPZ: fixture("train.npz"), normalization: fixtureNormalization)
        let stored = try NumpyArchive(contentsOf: fixture("train.npz"))
        let storedStates = try stored.array(named: "states").floatValues, storedActions = try stored.array(named: "actions").floatValues
        let windows = try dataset.chunkDataset(conditionSteps: 1, horizonSteps: 3, normalization: fixtureNormalization)
        // Episode [0, 4) gives starts 0 and 1, episode [4, 7) gives start 4.
        XCTAssertEqual(windows.count, 3)
        let starts = [0, 1, 4]
        assertEqual(windows.observations.toArray(), starts.flatMap { Array(storedStates[($0 * 2)..<($0 * 2 + 2)]) }, accuracy: 2e-6)
        assertEqual(windows.chunks.toArray(), starts.flatMap { Array(storedActions[$0..<($0 + 3)]) }, accuracy: 2e-6)
    }

    func testNormalizationMapsComputedByHand() throws {
        let normalization = Normalization(obsMin: [0, -1], obsMax: [2, 3], actionMin: [-2], actionMax: [2])
        XCTAssertNoThrow(try normalization.validate())
        // 2(x − min)/(max − min + 1e−6) − 1: the minimum maps to −1 exactly, the maximum to about 1 − 2·1e−6/(max − min).
        assertEqual(normalization.normalizeObservation([0, -1]), [-1, -1], accuracy: 0)
        assertEqual(normalization.normalizeObservation([2, 3]), [0.999_999, 0.999_999_5], accuracy: 2e-7)
        assertEqual(normalization.normalizeObservation([1, 2]), [-0.000_000_5, 0.499_999_6], accuracy: 2e-7)
        assertEqual(normalization.normalizeObservation([1, 2, 2, 3]), [-0.000_000_5, 0.499_999_6, 0.999_999, 0.999_999_5], accuracy: 2e-7)
        assertEqual(normalization.normalizeAction([1]), [0.499_999_6], accuracy: 2e-7)
        // (a_n + 1)/2·(max − min) + min, with no 1e−6: exact for these values.
        XCTAssertEqual(normalization.denormalizeAction([0.5]), [1])
        XCTAssertEqual(normalization.denormalizeAction([-1]), [-2])
        XCTAssertEqual(normalization.denormalizeAction([1]), [2])
        // A constant dimension maps to −1 instead of dividing by zero.
        let constant = Normalization(obsMin: [5], obsMax: [5], actionMin: [0], actionMax: [1])
        XCTAssertEqual(constant.normalizeObservation([5]), [-1])
    }

    func testNormalizationFromDataReferenceFileAndJSON() throws {
        XCTAssertEqual(try Normalization(dataset: smallDataset()), fixtureNormalization)
        XCTAssertEqual(try Normalization(referenceFile: fixture("normalization.npz")), fixtureNormalization)
        assertThrows(try Normalization(referenceFile: fixture("train.npz")), mentioning: ["train.npz has no array obs_min"])
        let json = try JSONEncoder().encode(fixtureNormalization)
        XCTAssertEqual(try JSONDecoder().decode(Normalization.self, from: json), fixtureNormalization)

        assertThrows(try Normalization(obsMin: [0, 1], obsMax: [1, 0], actionMin: [0], actionMax: [1]).validate(),
                     mentioning: ["obs dimension 1", "max 0.0 < min 1.0"])
        assertThrows(try Normalization(obsMin: [0], obsMax: [.nan], actionMin: [0], actionMax: [1]).validate(), mentioning: ["obs_max[0] is nan"])
        assertThrows(try Normalization(obsMin: [0], obsMax: [1], actionMin: [0, 0], actionMax: [1]).validate(),
                     mentioning: ["action_max has 1 entries", "2 are expected"])
        assertThrows(try Normalization(obsMin: [], obsMax: [], actionMin: [0], actionMax: [1]).validate(), mentioning: ["obs_min has zero columns"])
    }
}
