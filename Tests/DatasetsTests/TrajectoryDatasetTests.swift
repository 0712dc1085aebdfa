import Datasets
import Foundation
import Networks
import XCTest

final class TrajectoryDatasetTests: XCTestCase {
    func testImportWithReferenceNormalizationRecoversEnvironmentUnits() throws {
        let normalization = try Normalization(referenceFile: fixture("normalization.npz"))
        XCTAssertEqual(normalization, fixtureNormalization)
        let dataset = try TrajectoryDataset(referenceNPZ: fixture("train.npz"), normalization: normalization)
        XCTAssertEqual(dataset.stateDimension, 2)
        XCTAssertEqual(dataset.actionDimension, 1)
        XCTAssertEqual(dataset.trajectoryLengths, [4, 3])
        assertEqual(dataset.states, rawStates, accuracy: 1e-5)
        assertEqual(dataset.actions, rawActions, accuracy: 1e-5)
        XCTAssertEqual(dataset.rewards, fixtureRewards)
        XCTAssertEqual(dataset.terminals, fixtureTerminals)
        XCTAssertEqual(dataset.normalization, normalization)
        XCTAssertEqual(dataset.metadata, ["source": "train.npz"])
    }

    func testImportWithoutNormalizationKeepsStoredValues() throws {
        let dataset = try TrajectoryDataset(referenceNPZ: fixture("train_stored.npz"))
        let stored = try NumpyArchive(contentsOf: fixture("train_stored.npz")).array(named: "states")
        XCTAssertEqual(dataset.states, stored.floatValues)
        XCTAssertNil(dataset.normalization)
        // The reference normalised these with (max − min + 1e−6): row 3 is (3, 16) → (0.5, 1) less a hair.
        assertEqual(Array(dataset.states[6..<8]), [0.5, 1], accuracy: 1e-5)
    }

    func testMalformedReferenceFilesNameTheProblem() {
        assertThrows(try TrajectoryDataset(referenceNPZ: fixture("nan_states.npz")), mentioning: ["states[5, 1]", "nan"])
        assertThrows(try TrajectoryDataset(referenceNPZ: fixture("lengths_mismatch.npz")), mentioning: ["traj_lengths adds up to 8", "states has 7 rows"])
        assertThrows(try TrajectoryDataset(referenceNPZ: fixture("missing_actions.npz")), mentioning: ["missing_actions.npz has no array actions"])
        assertThrows(try TrajectoryDataset(referenceNPZ: fixture("truncated.npz")), mentioning: ["truncated.npz", "not a readable .npz"])
        assertThrows(try TrajectoryDataset(referenceNPZ: fixture("dtypes.npz")), mentioning: ["dtypes.npz has no array states"])
        let wrongDimensions = Normalization(obsMin: [0], obsMax: [1], actionMin: [0], actionMax: [1])
        assertThrows(try TrajectoryDataset(referenceNPZ: fixture("train.npz"), normalization: wrongDimensions), mentioning: ["obs_min", "2", "1 entries"])
    }

    func testValidateNamesArrayIndexAndCounts() {
        XCTAssertNoThrow(try smallDataset().validate())
        var dataset = smallDataset()
        dataset.rewards = Array(fixtureRewards.dropLast())
        assertThrows(try dataset.validate(), mentioning: ["rewards has 6 rows", "states has 7"])
        dataset = smallDataset()
        dataset.actions.append(0)
        assertThrows(try dataset.validate(), mentioning: ["actions has 8 rows", "states has 7"])
        dataset = smallDataset()
        dataset.terminals = [true]
        assertThrows(try dataset.validate(), mentioning: ["terminals has 1 rows"])
        dataset = smallDataset()
        dataset.trajectoryLengths = [7, 0]
        assertThrows(try dataset.validate(), mentioning: ["traj_lengths[1] is 0"])
        dataset = smallDataset()
        dataset.trajectoryLengths = [3, 3]
        assertThrows(try dataset.validate(), mentioning: ["traj_lengths adds up to 6", "states has 7"])
        dataset = smallDataset()
        dataset.actions[2] = -.infinity
        assertThrows(try dataset.validate(), mentioning: ["actions[2, 0] is -inf"])
        dataset = smallDataset()
        dataset.rewards?[4] = .nan
        assertThrows(try dataset.validate(), mentioning: ["rewards[4] is nan"])
        dataset = smallDataset()
        dataset.states.append(1)
        assertThrows(try dataset.validate(), mentioning: ["states holds 15 values", "rows of 2"])
        dataset = TrajectoryDataset(states: [], stateDimension: 2, actions: [], actionDimension: 1, trajectoryLengths: [])
        assertThrows(try dataset.validate(), mentioning: ["no steps"])
        dataset = smallDataset()
        dataset.stateDimension = 0
        assertThrows(try dataset.validate(), mentioning: ["states has zero columns"])
        dataset = smallDataset()
        dataset.normalization = Normalization(obsMin: [0, 0, 0], obsMax: [1, 1, 1], actionMin: [0], actionMax: [1])
        assertThrows(try dataset.validate(), mentioning: ["obs_min has 3 entries", "2 are expected"])
    }

    func testSummaryCountsEpisodesAndReturns() {
        let summary = smallDataset().summary()
        XCTAssertEqual(summary.stepCount, 7)
        XCTAssertEqual(summary.episodeCount, 2)
        XCTAssertEqual(summary.stateDimension, 2)
        XCTAssertEqual(summary.actionDimension, 1)
        XCTAssertEqual(summary.episodeLength, SummaryStatistics([4, 3]))
        XCTAssertEqual(summary.episodeReturn?.minimum, 3)
        XCTAssertEqual(summary.episodeReturn?.mean, 3.5)
        XCTAssertEqual(summary.episodeReturn?.maximum, 4)
        XCTAssertEqual(summary.terminalCount, 1)
        XCTAssertEqual(smallDataset().episodeRanges, [0..<4, 4..<7])
        var withoutRewards = smallDataset()
        withoutRewards.rewards = nil
        XCTAssertNil(withoutRewards.summary().episodeReturn)
    }

    func testSafetensorsFileRoundTrip() throws {
        var dataset = try TrajectoryDataset(referenceNPZ: fixture("train.npz"), normalization: fixtureNormalization)
        dataset.metadata["task"] = "fixture-task"
        let url = temporaryFile("round-trip.safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try dataset.save(to: url)
        XCTAssertEqual(try TrajectoryDataset(contentsOf: url), dataset)

        let contents = try Safetensors.readContents(from: url)
        XCTAssertEqual(contents.metadata, ["format": "dppo-swift-dataset", "version": "1", "task": "fixture-task", "source": "train.npz"])
        XCTAssertEqual(contents.integerTensors["traj_lengths"], NamedIntegerTensor(name: "traj_lengths", shape: [2], values: [4, 3]))
        XCTAssertEqual(contents.integerTensors["terminals"]?.elementType, .bool)
        XCTAssertEqual(contents.tensors["states"]?.shape, [7, 2])
        XCTAssertEqual(contents.tensors["normalization.obs_max"]?.values, [4, 16])

        // Without normalisation, save stores the data's own min/max.
        let bare = smallDataset()
        try bare.save(to: url)
        XCTAssertEqual(try TrajectoryDataset(contentsOf: url).normalization, try Normalization(dataset: bare))
        XCTAssertEqual(try TrajectoryDataset(contentsOf: url).normalization, fixtureNormalization)
    }

    func testFileLoadingRefusesOtherFormatsVersionsAndMissingTensors() throws {
        let url = temporaryFile("refusals.safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try smallDataset().save(to: url)
        let contents = try Safetensors.readContents(from: url)
        func rewrite(metadata: [String: String], dropping dropped: String? = nil) throws {
            try Safetensors.write(contents.tensors.values.filter { $0.name != dropped }.sorted { $0.name < $1.name },
                                  integerTensors: contents.integerTensors.values.filter { $0.name != dropped }.sorted { $0.name < $1.name },
                                  metadata: metadata, to: url)
        }
        try rewrite(metadata: ["kind": "checkpoint"])
        assertThrows(try TrajectoryDataset(contentsOf: url), mentioning: ["refusals.safetensors", "no `format` metadata"])
        try rewrite(metadata: ["format": "dppo-swift-checkpoint"])
        assertThrows(try TrajectoryDataset(contentsOf: url), mentioning: ["format is dppo-swift-checkpoint"])
        try rewrite(metadata: ["format": "dppo-swift-dataset", "version": "2"])
        assertThrows(try TrajectoryDataset(contentsOf: url), mentioning: ["version 2", "update dppo"])
        try rewrite(metadata: contents.metadata, dropping: "traj_lengths")
        assertThrows(try TrajectoryDataset(contentsOf: url), mentioning: ["has no array traj_lengths"])
        try rewrite(metadata: contents.metadata, dropping: "normalization.action_max")
        assertThrows(try TrajectoryDataset(contentsOf: url), mentioning: ["has no array normalization.action_max"])
        try Data(try Data(contentsOf: fixture("train.npz")).prefix(4)).write(to: url)
        assertThrows(try TrajectoryDataset(contentsOf: url), mentioning: ["refusals.safetensors", "truncated"])

        assertThrows(try TrajectoryDataset(contentsOf: URL(fileURLWithPath: "/nonexistent/data.safetensors")),
                     mentioning: ["data.safetensors", "no readable file"])

        var reserved = smallDataset()
        reserved.metadata["version"] = "7"
        assertThrows(try reserved.save(to: url), mentioning: ["metadata key version is reserved"])
    }

    func testSafetensorsIntegerTensorsKeepCheckpointReadingStrict() throws {
        let floats = [NamedTensor(name: "weights", shape: [3], values: [1, 2, 3])]
        let integers = [NamedIntegerTensor(name: "counts", shape: [2], values: [1 << 40, -3]),
                        NamedIntegerTensor(name: "flags", shape: [3], elementType: .bool, values: [1, 0, 1])]
        let data = try Safetensors.encode(floats, integerTensors: integers, metadata: ["kind": "test"])
        let contents = try Safetensors.decodeContents(data)
        XCTAssertEqual(contents.tensors["weights"], floats[0])
        XCTAssertEqual(contents.integerTensors["counts"], integers[0])
        XCTAssertEqual(contents.integerTensors["flags"], integers[1])
        // Checkpoint reading takes F32 only, as before.
        assertThrows(try Safetensors.decode(data), mentioning: ["tensor counts has dtype I64"])
        XCTAssertEqual(try Safetensors.decode(Safetensors.encode(floats)).tensors["weights"], floats[0])
        // A BOOL byte other than 0 or 1 is refused: the flags are the last byte of the file.
        var corrupt = data
        corrupt[corrupt.count - 1] = 2
        assertThrows(try Safetensors.decodeContents(corrupt), mentioning: ["flags", "BOOL"])
    }
}
