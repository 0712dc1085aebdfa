import Foundation
import ZIPFoundation

/// An `.npz` file: a zip archive of `.npy` arrays, as `np.savez` (stored) and `np.savez_compressed`
/// (deflate) write it. numpy opens every entry with `force_zip64`, so the local headers carry Zip64
/// size fields; ZIPFoundation reads them.
///
/// Arrays are extracted one at a time, on request, so inspecting a large file reads only what is asked for.
public final class NumpyArchive {
    /// Where the archive was read from.
    public let url: URL
    /// The array names (entry names without `.npy`), sorted.
    public let arrayNames: [String]
    private let archive: Archive
    private let entries: [String: Entry]

    /// Opens the archive and lists its arrays; no array is read yet.
    public init(contentsOf url: URL) throws {
        self.url = url
        let file = url.lastPathComponent
        guard FileManager.default.isReadableFile(atPath: url.path) else {
            throw NumpyError.unreadableArchive(file: file, detail: "no readable file at \(url.path)")
        }
        do {
            archive = try Archive(url: url, accessMode: .read)
        } catch {
            throw NumpyError.unreadableArchive(file: file, detail: String(describing: error))
        }
        var entries: [String: Entry] = [:]
        for entry in archive where entry.type == .file && entry.path.hasSuffix(".npy") {
            entries[String(entry.path.dropLast(4))] = entry
        }
        self.entries = entries
        arrayNames = entries.keys.sorted()
    }

    /// Whether the archive holds `<name>.npy`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// Extracts and parses one array. The entry is read no further than the size the zip
    /// directory declares, and its CRC-32 is checked before the `.npy` header is trusted.
    public func array(named name: String) throws -> NumpyArray {
        let file = url.lastPathComponent
        guard let entry = entries[name] else { throw NumpyError.missingArray(array: name, file: file, available: arrayNames) }
        let declaredSize = entry.uncompressedSize
        var contents = Data()
        let checksum: CRC32
        do {
            checksum = try archive.extract(entry) { chunk in
                guard UInt64(contents.count + chunk.count) <= declaredSize else {
                    throw NumpyError.corruptEntry(array: name, file: file, detail: "it inflates past the \(declaredSize) bytes the zip directory declares")
                }
                contents.append(chunk)
            }
        } catch let error as NumpyError {
            throw error
        } catch {
            throw NumpyError.corruptEntry(array: name, file: file, detail: String(describing: error))
        }
        guard UInt64(contents.count) == declaredSize else {
            throw NumpyError.corruptEntry(array: name, file: file, detail: "it holds \(contents.count) of the \(declaredSize) bytes the zip directory declares")
        }
        guard checksum == entry.checksum else {
            throw NumpyError.corruptEntry(array: name, file: file, detail: "CRC-32 mismatch")
        }
        return try NumpyArray(name: name, npyData: contents)
    }
}
