import Crypto
import Foundation

/// Signs and checks messages with HMAC-SHA256 under the cluster key (docs/wire-format.md, Authentication).
///
/// The tag covers the whole message as sent, header and encoded payload, with the 32 tag bytes
/// taken as zero; it is written into those bytes. Checking works on the bytes as received, so a
/// receiver never decompresses or parses anything a peer without the key could have written.
struct MessageAuthenticator: Sendable {
    /// Where the tag lives in the header.
    static let tagRange = 64 ..< 96
    private static let zeroTag = [UInt8](repeating: 0, count: tagRange.count)

    private let key: [UInt8]

    init(key: [UInt8]) {
        self.key = key
    }

    /// HMAC-SHA256(key, header with the tag bytes zeroed ‖ encoded payload) of a complete message.
    private func tag(of message: UnsafeRawBufferPointer) -> HashedAuthenticationCode<SHA256> {
        var authenticator = HMAC<SHA256>(key: SymmetricKey(data: key))
        authenticator.update(data: UnsafeRawBufferPointer(rebasing: message[..<Self.tagRange.lowerBound]))
        authenticator.update(data: Self.zeroTag)
        authenticator.update(data: UnsafeRawBufferPointer(rebasing: message[Self.tagRange.upperBound...]))
        return authenticator.finalize()
    }

    /// Writes the tag of `message` (header already written, authenticated flag set) into its tag bytes.
    func sign(_ message: inout [UInt8]) {
        let code = message.withUnsafeBytes { tag(of: $0) }
        code.withUnsafeBytes { message.replaceSubrange(Self.tagRange, with: $0) }
    }

    /// Throws `badTag` unless the tag bytes of `message` hold its tag; the comparison takes the
    /// same time wherever the bytes differ, so timing tells a forger nothing.
    func verify(_ message: UnsafeRawBufferPointer) throws(WireError) {
        guard tag(of: message) == UnsafeRawBufferPointer(rebasing: message[Self.tagRange]) else { throw .badTag }
    }
}
