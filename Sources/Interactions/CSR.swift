/// Compressed sparse rows: row r's entries are `indices[indptr[r]..<indptr[r+1]]` (sorted,
/// unique) with `values` alongside. `transposed()` gives the other orientation.
public struct CSR: Sendable, Equatable {
    public let rows: Int
    public let cols: Int
    public let indptr: [Int]
    public let indices: [Int32]
    public private(set) var values: [Float]

    public init(rows: Int, cols: Int, indptr: [Int], indices: [Int32], values: [Float]) {
        precondition(indptr.count == rows + 1 && indices.count == values.count && indptr.last == indices.count)
        self.rows = rows
        self.cols = cols
        self.indptr = indptr
        self.indices = indices
        self.values = values
    }

    /// Builds from coordinates; duplicate (row, col) pairs are summed, columns sorted per row.
    public init(rows: Int, cols: Int, rowIndex: [Int32], colIndex: [Int32], values: [Float]) {
        let n = rowIndex.count
        // Coordinates already in this order (rows ascending, columns strictly ascending within
        // each: what `EventHistory.interactions()` gives) keep their column and value arrays as
        // they are (shared, not copied: at 100M entries that is 800 MB not allocated).
        if values.count == n, let indptr = CSR.indptrIfOrdered(rows: rows, rowIndex: rowIndex, colIndex: colIndex) {
            self.init(rows: rows, cols: cols, indptr: indptr, indices: colIndex, values: values)
            return
        }
        self.init(sorting: rows, cols: cols, rowIndex: rowIndex, colIndex: colIndex, values: values)
    }

    /// The general case of the above: a counting sort by row, then each row sorted by column with
    /// duplicates summed (coordinates known not to be in order skip the check).
    init(sorting rows: Int, cols: Int, rowIndex: [Int32], colIndex: [Int32], values: [Float]) {
        let n = rowIndex.count
        var counts = [Int](repeating: 0, count: rows + 1)
        for r in rowIndex { counts[Int(r) + 1] += 1 }
        for r in 0..<rows { counts[r + 1] += counts[r] }
        var fill = counts
        var idx = [Int32](repeating: 0, count: n)
        var val = [Float](repeating: 0, count: n)
        idx.withUnsafeMutableBufferPointer { idx in
            val.withUnsafeMutableBufferPointer { val in
                for k in 0..<n {
                    let r = Int(rowIndex[k])
                    let p = fill[r]
                    idx[p] = colIndex[k]
                    val[p] = values[k]
                    fill[r] = p + 1
                }
            }
        }
        // Sort each row by column and sum duplicates in place.
        var outPtr = [Int](repeating: 0, count: rows + 1)
        var w = 0
        var pairs: [(Int32, Float)] = []
        for r in 0..<rows {
            let s = counts[r], e = counts[r + 1]
            var sorted = true
            if e - s > 1 { for p in (s + 1)..<e where idx[p] <= idx[p - 1] { sorted = false; break } }
            if sorted {
                for p in s..<e { idx[w] = idx[p]; val[w] = val[p]; w += 1 }
            } else {
                pairs.removeAll(keepingCapacity: true)
                for p in s..<e { pairs.append((idx[p], val[p])) }
                pairs.sort { $0.0 < $1.0 }
                var last: Int32 = -1
                for (c, v) in pairs {
                    if c == last { val[w - 1] += v } else { idx[w] = c; val[w] = v; w += 1; last = c }
                }
            }
            outPtr[r + 1] = w
        }
        idx.removeLast(n - w)
        val.removeLast(n - w)
        self.init(rows: rows, cols: cols, indptr: outPtr, indices: idx, values: val)
    }

    /// The row pointers of coordinates sorted by row (each below `rows`) then strictly by
    /// column; nil when they are not, or the two arrays differ in length.
    static func indptrIfOrdered(rows: Int, rowIndex: [Int32], colIndex: [Int32]) -> [Int]? {
        guard rowIndex.count == colIndex.count else { return nil }
        var ptr = [Int](repeating: 0, count: rows + 1)
        let ordered = rowIndex.withUnsafeBufferPointer { r in
            colIndex.withUnsafeBufferPointer { c in
                ptr.withUnsafeMutableBufferPointer { ptr -> Bool in
                    var lastRow = -1, lastCol: Int32 = -1
                    for k in 0..<r.count {
                        let row = Int(r[k])
                        if row != lastRow {
                            guard row > lastRow, row < rows else { return false }
                            for q in (lastRow + 1)...row { ptr[q] = k }
                            lastRow = row; lastCol = -1
                        }
                        guard c[k] > lastCol else { return false }
                        lastCol = c[k]
                    }
                    for q in (lastRow + 1)...rows { ptr[q] = r.count }
                    return true
                }
            }
        }
        return ordered ? ptr : nil
    }

    public var nnz: Int { indices.count }

    @inline(__always)
    public func rowRange(_ r: Int) -> Range<Int> { indptr[r]..<indptr[r + 1] }

    public func rowCount(_ r: Int) -> Int { indptr[r + 1] - indptr[r] }

    public func columns(ofRow r: Int) -> ArraySlice<Int32> { indices[rowRange(r)] }

    /// `mapValues` in place (no second values array while a 100M-entry matrix is built).
    public mutating func transformValues(_ f: (Float) -> Float) {
        values.withUnsafeMutableBufferPointer { v in for i in v.indices { v[i] = f(v[i]) } }
    }

    public func mapValues(_ f: (Float) -> Float) -> CSR {
        CSR(rows: rows, cols: cols, indptr: indptr, indices: indices, values: values.map(f))
    }

    /// The same matrix in the other orientation (a counting sort, so columns stay sorted).
    public func transposed() -> CSR {
        var ptr = [Int](repeating: 0, count: cols + 1)
        for c in indices { ptr[Int(c) + 1] += 1 }
        for c in 0..<cols { ptr[c + 1] += ptr[c] }
        var fill = ptr
        var idx = [Int32](repeating: 0, count: nnz)
        var val = [Float](repeating: 0, count: nnz)
        indices.withUnsafeBufferPointer { ind in
            values.withUnsafeBufferPointer { vs in
                idx.withUnsafeMutableBufferPointer { idx in
                    val.withUnsafeMutableBufferPointer { val in
                        for r in 0..<rows {
                            for p in indptr[r]..<indptr[r + 1] {
                                let c = Int(ind[p])
                                let q = fill[c]
                                idx[q] = Int32(r)
                                val[q] = vs[p]
                                fill[c] = q + 1
                            }
                        }
                    }
                }
            }
        }
        return CSR(rows: cols, cols: rows, indptr: ptr, indices: idx, values: val)
    }

    /// Whether row r contains column c (binary search).
    public func contains(row r: Int, col c: Int32) -> Bool {
        var lo = indptr[r], hi = indptr[r + 1]
        while lo < hi {
            let mid = (lo + hi) / 2
            if indices[mid] < c { lo = mid + 1 } else { hi = mid }
        }
        return lo < indptr[r + 1] && indices[lo] == c
    }
}
