import Foundation
import Interactions
import LinearAlgebra

/// How EASE is fitted.
public struct EASEConfig: Sendable, Equatable {
    /// L2 penalty lambda added to the Gram matrix's diagonal.
    public var lambda: Float = 200
    /// The largest item x item weight matrix (items^2 x 4 bytes) the fit may allocate; past it
    /// the fit is refused rather than swapping. Default: two thirds of physical memory.
    public var maxBytes: Int = EASEConfig.defaultMaxBytes
    public var threads: Int = 2
    /// How X'X is accumulated: dense blocks of users through `ssyrk`, pairs of each user's
    /// items, or whichever the cost model says is cheaper.
    public enum Gram: String, Sendable, CaseIterable { case auto, dense, sparse }
    public var gram: Gram = .auto

    public init(lambda: Float = 200, maxBytes: Int = EASEConfig.defaultMaxBytes, threads: Int = 2, gram: Gram = .auto) {
        self.lambda = lambda
        self.maxBytes = maxBytes
        self.threads = threads
        self.gram = gram
    }

    public static var defaultMaxBytes: Int { Int(ProcessInfo.processInfo.physicalMemory / 3 * 2) }

    /// The weight matrix's size for a catalog of `items`.
    public static func bytes(items: Int) -> Int { items * items * MemoryLayout<Float>.stride }
}

public enum EASEError: Error, CustomStringConvertible {
    case tooLarge(items: Int, bytes: Int, bound: Int)
    case notPositiveDefinite(info: Int32, lambda: Float)

    public var description: String {
        switch self {
        case .tooLarge(let items, let bytes, let bound):
            return String(format: "EASE needs an item x item matrix: %d items -> %.1f GiB, over the bound of %.1f GiB "
                          + "(--ease-max-memory); use ALS or two-tower for a catalog this size, or raise the bound if the memory is there",
                          items, Double(bytes) / 1_073_741_824, Double(bound) / 1_073_741_824)
        case .notPositiveDefinite(let info, let lambda):
            return "EASE: X'X + lambda I is not positive definite (LAPACK info \(info)) at lambda \(lambda); use a larger --lambda"
        }
    }
}

/// EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): an item x item
/// weight matrix B with zero diagonal, closed form B = I - P diag(1/diag P) where
/// P = (X'X + lambda I)^-1 and X is the binary user x item matrix. A user's scores are X_u B:
/// the sum of the B rows of the items they interacted with, so a user with new interactions
/// is scored from their new row without refitting (fold-in is free).
public final class EASEModel: Ranker, @unchecked Sendable {
    public let kind = "ease"
    /// B, items x items, row-major: row j is what interacting with item j adds to every item's score.
    public let weights: Matrix
    /// X: each user's items (values ignored; the model is binary).
    public let userRows: CSR
    public let lambda: Float

    public init(weights: Matrix, userRows: CSR, lambda: Float) {
        precondition(weights.rows == weights.cols && userRows.cols == weights.rows, "EASE weights must be items x items")
        self.weights = weights
        self.userRows = userRows
        self.lambda = lambda
    }

    public var userCount: Int { userRows.rows }
    public var itemCount: Int { weights.rows }

    /// The same weights scoring other users (e.g. users rebuilt from new events).
    public func scoring(users rows: CSR) -> EASEModel { EASEModel(weights: weights, userRows: rows, lambda: lambda) }

    public func score(users: Range<Int>, items: Range<Int>, into scores: UnsafeMutablePointer<Float>, ld: Int) {
        guard !items.isEmpty else { return }
        let n = items.count
        userRows.indices.withUnsafeBufferPointer { idx in
            for (r, u) in users.enumerated() {
                let out = scores + r * ld
                out.initialize(repeating: 0, count: n)
                for p in userRows.indptr[u]..<userRows.indptr[u + 1] {
                    BLAS.axpy(n, 1, weights.row(Int(idx[p])) + items.lowerBound, out)
                }
            }
        }
    }

    /// Items most like `item`: the largest entries of its row of B (what a user who interacted
    /// with `item` alone would be shown).
    public func similarItems(to item: Int, count: Int) -> [(item: Int, score: Float)] {
        let row = weights.row(item)
        var out: [(item: Int, score: Float)] = []
        out.reserveCapacity(itemCount)
        for j in 0..<itemCount where j != item { out.append((j, row[j])) }
        out.sort { $0.score != $1.score ? $0.score > $1.score : $0.item < $1.item }
        return Array(out.prefix(count))
    }

    /// Fits B on `x` (entries > 0 count as 1). Throws `EASEError.tooLarge` before allocating
    /// anything when items^2 x 4 bytes exceeds `config.maxBytes`.
    public static func fit(_ x: CSR, config: EASEConfig, progress: (String) -> Void = { _ in }) throws -> EASEModel {
        let n = x.cols
        let bytes = EASEConfig.bytes(items: n)
        guard bytes <= config.maxBytes else { throw EASEError.tooLarge(items: n, bytes: bytes, bound: config.maxBytes) }
        let binary = x.filteredBinary()
        let t0 = Date()
        let g = Matrix(rows: n, cols: n)
        let dense = useDenseGram(binary, config.gram)
        if dense { denseGram(binary, into: g) } else { sparseGram(binary, into: g, threads: config.threads) }
        for i in 0..<n { g[i, i] += config.lambda }
        let tGram = Date().timeIntervalSince(t0)
        progress(String(format: "ease: Gram X'X of %d items (%@) %.2fs", n, dense ? "dense ssyrk" : "sparse pairs", tGram))
        let info = BLAS.invertSPD(n: n, a: g.storage)
        guard info == 0 else { throw EASEError.notPositiveDefinite(info: info, lambda: config.lambda) }
        let tInv = Date().timeIntervalSince(t0) - tGram
        progress(String(format: "ease: inverse (spotrf + spotri) %.2fs", tInv))
        // g's upper triangle holds P. B_ij = -P_ij / P_jj off the diagonal, 0 on it.
        var diag = [Float](repeating: 0, count: n)
        for i in 0..<n { diag[i] = g[i, i] }
        let p = g.storage
        Parallel.forEachChunk(count: n, chunk: 64, threads: config.threads) { rows, _ in
            for i in rows { for j in 0..<i { p[i * n + j] = p[j * n + i] } }  // lower from upper (reads rows < i's upper part only)
        }
        Parallel.forEachChunk(count: n, chunk: 64, threads: config.threads) { rows, _ in
            diag.withUnsafeBufferPointer { d in
                for i in rows {
                    let row = p + i * n
                    for j in 0..<n { row[j] = -row[j] / d[j] }
                    row[i] = 0
                }
            }
        }
        progress(String(format: "ease: B of %d x %d in %.2fs", n, n, Date().timeIntervalSince(t0)))
        return EASEModel(weights: g, userRows: binary, lambda: config.lambda)
    }

    /// Dense blocks cost users x items^2 multiply-adds at BLAS speed; pairs cost sum(nnz_u^2)/2
    /// scattered adds, roughly 40 times slower each.
    static func useDenseGram(_ x: CSR, _ choice: EASEConfig.Gram) -> Bool {
        switch choice {
        case .dense: return true
        case .sparse: return false
        case .auto:
            var pairs = 0.0
            for u in 0..<x.rows { let c = Double(x.indptr[u + 1] - x.indptr[u]); pairs += c * c }
            return Double(x.rows) * Double(x.cols) * Double(x.cols) <= 40 * pairs
        }
    }

    /// X'X (upper triangle) through `ssyrk` over dense blocks of user rows.
    static func denseGram(_ x: CSR, into g: Matrix) {
        let n = x.cols, block = 256
        let buf = Matrix(rows: block, cols: n)
        var start = 0
        while start < x.rows {
            let rows = min(block, x.rows - start)
            buf.storage.initialize(repeating: 0, count: block * n)
            for r in 0..<rows {
                let u = start + r
                for p in x.indptr[u]..<x.indptr[u + 1] { buf[r, Int(x.indices[p])] = 1 }
            }
            BLAS.syrkTransposed(n: n, k: rows, a: buf.storage, lda: n, beta: 1, c: g.storage, ldc: n)
            start += rows
        }
    }

    /// X'X (upper triangle) from the pairs of each user's items: row a of the Gram matrix gets,
    /// for every user of item a, one count for each of their items b >= a. Item rows are split
    /// across threads, so no two threads write one row.
    static func sparseGram(_ x: CSR, into g: Matrix, threads: Int) {
        let n = x.cols
        let xt = x.transposed()
        let p = g.storage
        Parallel.forEachChunk(count: n, chunk: 32, threads: threads) { items, _ in
            x.indices.withUnsafeBufferPointer { idx in
                for a in items {
                    let row = p + a * n
                    for q in xt.indptr[a]..<xt.indptr[a + 1] {
                        let u = Int(xt.indices[q])
                        // The user's items are sorted: start at a.
                        var s = x.indptr[u], e = x.indptr[u + 1]
                        while s < e { let m = (s + e) / 2; if Int(idx[m]) < a { s = m + 1 } else { e = m } }
                        for k in s..<x.indptr[u + 1] { row[Int(idx[k])] += 1 }
                    }
                }
            }
        }
    }
}

extension CSR {
    /// The positive entries with their values.
    public func positivePart() -> CSR {
        var indptr = [Int](repeating: 0, count: rows + 1)
        var idx: [Int32] = [], vals: [Float] = []
        for r in 0..<rows {
            for p in self.indptr[r]..<self.indptr[r + 1] where values[p] > 0 { idx.append(indices[p]); vals.append(values[p]) }
            indptr[r + 1] = idx.count
        }
        return CSR(rows: rows, cols: cols, indptr: indptr, indices: idx, values: vals)
    }

    /// The pattern of the positive entries, each with value 1.
    public func filteredBinary() -> CSR {
        var indptr = [Int](repeating: 0, count: rows + 1)
        var idx: [Int32] = []
        idx.reserveCapacity(nnz)
        for r in 0..<rows {
            for p in self.indptr[r]..<self.indptr[r + 1] where values[p] > 0 { idx.append(indices[p]) }
            indptr[r + 1] = idx.count
        }
        return CSR(rows: rows, cols: cols, indptr: indptr, indices: idx, values: [Float](repeating: 1, count: idx.count))
    }
}
