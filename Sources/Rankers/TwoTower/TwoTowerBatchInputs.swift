import Foundation
import LinearAlgebra
import Interactions

// Per-batch data preparation: a batch's examples read from the shuffled training pairs, each
// user's history sampled from its items, and the towers' inputs summed from the embedding tables.

extension TwoTowerTrainer {
    /// Where a training batch comes from: its examples (indices into the training pairs), and
    /// the seed and position its histories are drawn with.
    struct BatchSource {
        let pairUser: UnsafePointer<Int32>
        let pairItem: UnsafePointer<Int32>
        /// The batch's examples, in order.
        let examples: UnsafePointer<Int32>
        let seed: UInt64
        /// The first example's position in the epoch (each row draws from stream position + row).
        let position: Int
    }

    /// Writes the batch's tower inputs into `s.u0` (`b` user rows) and `s.i0` (`cols` item rows).
    /// With `source`, rows 0..<b and their positives are read from it first and each row's
    /// history is drawn here, in parallel, from a generator of its own (the same draws on any
    /// thread count); otherwise `s` holds them. The extra negatives' columns are in `s` already.
    func gatherInputs(b: Int, cols: Int, s: Scratch, source: BatchSource?) {
        let d = config.dim
        let parts = threads
        let users = s.users, colItems = s.colItems
        let limit = min(config.history, s.maxHistory)
        let userTable = model.userEmb.storage, itemTable = model.itemEmb.storage
        // Inputs, row q and column q together: x_u = E_user[u] + mean of the history items'
        // inputs; x_i = E_item[i] + features. Per chunk: the examples, then the histories, then
        // the sums, each pass requesting its scattered reads a few rows ahead.
        Parallel.forEachChunk(count: cols, chunk: max(64, cols / (4 * parts) + 1), threads: parts) { range, _ in
            let userEnd = min(range.upperBound, b)
            if let src = source, range.lowerBound < userEnd {
                for q in range.lowerBound..<userEnd {
                    if q + 8 < userEnd {
                        let e = Int(src.examples[q + 8])
                        VectorOps.prefetch(src.pairUser + e); VectorOps.prefetch(src.pairItem + e)
                    }
                    let e = Int(src.examples[q])
                    users[q] = src.pairUser[e]
                    colItems[q] = src.pairItem[e]
                }
                let tmp = UnsafeMutablePointer<Int32>.allocate(capacity: max(userItems.maxLength, limit) + 1)
                defer { tmp.deallocate() }
                for q in range.lowerBound..<userEnd {
                    if q + 12 < userEnd { userItems.prefetchStart(Int(users[q + 12])) }
                    if q + 4 < userEnd {
                        userItems.prefetch(Int(users[q + 4]))
                        VectorOps.prefetch(userTable + Int(users[q + 4]) * d, d)
                    }
                    var g = SeededGenerator(seed: src.seed, stream: UInt64(src.position + q))
                    s.histLen[q] = Int32(Self.sampleHistory(userItems.list(Int(users[q])), excluding: colItems[q], limit: limit,
                                                            into: s.history(q), tmp: tmp, using: &g))
                }
            }
            for q in range {
                if q + 2 < range.upperBound { VectorOps.prefetch(itemTable + Int(colItems[q + 2]) * d, d) }
                if q < b {
                    if q + 1 < userEnd {
                        let h = s.history(q + 1)
                        for k in 0..<min(4, Int(s.histLen[q + 1])) { VectorOps.prefetch(itemTable + Int(h[k]) * d, d) }
                        if source == nil { VectorOps.prefetch(userTable + Int(users[q + 1]) * d, d) }
                    }
                    let x = s.u0.row(q)
                    x.update(from: userTable + Int(users[q]) * d, count: d)
                    let n = Int(s.histLen[q])
                    if n > 0 { addItemInputs(s.history(q), n, weight: 1 / Float(n), into: x) }
                }
                let x = s.i0.row(q)
                x.update(from: itemTable + Int(colItems[q]) * d, count: d)
                addItemFeatures(colItems + q, 1, weight: 1, into: x)
            }
        }
    }

    /// A uniform draw from 0..<n: the high word of a 64 x 64-bit product (no division; the bias
    /// is below n / 2^64).
    @inline(__always)
    static func below(_ n: Int, _ g: inout SeededGenerator) -> Int {
        Int(truncatingIfNeeded: g.next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// Up to `limit` of `items` (distinct) other than `exclude`, written to `out`: all of them
    /// when few, else a uniform sample: a partial Fisher-Yates on a copy in `tmp` for short
    /// lists, rejection of repeated positions for long ones (no copy of a heavy user's list).
    /// `tmp` holds at least max(items.count, limit) values. Returns the count.
    @inline(__always)
    static func sampleHistory(_ items: UnsafeBufferPointer<Int32>, excluding exclude: Int32, limit: Int,
                              into out: UnsafeMutablePointer<Int32>, tmp: UnsafeMutablePointer<Int32>,
                              using g: inout SeededGenerator) -> Int {
        let total = items.count
        if total <= 4 * limit {
            var n = 0
            for i in items where i != exclude { tmp[n] = i; n += 1 }
            if n <= limit {
                out.update(from: tmp, count: n)
                return n
            }
            for k in 0..<limit {
                let j = k + Self.below(n - k, &g)
                let t = tmp[j]; tmp[j] = tmp[k]; tmp[k] = t
                out[k] = t
            }
            return limit
        }
        // Long list: draw positions until `limit` distinct ones that are not the excluded item.
        var n = 0
        while n < limit {
            let j = Int32(truncatingIfNeeded: Self.below(total, &g))
            if items[Int(j)] == exclude { continue }
            var repeated = false
            for k in 0..<n where tmp[k] == j { repeated = true; break }
            if repeated { continue }
            tmp[n] = j
            out[n] = items[Int(j)]
            n += 1
        }
        return limit
    }

    /// x += weight * sum over `items[0..<n]` of (E_item[j] + mean of j's feature embeddings).
    @inline(__always)
    func addItemInputs(_ items: UnsafePointer<Int32>, _ n: Int, weight: Float, into x: UnsafeMutablePointer<Float>) {
        VectorOps.sumRows(config.dim, weight, table: model.itemEmb.storage, rows: items, count: n, into: x)
        addItemFeatures(items, n, weight: weight, into: x)
    }

    /// x += weight * sum over `items[0..<n]` of the mean of j's feature embeddings.
    @inline(__always)
    func addItemFeatures(_ items: UnsafePointer<Int32>, _ n: Int, weight: Float, into x: UnsafeMutablePointer<Float>) {
        if itemFeatures.total == 0 { return }
        let d = config.dim
        for k in 0..<n {
            let f = itemFeatures.list(Int(items[k]))
            if !f.isEmpty {
                let wf = weight / Float(f.count)
                for bkt in f { VectorOps.axpy(d, wf, model.featEmb.row(Int(bkt)), x) }
            }
        }
    }
}
