/// What LZ4 makes of one tensor's data, with and without the byte shuffle, for measuring
/// the wire format's compression field by field (`dppo bench wire`).
public enum CompressionProbe {
    /// The size of `tensor`'s data as one LZ4 frame at `level`: as is, and byte-shuffled by
    /// its element width (the codec shuffles only float32 tensors; this shuffles any width > 1).
    public static func lz4Sizes(of tensor: WireTensor, level: Int32 = 0) throws(WireError) -> (plain: Int, shuffled: Int) {
        let width = tensor.dtype.byteWidth
        let plain = try tensor.bytes.withBytes { (source) throws(WireError) in try LZ4Frame.compress(source, level: level, prefix: 0).count }
        guard width > 1, tensor.bytes.count % width == 0 else { return (plain, plain) }
        var shuffled = [UInt8](repeating: 0, count: tensor.bytes.count)
        tensor.bytes.withUnsafeBytes { source in
            shuffled.withUnsafeMutableBytes { ByteShuffle.shuffle(source, width: width, into: $0) }
        }
        let shuffledSize = try shuffled.withBytes { (source) throws(WireError) in try LZ4Frame.compress(source, level: level, prefix: 0).count }
        return (plain, shuffledSize)
    }
}
