import Foundation
import LinearAlgebra

// The update after a batch's backward pass: the embedding gradients scattered into the rows the
// batch touched, and AdamW on those rows and on every dense parameter.

/// Which rows of each embedding table a batch touched, written concurrently by workers that
/// own disjoint rows.
final class TouchedRows {
    private let flags: [UnsafeMutablePointer<Bool>]
    /// [worker * tables + table]: the rows that worker marked, and how many.
    private let lists: [UnsafeMutablePointer<Int32>]
    private let counts: UnsafeMutablePointer<Int>
    private let tables: Int, workers: Int

    /// `sizes`: the row count of each table, in `EmbeddingTable` order.
    init(tables sizes: [Int], workers: Int) {
        tables = sizes.count
        self.workers = max(1, workers)
        flags = sizes.map { n in
            let f = UnsafeMutablePointer<Bool>.allocate(capacity: max(1, n))
            f.initialize(repeating: false, count: max(1, n))
            return f
        }
        lists = (0..<self.workers).flatMap { _ in sizes.map { UnsafeMutablePointer<Int32>.allocate(capacity: max(1, $0)) } }
        counts = .allocate(capacity: self.workers * tables)
        counts.initialize(repeating: 0, count: self.workers * tables)
    }

    deinit {
        flags.forEach { $0.deallocate() }
        lists.forEach { $0.deallocate() }
        counts.deallocate()
    }

    @inline(__always) func mark(table t: EmbeddingTable, row: Int, worker: Int) {
        let table = t.rawValue
        if flags[table][row] { return }
        flags[table][row] = true
        let k = worker * tables + table
        lists[k][counts[k]] = Int32(row)
        counts[k] += 1
    }

    /// The rows worker `worker` marked in `table`.
    func rows(table t: EmbeddingTable, worker: Int) -> UnsafeBufferPointer<Int32> {
        let k = worker * tables + t.rawValue
        return UnsafeBufferPointer(start: lists[k], count: counts[k])
    }

    /// Forgets the rows worker `worker` marked in `table`.
    func clear(table t: EmbeddingTable, worker: Int) {
        let table = t.rawValue
        let k = worker * tables + table
        for i in 0..<counts[k] { flags[table][Int(lists[k][i])] = false }
        counts[k] = 0
    }
}

extension TwoTowerTrainer {
    /// The embedding gradients of the batch: rows of each table are split between the workers
    /// by index, so no two workers touch the same row, and each row sums its contributions in
    /// batch order whatever the thread count. With `adam`, each worker then steps the rows it
    /// summed (still in its cache), and the first also the dense parameters.
    func scatter(b: Int, cols: Int, s: Scratch, adam: VectorOps.AdamStep?) {
        let parts = threads
        let hg = config.historyGradient
        Parallel.forEachChunk(count: parts, chunk: 1, threads: parts) { range, _ in
            let w = range.lowerBound
            @inline(__always) func mine(_ row: Int32) -> Bool { Int(row) % parts == w }
            // A row's gradient, parameter and moments are requested a few rows ahead: the
            // step below reads them again while they are still in this core's cache.
            let d = config.dim
            @inline(__always) func prefetch(_ t: EmbeddingTable, _ row: Int32) {
                guard adam != nil, mine(row) else { return }
                let o = Int(row) * d
                VectorOps.prefetch(grads.embedding(t).storage + o, d); VectorOps.prefetch(params.embedding(t).storage + o, d)
                VectorOps.prefetch(m.embedding(t).storage + o, d); VectorOps.prefetch(v.embedding(t).storage + o, d)
            }
            for r in 0..<b {
                if r + 6 < b { prefetch(.user, s.users[r + 6]) }
                if mine(s.users[r]) { addRow(.user, w, Int(s.users[r]), s.dxu.row(r), 1) }
            }
            for r in 0..<b where hg {
                let n = Int(s.histLen[r])
                let h = s.history(r)
                for k in 0..<n where mine(h[k]) { addRow(.item, w, Int(h[k]), s.dxu.row(r), 1 / Float(n)) }
            }
            for c in 0..<cols {
                if c + 6 < cols { prefetch(.item, s.colItems[c + 6]) }
                if mine(s.colItems[c]) { addRow(.item, w, Int(s.colItems[c]), s.dxi.row(c), 1) }
            }
            // Feature rows: through the history (when trained through) and the columns.
            @inline(__always) func features(_ item: Int32, _ g: UnsafePointer<Float>, _ weight: Float) {
                let f = itemFeatures.list(Int(item))
                if f.isEmpty { return }
                let wf = weight / Float(f.count)
                for bkt in f where mine(bkt) { addRow(.feature, w, Int(bkt), g, wf) }
            }
            if itemFeatures.total > 0 {
                for r in 0..<b where hg {
                    let n = Int(s.histLen[r])
                    let h = s.history(r)
                    for k in 0..<n { features(h[k], s.dxu.row(r), 1 / Float(n)) }
                }
                for c in 0..<cols { features(s.colItems[c], s.dxi.row(c), 1) }
            }
            guard let step = adam else { return }
            for t in EmbeddingTable.allCases {
                let rows = touched.rows(table: t, worker: w)
                if rows.count > 0 {
                    let p = params.embedding(t)
                    VectorOps.adamRows(p.storage, grads.embedding(t).storage, m.embedding(t).storage, v.embedding(t).storage,
                                       d: p.cols, rows: rows.baseAddress!, count: rows.count, step)
                }
                touched.clear(table: t, worker: w)
            }
            if w == 0 {
                Self.adam(params.userTower, grads.userTower, m.userTower, v.userTower, step)
                Self.adam(params.itemTower, grads.itemTower, m.itemTower, v.itemTower, step)
            }
        }
    }

    /// The gradient row of `table` += w * g, the row marked touched (by worker `worker`, who owns it).
    @inline(__always)
    func addRow(_ table: EmbeddingTable, _ worker: Int, _ row: Int, _ g: UnsafePointer<Float>, _ w: Float) {
        touched.mark(table: table, row: row, worker: worker)
        VectorOps.axpy(config.dim, w, g, grads.embedding(table).row(row))
    }

    /// AdamW on one tower's dense parameters (w1, b1, w2, b2), gradients reset.
    @inline(__always)
    static func adam(_ p: TowerBuffers, _ g: TowerBuffers, _ m: TowerBuffers, _ v: TowerBuffers, _ step: VectorOps.AdamStep) {
        VectorOps.adam(p.w1.storage, g.w1.storage, m.w1.storage, v.w1.storage, p.w1.count, step)
        VectorOps.adam(p.b1.storage, g.b1.storage, m.b1.storage, v.b1.storage, p.b1.count, step)
        VectorOps.adam(p.w2.storage, g.w2.storage, m.w2.storage, v.w2.storage, p.w2.count, step)
        VectorOps.adam(p.b2.storage, g.b2.storage, m.b2.storage, v.b2.storage, p.b2.count, step)
    }

    /// The constants of the next AdamW step (the step count advanced).
    func nextAdamStep() -> VectorOps.AdamStep {
        step += 1
        let b1: Float = 0.9, b2: Float = 0.999
        return VectorOps.AdamStep(lr: config.learningRate, wd: config.weightDecay, b1: b1, b2: b2,
                                  c1: 1 - Float(Foundation.pow(Double(b1), Double(step))),
                                  c2: 1 - Float(Foundation.pow(Double(b2), Double(step))))
    }
}
