/// The byte shuffle applied to float data before compression.
///
/// For `n` elements of `w` bytes, byte `j` of element `i` moves to position `j * n + i`:
/// first every element's byte 0, then every element's byte 1, and so on. Neighbouring
/// floats share sign and exponent bytes, so the shuffled stream has long similar runs
/// that LZ4 can find, where the interleaved original has almost none.
enum ByteShuffle {
    /// Writes the shuffled form of `source` into `destination` (same size, a multiple of `width`).
    static func shuffle(_ source: UnsafeRawBufferPointer, width: Int, into destination: UnsafeMutableRawBufferPointer) {
        permute(source, width: width, into: destination, shuffling: true)
    }

    /// Undoes `shuffle`: writes the element-ordered form of `source` into `destination`.
    static func unshuffle(_ source: UnsafeRawBufferPointer, width: Int, into destination: UnsafeMutableRawBufferPointer) {
        permute(source, width: width, into: destination, shuffling: false)
    }

    private static func permute(
        _ source: UnsafeRawBufferPointer, width: Int,
        into destination: UnsafeMutableRawBufferPointer, shuffling: Bool
    ) {
        precondition(source.count == destination.count && source.count % width == 0)
        guard let input = source.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let output = destination.baseAddress?.assumingMemoryBound(to: UInt8.self)
        else { return }
        let count = source.count / width
        for byte in 0 ..< width {
            for element in 0 ..< count {
                let interleaved = element * width + byte
                let planar = byte * count + element
                if shuffling {
                    output[planar] = input[interleaved]
                } else {
                    output[interleaved] = input[planar]
                }
            }
        }
    }
}
