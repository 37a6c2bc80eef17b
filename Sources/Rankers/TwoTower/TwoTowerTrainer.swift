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

    /// Requests the first lines of list i (a user's items, read a few rows later).
    @inline(__always) func prefetch(_ i: Int) {
        let s = start[i]
        VectorOps.prefetch(values + s)
        VectorOps.prefetch(values + s + 16)
    }

    /// Requests where list i starts (a few rows before `prefetch(i)`).
    @inline(__always) func prefetchStart(_ i: Int) { VectorOps.prefetch(start + i) }
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

    /// The rows worker `worker` marked in `table`.
    func rows(table: Int, worker: Int) -> UnsafeBufferPointer<Int32> {
        let k = worker * tables + table
        return UnsafeBufferPointer(start: lists[k], count: counts[k])
    }

    /// Forgets the rows worker `worker` marked in `table`.
    func clear(table: Int, worker: Int) {
        let k = worker * tables + table
        for i in 0..<counts[k] { flags[table][Int(lists[k][i])] = false }
        counts[k] = 0
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
        return batchLoss(b: b, cols: b + negatives.count, s: s, source: nil, backward: backward)
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

    /// The batch in `s` (`b` user rows, `cols` item columns: the positives then the extra
    /// negatives). With `source`, rows 0..<b and their positives are read from it and each
    /// row's history is drawn here, in parallel, from a generator of its own (the same draws
    /// on any thread count); otherwise `s` holds them. With `adam`, each embedding row the batch
    /// touched and every dense parameter is stepped once the gradients are in (gradients reset);
    /// without, the gradients are left accumulated in `grads`.
    func batchLoss(b: Int, cols: Int, s: Scratch, source: BatchSource?, backward: Bool,
                   adam: VectorOps.AdamStep? = nil) -> Double {
        let d = config.dim, invT = 1 / config.temperature
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
        // Towers.
        // Towers: with two or more threads each tower runs whole on one (bigger GEMMs, one
        // synchronisation instead of one per product).
        // Then the logit biases (log expected count) and, per positive, the other columns holding
        // the same item: a third task, taken by whichever thread finishes its tower first.
        var nu: [Float] = [], ni: [Float] = []
        var masks: (start: [Int], cols: [Int32]) = ([], [])
        let split = parts >= 2
        Parallel.forEachChunk(count: 3, chunk: 1, threads: split ? 2 : 1) { range, _ in
            let th = split ? 1 : parts
            switch range.lowerBound {
            case 0:
                nu = TwoTowerModel.forward(model.user, x: s.u0, n: b, h: s.hu, out: s.un, d: d, hidden: config.hidden, threads: th)
            case 1:
                ni = TwoTowerModel.forward(model.item, x: s.i0, n: cols, h: s.hi, out: s.inn, d: d, hidden: config.hidden, threads: th)
            default:
                let uniformLogQ = Float(Foundation.log(Double(max(1, cols - b)) / Double(max(1, data.items))))
                for c in 0..<cols { s.bias[c] = !config.logQ ? 0 : c < b ? logQ[Int(colItems[c])] : uniformLogQ }
                masks = duplicateMasks(b: b, cols: cols, colItems: colItems)
            }
        }
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
                        for k in masks.start[r]..<masks.start[r + 1] { row[Int(masks.cols[k])] = -.infinity }
                        let positive = row[r] - s.bias[r]
                        // dLoss/dlogit = (softmax - onehot) / b, times 1/T for the dot products.
                        acc += VectorOps.softmaxRow(row, bias: s.bias, cols, gradScale: backward ? scale : 0) - Double(positive)
                        if backward { row[r] -= scale }
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
        scatter(b: b, cols: cols, s: s, adam: adam)
        return loss
    }

    /// For each positive row r, the other columns holding the same item (masked: they are not
    /// negatives for r), as a CSR over rows.
    func duplicateMasks(b: Int, cols: Int, colItems: UnsafePointer<Int32>) -> (start: [Int], cols: [Int32]) {
        // Columns chained by item through an open-addressing table: each item's chain lists its
        // columns in order.
        var bits = 4
        while 1 << bits < 2 * cols { bits += 1 }
        let size = 1 << bits
        var slotItem = [Int32](repeating: -1, count: size), head = [Int32](repeating: 0, count: size)
        var tail = [Int32](repeating: 0, count: size), count = [Int32](repeating: 0, count: size)
        var next = [Int32](repeating: -1, count: cols), slotOf = [Int32](repeating: 0, count: cols)
        for c in 0..<cols {
            let item = colItems[c]
            var h = Int((UInt32(bitPattern: item) &* 0x9E37_79B1) >> UInt32(32 - bits))  // the product's high bits
            while slotItem[h] != -1 && slotItem[h] != item { h = (h + 1) & (size - 1) }
            if slotItem[h] == -1 {
                slotItem[h] = item; head[h] = Int32(c)
            } else {
                next[Int(tail[h])] = Int32(c)
            }
            tail[h] = Int32(c)
            count[h] += 1
            slotOf[c] = Int32(h)
        }
        var start = [Int](repeating: 0, count: b + 1)
        for r in 0..<b { start[r + 1] = start[r] + Int(count[Int(slotOf[r])]) - 1 }
        var out = [Int32](repeating: 0, count: start[b])
        for r in 0..<b where start[r + 1] > start[r] {
            var k = start[r]
            var c = head[Int(slotOf[r])]
            while c != -1 {
                if Int(c) != r { out[k] = c; k += 1 }
                c = next[Int(c)]
            }
        }
        return (start, out)
    }

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
            @inline(__always) func prefetch(_ p: Int, _ row: Int32) {
                guard adam != nil, mine(row) else { return }
                let o = Int(row) * d
                VectorOps.prefetch(grads[p].storage + o, d); VectorOps.prefetch(params[p].storage + o, d)
                VectorOps.prefetch(m[p].storage + o, d); VectorOps.prefetch(v[p].storage + o, d)
            }
            for r in 0..<b {
                if r + 6 < b { prefetch(0, s.users[r + 6]) }
                if mine(s.users[r]) { addRow(0, w, Int(s.users[r]), s.dxu.row(r), 1) }
            }
            for r in 0..<b where hg {
                let n = Int(s.histLen[r])
                let h = s.history(r)
                for k in 0..<n where mine(h[k]) { addRow(1, w, Int(h[k]), s.dxu.row(r), 1 / Float(n)) }
            }
            for c in 0..<cols {
                if c + 6 < cols { prefetch(1, s.colItems[c + 6]) }
                if mine(s.colItems[c]) { addRow(1, w, Int(s.colItems[c]), s.dxi.row(c), 1) }
            }
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
            guard let step = adam else { return }
            for p in 0..<Self.embeddingCount {
                let rows = touched.rows(table: p, worker: w)
                if rows.count > 0 {
                    VectorOps.adamRows(params[p].storage, grads[p].storage, m[p].storage, v[p].storage, d: params[p].cols,
                                       rows: rows.baseAddress!, count: rows.count, step)
                }
                touched.clear(table: p, worker: w)
            }
            if w == 0 {
                for p in Self.embeddingCount..<params.count {
                    VectorOps.adam(params[p].storage, grads[p].storage, m[p].storage, v[p].storage, params[p].count, step)
                }
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
        // Through y / |y|: dy = (dOut - out (out . dOut)) / |y|; db2 += colsum dy.
        VectorOps.normalizeBackward(out: out.storage, dOut.storage, norms: norms, rows: n, d, colsum: grads[g + 3].storage)
        // dW2 += h^T dy; dH = dy W2^T masked by relu; db1 += colsum dH.
        pgemm(m: hidden, n: d, k: n, a: h.storage, lda: hidden, b: dOut.storage, ldb: d, transB: false, beta: 1,
                  c: grads[g + 2].storage, ldc: d, transA: true, threads: threads)
        pgemm(m: n, n: hidden, k: d, a: dOut.storage, lda: d, b: t.w2.storage, ldb: d, transB: true,
                  c: dH.storage, ldc: hidden, threads: threads)
        VectorOps.reluBackward(h: h.storage, dH.storage, rows: n, hidden, colsum: grads[g + 1].storage)
        // dW1 += x^T dH; dX = dH W1^T + dy (residual).
        pgemm(m: d, n: hidden, k: n, a: x.storage, lda: d, b: dH.storage, ldb: hidden, transB: false, beta: 1,
                  c: grads[g].storage, ldc: hidden, transA: true, threads: threads)
        dX.storage.update(from: dOut.storage, count: n * d)
        pgemm(m: n, n: d, k: hidden, a: dH.storage, lda: hidden, b: t.w1.storage, ldb: hidden, transB: true, beta: 1,
                  c: dX.storage, ldc: d, threads: threads)
    }

    /// The constants of the next AdamW step (the step count advanced).
    func nextAdamStep() -> VectorOps.AdamStep {
        step += 1
        let b1: Float = 0.9, b2: Float = 0.999
        return VectorOps.AdamStep(lr: config.learningRate, wd: config.weightDecay, b1: b1, b2: b2,
                                  c1: 1 - Float(Foundation.pow(Double(b1), Double(step))),
                                  c2: 1 - Float(Foundation.pow(Double(b2), Double(step))))
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
        var order = (0..<Int32(n)).map { $0 }
        var best = -Double.infinity, bestEpoch = 0, sinceBest = 0
        var snapshot: [[Float]]?
        let start = Date()
        var outcome = Outcome.completed
        for epoch in 1...max(1, config.epochs) {
            let t0 = Date()
            order.shuffle(using: &g)
            var lossSum = 0.0, batches = 0
            data.pairUser.withUnsafeBufferPointer { pairUser in
                data.pairItem.withUnsafeBufferPointer { pairItem in
                    order.withUnsafeBufferPointer { order in
                        var p = 0
                        while p + bsz <= n {  // a short last batch would change the softmax; it is skipped
                            if cancel?.isCancelled == true { break }
                            for q in 0..<config.uniformNegatives { s.colItems[bsz + q] = Int32(g.next() % UInt64(data.items)) }
                            let source = BatchSource(pairUser: pairUser.baseAddress!, pairItem: pairItem.baseAddress!,
                                                     examples: order.baseAddress! + p,
                                                     seed: historySeed ^ UInt64(epoch) &* 0xD1B5_4A32_D192_ED03, position: p)
                            lossSum += batchLoss(b: bsz, cols: bsz + config.uniformNegatives, s: s, source: source, backward: true,
                                                 adam: nextAdamStep())
                            batches += 1
                            p += bsz
                        }
                    }
                }
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
