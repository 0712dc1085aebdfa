extension String {
    /// Decodes `bytes` as UTF-8, or returns nil when they are not valid UTF-8
    /// (instead of repairing them with replacement characters).
    init?(strictUTF8 bytes: some Collection<UInt8>) {
        let decoded = String(decoding: bytes, as: UTF8.self)
        guard decoded.utf8.elementsEqual(bytes) else { return nil }
        self = decoded
    }
}
