import XCTest
import Foundation

extension XCTestCase {
    /// A fresh directory under the system's temporary folder, removed when the test ends.
    func makeTemporaryDirectory(_ prefix: String = "dppo-test") throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        return directory
    }
}
