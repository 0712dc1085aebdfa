import Foundation

/// Philox4x32-10: a counter-based generator (Salmon et al., SC'11).
///
/// The stream is a pure function of (key, counter), so a generator state is two small integers:
/// checkpoints store it exactly, and a learner can replay an actor's noise from its seed.
public struct Philox: Sendable, Equatable, Codable {
    public var key: UInt64
    public var counter: UInt64
    private var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var bufferIndex: Int = 4
    private var spareNormal: Float? = nil

    public init(seed: UInt64, stream: UInt64 = 0) {
        key = seed &* 0x9E37_79B9_7F4A_7C15 ^ stream
        counter = 0
    }

    /// The exact position: the block in use is a function of (key, counter − 1), so `index` (its next word) and the
    /// Box–Muller spare complete it, and a decoded generator continues the stream where the encoded one stood.
    /// States written before `index` existed decode at the next block.
    enum CodingKeys: CodingKey { case key, counter, index, spare }
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        key = try container.decode(UInt64.self, forKey: .key)
        counter = try container.decode(UInt64.self, forKey: .counter)
        let index = try container.decodeIfPresent(Int.self, forKey: .index) ?? 4
        guard (0...4).contains(index), index == 4 || counter > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .index, in: container, debugDescription: "block index \(index) out of range")
        }
        if index < 4 { buffer = Philox.block(key: key, counter: counter &- 1) }
        bufferIndex = index
        spareNormal = try container.decodeIfPresent(Float.self, forKey: .spare)
    }
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(key, forKey: .key)
        try container.encode(counter, forKey: .counter)
        try container.encode(bufferIndex, forKey: .index)
        try container.encodeIfPresent(spareNormal, forKey: .spare)
    }
    public static func == (lhs: Philox, rhs: Philox) -> Bool { lhs.key == rhs.key && lhs.counter == rhs.counter && lhs.bufferIndex == rhs.bufferIndex }

    @inline(__always)
    static func block(key: UInt64, counter: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counter), c1 = UInt32(truncatingIfNeeded: counter >> 32)
        var c2: UInt32 = 0, c3: UInt32 = 0
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0
            let n1 = UInt32(truncatingIfNeeded: p1)
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1
            let n3 = UInt32(truncatingIfNeeded: p0)
            c0 = n0; c1 = n1; c2 = n2; c3 = n3
            k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }

    @inline(__always)
    public mutating func nextUInt32() -> UInt32 {
        if bufferIndex == 4 {
            buffer = Philox.block(key: key, counter: counter)
            counter &+= 1
            bufferIndex = 0
        }
        defer { bufferIndex += 1 }
        switch bufferIndex {
        case 0: return buffer.0
        case 1: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    /// Uniform in (0, 1), never exactly 0 (safe for logarithms).
    @inline(__always)
    public mutating func uniform() -> Float {
        Float(nextUInt32() >> 8) * (1.0 / 16_777_216.0) + (0.5 / 16_777_216.0)
    }

    /// Two words as one 64-bit value (the first in the high half).
    @inline(__always)
    public mutating func nextUInt64() -> UInt64 {
        UInt64(nextUInt32()) << 32 | UInt64(nextUInt32())
    }

    /// Uniform integer in 0..<bound.
    public mutating func integer(below bound: Int) -> Int {
        precondition(bound > 0)
        let wide = nextUInt64()
        return Int(wide % UInt64(bound))
    }

    /// Standard normal sample (Box–Muller, both outputs used).
    @inline(__always)
    public mutating func normal() -> Float {
        if let spare = spareNormal { spareNormal = nil; return spare }
        let radius = (-2 * Foundation.log(Double(uniform()))).squareRoot()
        let angle = 2 * Double.pi * Double(uniform())
        spareNormal = Float(radius * Foundation.sin(angle))
        return Float(radius * Foundation.cos(angle))
    }

    public mutating func fillNormal(_ destination: UnsafeMutablePointer<Float>, count: Int) {
        for index in 0..<count { destination[index] = normal() }
    }

    public mutating func fillUniform(_ destination: UnsafeMutablePointer<Float>, count: Int, low: Float, high: Float) {
        for index in 0..<count { destination[index] = low + (high - low) * uniform() }
    }

    /// A uniformly random permutation of 0..<count (Fisher–Yates), written into `indices`.
    public mutating func permutation(_ indices: inout [Int], count: Int) {
        indices.removeAll(keepingCapacity: true)
        indices.append(contentsOf: 0..<count)
        guard count > 1 else { return }
        for position in stride(from: count - 1, to: 0, by: -1) {
            indices.swapAt(position, integer(below: position + 1))
        }
    }
}
