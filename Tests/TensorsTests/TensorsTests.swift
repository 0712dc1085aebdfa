import XCTest
@testable import Tensors

final class TensorsTests: XCTestCase {
    func testGemmMatchesNaiveProductForEveryTransposition() {
        var random = Philox(seed: 1)
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let m = 5, n = 4, k = 3
            let a = Matrix(rows: ta ? k : m, columns: ta ? m : k), b = Matrix(rows: tb ? n : k, columns: tb ? k : n)
            random.fillNormal(a.data, count: a.count)
            random.fillNormal(b.data, count: b.count)
            let c = Matrix(rows: m, columns: n)
            BLAS.gemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: a.data, lda: a.columns, b: b.data, ldb: b.columns, beta: 0, c: c.data, ldc: n)
            for i in 0..<m { for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k { sum += (ta ? a[p, i] : a[i, p]) * (tb ? b[j, p] : b[p, j]) }
                XCTAssertEqual(c[i, j], sum, accuracy: 1e-5)
            } }
        }
    }

    func testPhiloxIsDeterministicAndWellDistributed() {
        var a = Philox(seed: 42), b = Philox(seed: 42), other = Philox(seed: 42, stream: 1)
        let first = (0..<8).map { _ in a.nextUInt32() }
        XCTAssertEqual(first, (0..<8).map { _ in b.nextUInt32() })
        XCTAssertNotEqual(first, (0..<8).map { _ in other.nextUInt32() })
        var random = Philox(seed: 3)
        let samples = (0..<200_000).map { _ in Double(random.normal()) }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
        let uniforms = (0..<100_000).map { _ in random.uniform() }
        XCTAssertTrue(uniforms.allSatisfy { $0 > 0 && $0 < 1 })
        var permutation: [Int] = []
        random.permutation(&permutation, count: 100)
        XCTAssertEqual(permutation.sorted(), Array(0..<100))
        XCTAssertNotEqual(permutation, Array(0..<100))
    }

    func testCheckpointedStateResumesTheStream() throws {
        var random = Philox(seed: 9)
        for _ in 0..<4 { _ = random.nextUInt32() } // consume exactly one block
        let data = try JSONEncoder().encode(random)
        var restored = try JSONDecoder().decode(Philox.self, from: data)
        XCTAssertEqual((0..<10).map { _ in restored.nextUInt32() }, (0..<10).map { _ in random.nextUInt32() })
    }

    /// Mid-block, and with a Box–Muller spare pending, a decoded generator continues exactly (an offline run's resume
    /// relies on it); a state written without the block index starts at the next block.
    func testCheckpointedStateResumesMidBlockWithItsSpareNormal() throws {
        var random = Philox(seed: 11, stream: 3)
        _ = random.nextUInt32()
        _ = random.normal() // leaves a spare
        let data = try JSONEncoder().encode(random)
        var restored = try JSONDecoder().decode(Philox.self, from: data)
        XCTAssertEqual(restored, random)
        XCTAssertEqual((0..<9).map { _ in restored.normal() }, (0..<9).map { _ in random.normal() })
        XCTAssertEqual((0..<7).map { _ in restored.nextUInt32() }, (0..<7).map { _ in random.nextUInt32() })

        var old = try JSONDecoder().decode(Philox.self, from: Data(#"{"key": 5, "counter": 2}"#.utf8))
        var nextBlock = Philox(seed: 0)
        nextBlock.key = 5
        nextBlock.counter = 2
        XCTAssertEqual(old.nextUInt32(), nextBlock.nextUInt32())
        XCTAssertThrowsError(try JSONDecoder().decode(Philox.self, from: Data(#"{"key": 5, "counter": 0, "index": 2}"#.utf8)))
    }

    func testMatrixResizeKeepsColumnsAndGrows() {
        let matrix = Matrix(rows: 2, columns: 3)
        matrix.resize(rows: 10)
        XCTAssertEqual(matrix.count, 30)
        matrix.fill(2)
        XCTAssertEqual(matrix.toArray().reduce(0, +), 60)
        matrix.resize(rows: 1)
        XCTAssertEqual(matrix.count, 3)
    }

    /// Parallel.treeSum: the pairwise tree's sum, the same bits whatever the number of element ranges summed at once;
    /// Parallel.range splits a total into contiguous, covering parts.
    func testTreeSumIsFixedOrder() {
        let count = 10_007, shardCount = 5
        var random = Philox(seed: 3)
        let sources = (0..<shardCount).map { _ in (0..<count).map { _ in random.normal() * 1e3 } }
        func summed(workers: Int) -> [Float] {
            let buffers = sources.map { source -> UnsafeMutablePointer<Float> in
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
                buffer.initialize(from: source, count: count)
                return buffer
            }
            defer { buffers.forEach { $0.deallocate() } }
            Parallel.treeSum(buffers, count: count, workers: workers)
            return Array(UnsafeBufferPointer(start: buffers[0], count: count))
        }
        let one = summed(workers: 1), three = summed(workers: 3)
        XCTAssertTrue(one.elementsEqual(three) { $0.bitPattern == $1.bitPattern })
        for index in [0, 17, count - 1] {
            let s = sources.map { $0[index] }
            XCTAssertEqual(one[index], ((s[0] + s[1]) + (s[2] + s[3])) + s[4], "tree order at \(index)")
        }
        let parts = (0..<4).map { Parallel.range(shard: $0, of: 4, total: 10) }
        XCTAssertEqual(parts, [0..<3, 3..<6, 6..<8, 8..<10])
        XCTAssertEqual(Parallel.range(shard: 2, of: 3, total: 1), 1..<1)
        var seen = [Int](repeating: 0, count: 7)
        let lock = NSLock()
        Parallel.forEach(7) { shard in lock.lock(); seen[shard] += 1; lock.unlock() }
        XCTAssertEqual(seen, [Int](repeating: 1, count: 7))
    }
}
