/// A row-major block of Float32 values, `rows × columns`, allocated once and reused.
///
/// Activations, gradients and batches are `Matrix` values owned by the layer or buffer that
/// fills them. `resize(rows:)` changes the number of rows in use; memory only grows, so a hot
/// loop that sees the same batch sizes allocates nothing after its first pass.
public final class Matrix {
    public private(set) var rows: Int
    public let columns: Int
    public private(set) var capacity: Int
    public private(set) var data: UnsafeMutablePointer<Float>

    public init(rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "Matrix dimensions must be non-negative")
        self.rows = rows
        self.columns = columns
        self.capacity = max(rows * columns, 1)
        self.data = .allocate(capacity: capacity)
        data.initialize(repeating: 0, count: capacity)
    }

    public convenience init(rows: Int, columns: Int, values: [Float]) {
        precondition(values.count == rows * columns, "expected \(rows * columns) values, got \(values.count)")
        self.init(rows: rows, columns: columns)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { data.deallocate() }

    public var count: Int { rows * columns }

    /// Sets the number of rows in use, growing the allocation when needed (contents are then undefined).
    public func resize(rows newRows: Int) {
        precondition(newRows >= 0)
        if newRows * columns > capacity {
            data.deallocate()
            capacity = newRows * columns
            data = .allocate(capacity: capacity)
            data.initialize(repeating: 0, count: capacity)
        }
        rows = newRows
    }

    public subscript(row: Int, column: Int) -> Float {
        get { data[row * columns + column] }
        set { data[row * columns + column] = newValue }
    }

    public func row(_ index: Int) -> UnsafeMutablePointer<Float> { data + index * columns }

    public var buffer: UnsafeMutableBufferPointer<Float> { .init(start: data, count: count) }

    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    public func copy(from other: Matrix) {
        precondition(other.columns == columns, "column mismatch \(other.columns) vs \(columns)")
        resize(rows: other.rows)
        data.update(from: other.data, count: count)
    }

    public func toArray() -> [Float] { Array(buffer) }
}
