import Datasets
import Foundation
import XCTest

/// A file made by scripts/make_dataset_fixtures.py.
func fixture(_ name: String) -> URL {
    Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")!
}

/// A fresh path in the temporary directory; the caller removes it.
func temporaryFile(_ name: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("dppo-datasets-\(UUID().uuidString)-\(name)")
}

/// Asserts that `body` throws and that the error's description contains every one of `fragments`.
func assertThrows<T>(_ body: @autoclosure () throws -> T, mentioning fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        let message = String(describing: error)
        for fragment in fragments {
            XCTAssertTrue(message.contains(fragment), "\"\(message)\" does not mention \"\(fragment)\"", file: file, line: line)
        }
    }
}

/// The fixtures' two episodes (4 and 3 steps, Do = 2, Da = 1) in environment units, as
/// scripts/make_dataset_fixtures.py defines them before normalising.
let rawStates: [Float] = [0, 10, 1, 12, 2, 14, 3, 16, 4, 10, 2, 11, 0, 13]
let rawActions: [Float] = [-2, 0, 2, 1, -1, 0, 1]
let fixtureRewards: [Float] = [1, 1, 1, 1, 0.5, 0.5, 2]
let fixtureTerminals = [false, false, false, false, false, false, true]
let fixtureNormalization = Normalization(obsMin: [0, 10], obsMax: [4, 16], actionMin: [-2], actionMax: [2])

/// The fixtures' dataset, valid, without normalisation.
func smallDataset() -> TrajectoryDataset {
    TrajectoryDataset(states: rawStates, stateDimension: 2, actions: rawActions, actionDimension: 1, trajectoryLengths: [4, 3],
                      rewards: fixtureRewards, terminals: fixtureTerminals, metadata: ["task": "fixture"])
}

func assertEqual(_ actual: [Float], _ expected: [Float], accuracy: Float, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "lengths differ", file: file, line: line)
    for (index, (a, e)) in zip(actual, expected).enumerated() {
        XCTAssertEqual(a, e, accuracy: accuracy, "element \(index)", file: file, line: line)
    }
}
