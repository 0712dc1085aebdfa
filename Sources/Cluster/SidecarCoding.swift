import Foundation

/// The checkpoint sidecar's JSON keys: snake_case like every other file the project writes (`policy_version`,
/// `use_ddim`), read back in either case so that sidecars written before the change (camelCase) still load.
/// The keys of `dropped_segments` are drop reasons, data rather than field names, and pass through unchanged.
enum SidecarCoding {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .custom { path in
            StringKey(isData(path) ? path[path.count - 1].stringValue : snakeCase(path[path.count - 1].stringValue))
        }
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { path in
            StringKey(isData(path) ? path[path.count - 1].stringValue : camelCase(path[path.count - 1].stringValue))
        }
        return decoder
    }

    /// Words written in capitals in a Swift name: `useDDIM` ↔ `use_ddim`.
    private static let acronyms: Set<String> = ["ddim"]

    /// A key inside a dictionary whose keys are data.
    private static func isData(_ path: [CodingKey]) -> Bool {
        path.count >= 2 && ["droppedSegments", "dropped_segments"].contains(path[path.count - 2].stringValue)
    }

    /// `policyVersion` → `policy_version`, `useDDIM` → `use_ddim`, `ddimSteps` → `ddim_steps`.
    static func snakeCase(_ name: String) -> String {
        let characters = Array(name)
        var result = ""
        for (index, character) in characters.enumerated() {
            if character.isUppercase, index > 0 {
                let previous = characters[index - 1]
                let nextIsLower = index + 1 < characters.count && characters[index + 1].isLowercase
                if previous.isLowercase || previous.isNumber || (previous.isUppercase && nextIsLower) { result.append("_") }
            }
            result.append(contentsOf: character.lowercased())
        }
        return result
    }

    /// The inverse of `snakeCase` for the sidecar's names; a key without an underscore is returned as it is, so
    /// camelCase sidecars decode too.
    static func camelCase(_ name: String) -> String {
        let words = name.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
        guard words.count > 1 else { return name }
        return words[0] + words.dropFirst().map { acronyms.contains($0) ? $0.uppercased() : $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }
}

/// A coding key made from any string: the sidecar's converted names, and metrics' dynamic keys
/// (`actors/<index>/<name>`, `transport/dropped/<reason>`).
struct StringKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
