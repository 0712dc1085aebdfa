import XCTest
@testable import Offline

final class OfflineFixtureTests: XCTestCase {
    func testScheduleVectorsAreBundled() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "offline-schedule-vectors", withExtension: "json", subdirectory: "Fixtures"))
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(contentsOf: url)))
    }
}
