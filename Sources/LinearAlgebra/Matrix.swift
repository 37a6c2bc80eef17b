/// A dense row-major float32 matrix in 64-byte aligned memory that it owns.
///
/// Only this type and the BLAS wrappers touch the raw storage pointer; kernels borrow rows
/// through `row(_:)` and `withUnsafeBuffer` for the duration of a call.
public final class Matrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let storage: UnsafeMutablePointer<Float>

    public init(rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "matrix dimensions must be non-negative")
        self.rows = rows
        self.cols = cols
        let count = max(rows * cols, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride,
                                                   alignment: 64)
        storage = raw.bindMemory(to: Float.self, capacity: count)
        storage.initialize(repeating: 0, count: count)
    }

    public convenience init(rows: Int, cols: Int, values: [Float]) {
        precondition(values.count == rows * cols, "expected \(rows * cols) values, got \(values.count)")
        self.init(rows: rows, cols: cols)
        values.withUnsafeBufferPointer { storage.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { UnsafeMutableRawPointer(storage).deallocate() }

    public var count: Int { rows * cols }

    @inline(__always)
    public subscript(r: Int, c: Int) -> Float {
        get { storage[r * cols + c] }
        set { storage[r * cols + c] = newValue }
    }

    @inline(__always)
    public func row(_ r: Int) -> UnsafeMutablePointer<Float> { storage + r * cols }

    public func copy() -> Matrix {
        let m = Matrix(rows: rows, cols: cols)
        m.storage.update(from: storage, count: count)
        return m
    }

    public var values: [Float] { Array(UnsafeBufferPointer(start: storage, count: count)) }

    public func withUnsafeBuffer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: storage, count: count))
    }

    /// Sum of squares of all entries (Frobenius norm squared), accumulated in double.
    public func squaredNorm() -> Double {
        var s = 0.0
        for i in 0..<count { let v = Double(storage[i]); s += v * v }
        return s
    }
}
