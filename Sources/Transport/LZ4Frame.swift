import CLZ4

/// One-shot LZ4 frame compression and bounded decompression of a whole payload.
enum LZ4Frame {
    /// Compresses `source` into one LZ4 frame that records the content size.
    ///
    /// The result starts with `prefix` zero bytes (room for the header) followed by the frame.
    static func compress(_ source: UnsafeRawBufferPointer, level: Int32, prefix: Int) throws(WireError) -> [UInt8] {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.contentSize = UInt64(source.count)
        preferences.compressionLevel = level
        let bound = LZ4F_compressFrameBound(source.count, &preferences)
        var output = [UInt8](repeating: 0, count: prefix + bound)
        let written = output.withUnsafeMutableBytes { out in
            LZ4F_compressFrame(out.baseAddress! + prefix, bound, source.baseAddress, source.count, &preferences)
        }
        if LZ4F_isError(written) != 0 {
            throw .compressionFailed(String(cString: LZ4F_getErrorName(written)))
        }
        output.removeLast(bound - written)
        return output
    }

    /// Decompresses `frame`, which must be exactly one LZ4 frame expanding to exactly
    /// `rawLength` bytes. Never writes or allocates beyond `rawLength` bytes of output.
    static func decompress(_ frame: UnsafeRawBufferPointer, rawLength: Int) throws(WireError) -> [UInt8] {
        var context: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        defer { LZ4F_freeDecompressionContext(context) }
        if LZ4F_isError(created) != 0 {
            throw .decompressionFailed(String(cString: LZ4F_getErrorName(created)))
        }
        var output = [UInt8](repeating: 0, count: rawLength)
        var consumed = 0
        var produced = 0
        let failure: WireError? = output.withUnsafeMutableBytes { out in
            while true {
                var inputSize = frame.count - consumed
                var outputSize = rawLength - produced
                let hint = LZ4F_decompress(
                    context, out.baseAddress.map { $0 + produced }, &outputSize,
                    frame.baseAddress.map { $0 + consumed }, &inputSize, nil)
                if LZ4F_isError(hint) != 0 {
                    return .decompressionFailed(String(cString: LZ4F_getErrorName(hint)))
                }
                consumed += inputSize
                produced += outputSize
                if hint == 0 { return nil }
                if inputSize == 0 && outputSize == 0 {
                    return consumed == frame.count
                        ? .truncated("the LZ4 frame")
                        : .lengthMismatch("the LZ4 frame expands to more than the declared \(rawLength) raw bytes")
                }
            }
        }
        if let failure { throw failure }
        guard consumed == frame.count else {
            throw .lengthMismatch("\(frame.count - consumed) bytes follow the LZ4 frame in the payload")
        }
        guard produced == rawLength else {
            throw .lengthMismatch("the LZ4 frame expands to \(produced) bytes, the header declares \(rawLength)")
        }
        return output
    }
}
