import Foundation
import LinearAlgebra
import Interactions

/// What the two-tower model trains on: positives over dense user/item indices, each user's
/// items (oldest first when times are known) and the items' content-feature buckets.
public struct TwoTowerData: Sendable {
    public var users: Int
    public var items: Int
    /// Training pairs.
    public var pairUser: [Int32]
    public var pairItem: [Int32]
    /// Per user, the items it may draw history from (oldest first).
    public var userItems: [[Int32]]
    /// Per item, its feature buckets.
    public var itemFeatures: [[Int32]]

    public init(users: Int, items: Int, pairUser: [Int32], pairItem: [Int32], userItems: [[Int32]], itemFeatures: [[Int32]]) {
        self.users = users
        self.items = items
        self.pairUser = pairUser
        self.pairItem = pairItem
        self.userItems = userItems
        self.itemFeatures = itemFeatures
    }

    /// From interactions (duplicate pairs kept once; the newest time orders a user's items).
    public init(_ d: Interactions, features: ItemFeatures?) {
        users = d.users.count
        items = d.items.count
        var perUser = [[(item: Int32, time: Int64)]](repeating: [], count: users)
        var seen = Set<Int64>()
        for r in 0..<d.count {
            let u = d.userIndex[r], i = d.itemIndex[r]
            guard d.weights[r] > 0, seen.insert(Int64(u) << 32 | Int64(i)).inserted else { continue }
            perUser[Int(u)].append((i, d.timestamps?[r] ?? Int64(r)))
        }
        userItems = perUser.map { $0.sorted { $0.time != $1.time ? $0.time < $1.time : $0.item < $1.item }.map(\.item) }
        pairUser = []
        pairItem = []
        for (u, list) in userItems.enumerated() {
            for i in list { pairUser.append(Int32(u)); pairItem.append(i) }
        }
        itemFeatures = features?.lists(for: d.items.raw) ?? [[Int32]](repeating: [], count: items)
    }

    public var count: Int { pairUser.count }
}

/// Lists of Int32 in one allocation, read without per-list reference counting in hot loops.
final class FlatLists {
    private let start: UnsafeMutablePointer<Int>
    private let values: UnsafeMutablePointer<Int32>
    let count: Int
    let total: Int
    let maxLength: Int

    init(_ lists: [[Int32]]) {
        count = lists.count
        total = lists.reduce(0) { $0 + $1.count }
        maxLength = lists.map(\.count).max() ?? 0
        start = .allocate(capacity: count + 1)
        values = .allocate(capacity: max(1, total))
        var p = 0
        for (i, l) in lists.enumerated() {
            start[i] = p
            for v in l { values[p] = v; p += 1 }
        }
        start[count] = p
    }

    deinit { start.deallocate(); values.deallocate() }

    @inline(__always) func list(_ i: Int) -> UnsafeBufferPointer<Int32> {
        UnsafeBufferPointer(start: values + start[i], count: start[i + 1] - start[i])
    }
}

/// Which rows of each embedding table a batch touched, written concurrently by workers that
/// own disjoint rows.
final class TouchedRows {
    private let flags: [UnsafeMutablePointer<Bool>]
    /// [worker * tables + table]: the rows that worker marked, and how many.
    private let lists: [UnsafeMutablePointer<Int32>]
    private let counts: UnsafeMutablePointer<Int>
    private let tables: Int, workers: Int

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

    @inline(__always) func mark(table: Int, row: Int, worker: Int) {
        if flags[table][row] { return }
        flags[table][row] = true
        let k = worker * tables + table
        lists[k][counts[k]] = Int32(row)
        counts[k] += 1
    }

    func rows(table: Int) -> [Int32] {
        var out: [Int32] = []
        for w in 0..<workers {
            let k = w * tables + table
            out.append(contentsOf: UnsafeBufferPointer(start: lists[k], count: counts[k]))
        }
        return out
    }

    func clear(table: Int) {
        for w in 0..<workers {
            let k = w * tables + table
            for i in 0..<counts[k] { flags[table][Int(lists[k][i])] = false }
            counts[k] = 0
        }
    }
}

/// One epoch's figures.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var loss: Double
    public var validationNDCG: Double?
    public var examplesPerSecond: Double
    public var elapsed: Double
    public var eta: Double
    public var best: Bool
    /// An epoch of the refit on all training interactions (after early stopping chose the count).
    public var refit = false

    public var line: String {
        let v = validationNDCG.map { String(format: "val NDCG@10 %.4f%@", $0, best ? " *" : "") } ?? "val -"
        return String(format: "%@epoch %d/%d  loss %.4f  %@  %.0f ex/s  elapsed %.1fs  ETA %.1fs", refit ? "refit " : "", epoch, epochs,
                      loss, v, examplesPerSecond, elapsed, eta)
    }
}

/// Trains a `TwoTowerModel` with in-batch sampled softmax (log-Q corrected), optional uniform
/// negatives, AdamW, mini-batches through `cblas_sgemm`.
public final class TwoTowerTrainer {
    public let model: TwoTowerModel
    let config: TwoTowerConfig
    let data: TwoTowerData
    /// log(expected in-batch count) per item.
    let logQ: [Float]
    /// `data.userItems` and `data.itemFeatures`, flat.
    let userItems: FlatLists
    let itemFeatures: FlatLists

    // Adam state per parameter, and gradients.
    let params: [Matrix]
    let grads: [Matrix]
    let m: [Matrix], v: [Matrix]
    /// Rows of the embedding tables the batch touched: a flag per row, and per worker and table
    /// the list of rows it marked (each row is owned by one worker, so workers never write the
    /// same flag or list).
    let touched: TouchedRows
    var step = 0
    /// Indices of the embedding tables among `params` (updated lazily, row by row).
    static let embeddingCount = 3

    public init(data: TwoTowerData, config: TwoTowerConfig) {
        self.data = data
        self.config = config
        let model = TwoTowerModel(config: config, users: data.users, items: data.items)
        self.model = model
        userItems = FlatLists(data.userItems)
        itemFeatures = FlatLists(data.itemFeatures)
        let ps = model.parameters
        params = ps
        grads = ps.map { Matrix(rows: $0.rows, cols: $0.cols) }
        m = ps.map { Matrix(rows: $0.rows, cols: $0.cols) }
        v = ps.map { Matrix(rows: $0.rows, cols: $0.cols) }
        touched = TouchedRows(tables: ps.prefix(Self.embeddingCount).map(\.rows),
                              workers: config.threads > 0 ? config.threads : BLASRuntime.availableCores)
        var counts = [Double](repeating: 0, count: data.items)
        for i in data.pairItem { counts[Int(i)] += 1 }
        let total = max(1, Double(data.count))
        logQ = counts.map { Float(Foundation.log(max($0, 0.5) / total * Double(config.batch))) }
    }

    // MARK: One batch

    /// Scratch for a batch of up to `rows` users and `cols` item rows, histories of up to
    /// `history` items.
    final class Scratch {
        let u0, hu, un, du, dhu, dxu: Matrix
        let i0, hi, inn, di, dhi, dxi: Matrix
        /// Per worker: a block of logit rows, and (after the first) its part of dIn.
        let blockRows = 128
        let blocks: [Matrix]
        let diParts: [Matrix]
        let maxHistory: Int
        /// The batch: users (rows), item columns (positives, then negatives), each row's history.
        let users: UnsafeMutablePointer<Int32>
        let colItems: UnsafeMutablePointer<Int32>
        let hist: UnsafeMutablePointer<Int32>
        let histLen: UnsafeMutablePointer<Int32>
        let bias: UnsafeMutablePointer<Float>
        init(rows: Int, cols: Int, d: Int, hidden: Int, history: Int) {
            u0 = Matrix(rows: rows, cols: d); hu = Matrix(rows: rows, cols: hidden); un = Matrix(rows: rows, cols: d)
            du = Matrix(rows: rows, cols: d); dhu = Matrix(rows: rows, cols: hidden); dxu = Matrix(rows: rows, cols: d)
            i0 = Matrix(rows: cols, cols: d); hi = Matrix(rows: cols, cols: hidden); inn = Matrix(rows: cols, cols: d)
            di = Matrix(rows: cols, cols: d); dhi = Matrix(rows: cols, cols: hidden); dxi = Matrix(rows: cols, cols: d)
            let workers = max(1, BLASRuntime.availableCores)
            blocks = (0..<workers).map { _ in Matrix(rows: min(rows, 128), cols: cols) }
            diParts = (1..<max(2, workers)).map { _ in Matrix(rows: cols, cols: d) }
            maxHistory = max(1, history)
            users = .allocate(capacity: rows)
            colItems = .allocate(capacity: cols)
            hist = .allocate(capacity: rows * maxHistory)
            histLen = .allocate(capacity: rows)
            histLen.initialize(repeating: 0, count: rows)
            bias = .allocate(capacity: cols)
        }
        deinit {
            users.deallocate(); colItems.deallocate(); hist.deallocate(); histLen.deallocate(); bias.deallocate()
        }
        func history(_ r: Int) -> UnsafeMutablePointer<Int32> { hist + r * maxHistory }
    }

    /// Loss of one batch with explicit histories (tests) and, when `backward`, its gradients
    /// accumulated into `grads`.
    func batchLoss(users: [Int32], items: [Int32], histories: [[Int32]], negatives: [Int32], s: Scratch,
                   backward: Bool) -> Double {
        let b = users.count
        for r in 0..<b {
            precondition(histories[r].count <= s.maxHistory, "history longer than the scratch holds")
            s.users[r] = users[r]
            s.histLen[r] = Int32(histories[r].count)
            histories[r].withUnsafeBufferPointer { if $0.count > 0 { s.history(r).update(from: $0.baseAddress!, count: $0.count) } }
        }
        for (c, i) in (items + negatives).enumerated() { s.colItems[c] = i }
        return batchLoss(b: b, cols: b + negatives.count, s: s, sample: nil, backward: backward)
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
                let j = k + Int(g.next() % UInt64(n - k))
                let t = tmp[j]; tmp[j] = tmp[k]; tmp[k] = t
                out[k] = t
            }
            return limit
        }
        // Long list: draw positions until `limit` distinct ones that are not the excluded item.
        var n = 0
        while n < limit {
            let j = Int32(truncatingIfNeeded: g.next() % UInt64(total))
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

    /// The batch in `s` (`b` user rows, `cols` item columns: the positives then the extra
    /// negatives). With `sample` (seed, first example's position), each row's history is drawn
    /// here, in parallel, from a generator of its own (the same draws on any thread count);
    /// otherwise it is read from `s.hist`.
    func batchLoss(b: Int, cols: Int, s: Scratch, sample: (seed: UInt64, position: Int)?, backward: Bool) -> Double {
        let d = config.dim, invT = 1 / config.temperature
        let parts = threads
        let users = s.users, colItems = s.colItems
        let limit = min(config.history, s.maxHistory)
        // Inputs: x_u = E_user[u] + mean of the history items' inputs; x_i = E_item[i] + features.
        Parallel.forEachChunk(count: b + cols, chunk: max(64, (b + cols) / (4 * parts) + 1), threads: parts) { range, _ in
            let tmp = UnsafeMutablePointer<Int32>.allocate(capacity: max(userItems.maxLength, limit) + 1)
            defer { tmp.deallocate() }
            for q in range {
                // The next rows' embeddings (scattered over their tables) are requested ahead.
                let next = q + 2
                if next < range.upperBound {
                    if next < b { VectorOps.prefetch(model.userEmb.row(Int(users[next])), d) }
                    else { VectorOps.prefetch(model.itemEmb.row(Int(colItems[next - b])), d) }
                }
                if q < b {
                    let x = s.u0.row(q)
                    x.update(from: model.userEmb.row(Int(users[q])), count: d)
                    if let (seed, position) = sample {
                        var g = SeededGenerator(seed: seed, stream: UInt64(position + q))
                        s.histLen[q] = Int32(Self.sampleHistory(userItems.list(Int(users[q])), excluding: colItems[q], limit: limit,
                                                                into: s.history(q), tmp: tmp, using: &g))
                    }
                    let n = Int(s.histLen[q])
                    if n > 0 { addItemInputs(s.history(q), n, weight: 1 / Float(n), into: x) }
                } else {
                    let x = s.i0.row(q - b)
                    x.update(repeating: 0, count: d)
                    addItemInputs(colItems + (q - b), 1, weight: 1, into: x)
                }
            }
        }
        // Towers.
        // Towers: with two or more threads each tower runs whole on one (bigger GEMMs, one
        // synchronisation instead of one per product).
        var nu: [Float] = [], ni: [Float] = []
        let split = parts >= 2
        Parallel.forEachChunk(count: 2, chunk: 1, threads: split ? 2 : 1) { range, _ in
            let th = split ? 1 : parts
            if range.lowerBound == 0 {
                nu = TwoTowerModel.forward(model.user, x: s.u0, n: b, h: s.hu, out: s.un, d: d, hidden: config.hidden, threads: th)
            } else {
                ni = TwoTowerModel.forward(model.item, x: s.i0, n: cols, h: s.hi, out: s.inn, d: d, hidden: config.hidden, threads: th)
            }
        }
        let uniformLogQ = Float(Foundation.log(Double(max(1, cols - b)) / Double(max(1, data.items))))
        for c in 0..<cols { s.bias[c] = !config.logQ ? 0 : c < b ? logQ[Int(colItems[c])] : uniformLogQ }
        let masks = duplicateMasks(b: b, cols: cols, colItems: colItems)
        // Logits Un In^T / T, corrected by log expected count, same item as the positive masked,
        // softmax, and the products back (dUn = G In, dIn = G^T Un), one block of rows at a time
        // so each block of G stays in cache. Blocks go to workers round-robin and the workers'
        // dIn parts are summed in order: the same result on every run.
        let workers = min(parts, s.blocks.count), rowsPerBlock = s.blockRows
        let blockCount = (b + rowsPerBlock - 1) / rowsPerBlock
        var partial = [Double](repeating: 0, count: workers)
        let scale = invT / Float(b)
        partial.withUnsafeMutableBufferPointer { partialBuf in
            Parallel.forEachChunk(count: workers, chunk: 1, threads: workers) { range, _ in
                let w = range.lowerBound
                let block = s.blocks[w], dInPart = w == 0 ? s.di : s.diParts[w - 1]
                var acc = 0.0, first = true
                for blk in stride(from: w, to: blockCount, by: workers) {
                    let r0 = blk * rowsPerBlock, m = min(rowsPerBlock, b - r0)
                    BLAS.gemm(m: m, n: cols, k: d, alpha: invT, a: s.un.row(r0), lda: d, b: s.inn.storage, ldb: d, transB: true,
                              c: block.storage, ldc: cols)
                    for i in 0..<m {
                        let r = r0 + i, row = block.row(i)
                        let mx = VectorOps.subtractMax(row, s.bias, cols)
                        for k in masks.start[r]..<masks.start[r + 1] { row[Int(masks.cols[k])] = -.infinity }
                        let positive = row[r]
                        let sum = VectorOps.expShifted(row, cols, shift: mx)
                        acc += Double(mx) + Foundation.log(Double(sum)) - Double(positive)
                        if backward {
                            // dLoss/dlogit = (softmax - onehot) / b, times 1/T for the dot products.
                            VectorOps.scale(row, cols, scale / sum)
                            row[r] -= scale
                        }
                    }
                    if backward {
                        BLAS.gemm(m: m, n: d, k: cols, a: block.storage, lda: cols, b: s.inn.storage, ldb: d, transB: false,
                                  c: s.du.row(r0), ldc: d)
                        BLAS.gemm(m: cols, n: d, k: m, a: block.storage, lda: cols, b: s.un.row(r0), ldb: d, transB: false,
                                  beta: first ? 0 : 1, c: dInPart.storage, ldc: d, transA: true)
                    }
                    first = false
                }
                if first && backward { dInPart.storage.update(repeating: 0, count: cols * d) }
                partialBuf[w] = acc
            }
        }
        let loss = partial.reduce(0, +) / Double(b)
        guard backward else { return loss }
        for part in s.diParts.prefix(workers - 1) { VectorOps.axpy(cols * d, 1, part.storage, s.di.storage) }
        Parallel.forEachChunk(count: 2, chunk: 1, threads: split ? 2 : 1) { range, _ in
            let th = split ? 1 : parts
            if range.lowerBound == 0 {
                towerBackward(model.user, grads: 3, x: s.u0, n: b, h: s.hu, out: s.un, norms: nu, dOut: s.du, dH: s.dhu, dX: s.dxu,
                              threads: th)
            } else {
                towerBackward(model.item, grads: 7, x: s.i0, n: cols, h: s.hi, out: s.inn, norms: ni, dOut: s.di, dH: s.dhi, dX: s.dxi,
                              threads: th)
            }
        }
        scatter(b: b, cols: cols, s: s)
        return loss
    }

    /// For each positive row r, the other columns holding the same item (masked: they are not
    /// negatives for r), as a CSR over rows.
    func duplicateMasks(b: Int, cols: Int, colItems: UnsafePointer<Int32>) -> (start: [Int], cols: [Int32]) {
        var byItem = (0..<Int32(cols)).map { (item: colItems[Int($0)], col: $0) }
        byItem.sort { $0.item != $1.item ? $0.item < $1.item : $0.col < $1.col }
        var pairs: [(row: Int32, col: Int32)] = []
        var g = 0
        while g < cols {
            var e = g + 1
            while e < cols && byItem[e].item == byItem[g].item { e += 1 }
            if e - g > 1 {
                for x in g..<e where Int(byItem[x].col) < b {
                    for y in g..<e where y != x { pairs.append((byItem[x].col, byItem[y].col)) }
                }
            }
            g = e
        }
        pairs.sort { $0.row != $1.row ? $0.row < $1.row : $0.col < $1.col }
        var start = [Int](repeating: 0, count: b + 1)
        for p in pairs { start[Int(p.row) + 1] += 1 }
        for r in 0..<b { start[r + 1] += start[r] }
        return (start, pairs.map(\.col))
    }

    /// The embedding gradients of the batch: rows of each table are split between the workers
    /// by index, so no two workers touch the same row, and each row sums its contributions in
    /// batch order whatever the thread count.
    func scatter(b: Int, cols: Int, s: Scratch) {
        let parts = threads
        let hg = config.historyGradient
        Parallel.forEachChunk(count: parts, chunk: 1, threads: parts) { range, _ in
            let w = range.lowerBound
            @inline(__always) func mine(_ row: Int32) -> Bool { Int(row) % parts == w }
            for r in 0..<b where mine(s.users[r]) { addRow(0, w, Int(s.users[r]), s.dxu.row(r), 1) }
            for r in 0..<b where hg {
                let n = Int(s.histLen[r])
                let h = s.history(r)
                for k in 0..<n where mine(h[k]) { addRow(1, w, Int(h[k]), s.dxu.row(r), 1 / Float(n)) }
            }
            for c in 0..<cols where mine(s.colItems[c]) { addRow(1, w, Int(s.colItems[c]), s.dxi.row(c), 1) }
            // Feature rows: through the history (when trained through) and the columns.
            @inline(__always) func features(_ item: Int32, _ g: UnsafePointer<Float>, _ weight: Float) {
                let f = itemFeatures.list(Int(item))
                if f.isEmpty { return }
                let wf = weight / Float(f.count)
                for bkt in f where mine(bkt) { addRow(2, w, Int(bkt), g, wf) }
            }
            if itemFeatures.total > 0 {
                for r in 0..<b where hg {
                    let n = Int(s.histLen[r])
                    let h = s.history(r)
                    for k in 0..<n { features(h[k], s.dxu.row(r), 1 / Float(n)) }
                }
                for c in 0..<cols { features(s.colItems[c], s.dxi.row(c), 1) }
            }
        }
    }

    var threads: Int { config.threads > 0 ? config.threads : BLASRuntime.availableCores }

    /// sgemm split into row blocks of C across the engine's threads (OpenBLAS itself runs
    /// single-threaded during training, so its threads never spin while the rest runs).
    func pgemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               transB: Bool, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, transA: Bool = false, threads: Int? = nil) {
        let parts = m * n * k >= 1 << 20 ? threads ?? self.threads : 1
        Parallel.forEachChunk(count: m, chunk: max(1, (m + parts - 1) / parts), threads: parts) { range, _ in
            let lo = range.lowerBound
            BLAS.gemm(m: range.count, n: n, k: k, alpha: alpha, a: transA ? a + lo : a + lo * lda, lda: lda, b: b, ldb: ldb,
                      transB: transB, beta: beta, c: c + lo * ldc, ldc: ldc, transA: transA)
        }
    }

    /// x += weight * sum over `items[0..<n]` of (E_item[j] + mean of j's feature embeddings).
    @inline(__always)
    func addItemInputs(_ items: UnsafePointer<Int32>, _ n: Int, weight: Float, into x: UnsafeMutablePointer<Float>) {
        let d = config.dim
        VectorOps.sumRows(d, weight, table: model.itemEmb.storage, rows: items, count: n, into: x)
        for k in 0..<n {
            let f = itemFeatures.list(Int(items[k]))
            if !f.isEmpty {
                let wf = weight / Float(f.count)
                for bkt in f { VectorOps.axpy(d, wf, model.featEmb.row(Int(bkt)), x) }
            }
        }
    }

    /// grads[p] row += w * g, the row marked touched (by worker `worker`, who owns it).
    @inline(__always)
    func addRow(_ p: Int, _ worker: Int, _ row: Int, _ g: UnsafePointer<Float>, _ w: Float) {
        touched.mark(table: p, row: row, worker: worker)
        VectorOps.axpy(config.dim, w, g, grads[p].row(row))
    }

    /// Backward through normalisation, the residual MLP and the input; parameter gradients of
    /// the tower at `grads` (w1, b1, w2, b2) accumulated, dL/dx written to `dX`.
    func towerBackward(_ t: TwoTowerModel.Tower, grads g: Int, x: Matrix, n: Int, h: Matrix, out: Matrix, norms: [Float],
                       dOut: Matrix, dH: Matrix, dX: Matrix, threads: Int) {
        let d = config.dim, hidden = config.hidden
        let parts = n >= 256 ? threads : 1
        let chunk = max(1, (n + parts - 1) / parts)
        // Through y / |y|: dy = (dOut - out (out . dOut)) / |y|.
        Parallel.forEachChunk(count: n, chunk: chunk, threads: parts) { range, _ in
            for r in range {
                let o = out.row(r), dr = dOut.row(r)
                let dp = BLAS.dot(d, o, dr)
                let inv = 1 / norms[r]
                for c in 0..<d { dr[c] = (dr[c] - o[c] * dp) * inv }
            }
        }
        // dW2 += h^T dy; db2 += colsum dy; dH = dy W2^T masked by relu.
        pgemm(m: hidden, n: d, k: n, a: h.storage, lda: hidden, b: dOut.storage, ldb: d, transB: false, beta: 1,
                  c: grads[g + 2].storage, ldc: d, transA: true, threads: threads)
        for r in 0..<n { VectorOps.axpy(d, 1, dOut.row(r), grads[g + 3].storage) }
        pgemm(m: n, n: hidden, k: d, a: dOut.storage, lda: d, b: t.w2.storage, ldb: d, transB: true,
                  c: dH.storage, ldc: hidden, threads: threads)
        Parallel.forEachChunk(count: n, chunk: chunk, threads: parts) { range, _ in
            let hs = h.storage, dhs = dH.storage
            for i in (range.lowerBound * hidden)..<(range.upperBound * hidden) where hs[i] <= 0 { dhs[i] = 0 }
        }
        // dW1 += x^T dH; db1 += colsum dH; dX = dH W1^T + dy (residual).
        pgemm(m: d, n: hidden, k: n, a: x.storage, lda: d, b: dH.storage, ldb: hidden, transB: false, beta: 1,
                  c: grads[g].storage, ldc: hidden, transA: true, threads: threads)
        for r in 0..<n { VectorOps.axpy(hidden, 1, dH.row(r), grads[g + 1].storage) }
        dX.storage.update(from: dOut.storage, count: n * d)
        pgemm(m: n, n: d, k: hidden, a: dH.storage, lda: hidden, b: t.w1.storage, ldb: hidden, transB: true, beta: 1,
                  c: dX.storage, ldc: d, threads: threads)
    }

    /// AdamW on the dense parameters and on the touched rows of the embeddings; gradients reset.
    func applyAdam() {
        step += 1
        let lr = config.learningRate, wd = config.weightDecay
        let b1: Float = 0.9, b2: Float = 0.999
        let c1 = 1 - Float(Foundation.pow(Double(b1), Double(step))), c2 = 1 - Float(Foundation.pow(Double(b2), Double(step)))
        for p in 0..<params.count {
            let ps = params[p].storage, gs = grads[p].storage, ms = m[p].storage, vs = v[p].storage
            if p < Self.embeddingCount {
                let d = params[p].cols
                let rows = touched.rows(table: p)
                Parallel.forEachChunk(count: rows.count, chunk: max(256, rows.count / (4 * threads) + 1), threads: threads) { range, _ in
                    // Rows are scattered over the tables: their four lines each (parameter,
                    // gradient, two moments) are requested a few rows ahead.
                    let ahead = 4
                    for k in range {
                        if k + ahead < range.upperBound {
                            let next = Int(rows[k + ahead]) * d
                            VectorOps.prefetchForWrite(ps + next, d); VectorOps.prefetchForWrite(gs + next, d)
                            VectorOps.prefetchForWrite(ms + next, d); VectorOps.prefetchForWrite(vs + next, d)
                        }
                        let lo = Int(rows[k]) * d
                        Self.adam(ps + lo, gs + lo, ms + lo, vs + lo, d, lr: lr, wd: wd, b1: b1, b2: b2, c1: c1, c2: c2)
                    }
                }
                touched.clear(table: p)
            } else {
                Self.adam(ps, gs, ms, vs, params[p].count, lr: lr, wd: wd, b1: b1, b2: b2, c1: c1, c2: c2)
            }
        }
    }

    @inline(__always)
    static func adam(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                     _ v: UnsafeMutablePointer<Float>, _ n: Int, lr: Float, wd: Float, b1: Float, b2: Float, c1: Float, c2: Float) {
        typealias V = SIMD16<Float>
        var i = 0
        @inline(__always) func load(_ x: UnsafeMutablePointer<Float>) -> V { UnsafeRawPointer(x + i).loadUnaligned(as: V.self) }
        @inline(__always) func store(_ x: UnsafeMutablePointer<Float>, _ val: V) { UnsafeMutableRawPointer(x + i).storeBytes(of: val, as: V.self) }
        while i + 16 <= n {
            let gv = load(g)
            let mv = b1 * load(m) + (1 - b1) * gv
            let vv = b2 * load(v) + (1 - b2) * gv * gv
            let pv = load(p)
            store(m, mv); store(v, vv)
            store(p, pv - lr * ((mv / c1) / ((vv / c2).squareRoot() + 1e-8) + wd * pv))
            store(g, V(repeating: 0))
            i += 16
        }
        while i < n {
            let gi = g[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            p[i] -= lr * ((m[i] / c1) / ((v[i] / c2).squareRoot() + 1e-8) + wd * p[i])
            g[i] = 0
            i += 1
        }
    }

    // MARK: Training

    public enum Outcome: Equatable, Sendable {
        case completed
        case stoppedEarly(bestEpoch: Int)
        case cancelled(bestEpoch: Int)
    }

    /// Trains for up to `config.epochs`, evaluating `validate` (returns NDCG@10 of the current
    /// model, or nil) after each; keeps the parameters of the best epoch and stops after
    /// `patience` epochs without improvement or on cancellation.
    public func train(cancel: CancellationToken? = nil, validate: ((TwoTowerModel) -> Double?)? = nil,
                      progress: (EpochReport) -> Void = { _ in }) -> Outcome {
        let previousThreads = BLASRuntime.threads
        BLASRuntime.setThreads(1)
        defer { BLASRuntime.setThreads(previousThreads) }
        var g = SeededGenerator(seed: config.seed ^ 0x7777)
        let historySeed = config.seed ^ 0x4157
        let n = data.count
        let bsz = max(2, min(config.batch, n))
        let s = Scratch(rows: bsz, cols: bsz + config.uniformNegatives, d: config.dim, hidden: config.hidden,
                        history: config.history)
        var order = Array(0..<n)
        var best = -Double.infinity, bestEpoch = 0, sinceBest = 0
        var snapshot: [[Float]]?
        let start = Date()
        var outcome = Outcome.completed
        for epoch in 1...max(1, config.epochs) {
            let t0 = Date()
            order.shuffle(using: &g)
            var lossSum = 0.0, batches = 0
            var p = 0
            while p + bsz <= n {  // a short last batch would change the softmax; it is skipped
                if cancel?.isCancelled == true { break }
                for q in 0..<bsz {
                    let e = order[p + q]
                    s.users[q] = data.pairUser[e]
                    s.colItems[q] = data.pairItem[e]
                }
                for q in 0..<config.uniformNegatives { s.colItems[bsz + q] = Int32(g.next() % UInt64(data.items)) }
                lossSum += batchLoss(b: bsz, cols: bsz + config.uniformNegatives, s: s,
                                     sample: (historySeed ^ UInt64(epoch) &* 0xD1B5_4A32_D192_ED03, p), backward: true)
                applyAdam()
                batches += 1
                p += bsz
            }
            if cancel?.isCancelled == true {
                outcome = .cancelled(bestEpoch: bestEpoch)
                break
            }
            let trainSeconds = Date().timeIntervalSince(t0)
            let ndcg = validate?(model)
            var improved = false
            if let v = ndcg {
                if v > best { best = v; bestEpoch = epoch; sinceBest = 0; improved = true; snapshot = params.map(\.values) }
                else { sinceBest += 1 }
            } else {
                bestEpoch = epoch
            }
            let elapsed = Date().timeIntervalSince(start)
            progress(EpochReport(epoch: epoch, epochs: config.epochs, loss: lossSum / Double(max(1, batches)), validationNDCG: ndcg,
                                 examplesPerSecond: Double(batches * bsz) / max(trainSeconds, 1e-9), elapsed: elapsed,
                                 eta: elapsed / Double(epoch) * Double(config.epochs - epoch), best: improved))
            if validate != nil && sinceBest >= config.patience {
                outcome = .stoppedEarly(bestEpoch: bestEpoch)
                break
            }
        }
        if let snap = snapshot {
            for (p, values) in zip(params, snap) { values.withUnsafeBufferPointer { p.storage.update(from: $0.baseAddress!, count: p.count) } }
        }
        return outcome
    }

    /// The ranker for the training users and items: each user's history = their most recent
    /// `history` items.
    public func ranker() -> TwoTowerRanker {
        Self.ranker(model, data: data)
    }

    public static func ranker(_ model: TwoTowerModel, data: TwoTowerData) -> TwoTowerRanker {
        let items = model.embedItems((0..<Int32(data.items)).map { $0 }, features: data.itemFeatures)
        let hist = data.userItems.map { Array($0.suffix(model.config.history)) }
        let users = model.embedUsers((0..<Int32(data.users)).map { $0 }, histories: hist,
                                     historyFeatures: hist.map { $0.map { data.itemFeatures[Int($0)] } })
        return TwoTowerRanker(userFactors: users, itemFactors: items, model: model, itemFeatures: data.itemFeatures)
    }
}
