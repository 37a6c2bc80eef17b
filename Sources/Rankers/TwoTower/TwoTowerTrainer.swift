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

    public var line: String {
        let v = validationNDCG.map { String(format: "val NDCG@10 %.4f%@", $0, best ? " *" : "") } ?? "val -"
        return String(format: "epoch %d/%d  loss %.4f  %@  %.0f ex/s  elapsed %.1fs  ETA %.1fs", epoch, epochs, loss, v,
                      examplesPerSecond, elapsed, eta)
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

    // Adam state per parameter, and gradients.
    let params: [Matrix]
    let grads: [Matrix]
    let m: [Matrix], v: [Matrix]
    var touched: [[Int32]]
    var isTouched: [[Bool]]
    var step = 0
    /// Indices of the embedding tables among `params` (updated lazily, row by row).
    static let embeddingCount = 3

    public init(data: TwoTowerData, config: TwoTowerConfig) {
        self.data = data
        self.config = config
        let model = TwoTowerModel(config: config, users: data.users, items: data.items)
        self.model = model
        let ps = model.parameters
        params = ps
        grads = ps.map { Matrix(rows: $0.rows, cols: $0.cols) }
        m = ps.map { Matrix(rows: $0.rows, cols: $0.cols) }
        v = ps.map { Matrix(rows: $0.rows, cols: $0.cols) }
        touched = Array(repeating: [], count: Self.embeddingCount)
        isTouched = (0..<Self.embeddingCount).map { [Bool](repeating: false, count: ps[$0].rows) }
        var counts = [Double](repeating: 0, count: data.items)
        for i in data.pairItem { counts[Int(i)] += 1 }
        let total = max(1, Double(data.count))
        logQ = counts.map { Float(Foundation.log(max($0, 0.5) / total * Double(config.batch))) }
    }

    // MARK: One batch

    /// Scratch for a batch of up to `rows` users and `cols` item rows.
    final class Scratch {
        let u0, hu, un, du, dhu, dxu: Matrix
        let i0, hi, inn, di, dhi, dxi: Matrix
        let logits: Matrix
        let hx: Matrix
        init(rows: Int, cols: Int, d: Int, hidden: Int, history: Int) {
            u0 = Matrix(rows: rows, cols: d); hu = Matrix(rows: rows, cols: hidden); un = Matrix(rows: rows, cols: d)
            du = Matrix(rows: rows, cols: d); dhu = Matrix(rows: rows, cols: hidden); dxu = Matrix(rows: rows, cols: d)
            i0 = Matrix(rows: cols, cols: d); hi = Matrix(rows: cols, cols: hidden); inn = Matrix(rows: cols, cols: d)
            di = Matrix(rows: cols, cols: d); dhi = Matrix(rows: cols, cols: hidden); dxi = Matrix(rows: cols, cols: d)
            logits = Matrix(rows: rows, cols: cols)
            hx = Matrix(rows: max(1, history), cols: d)
        }
    }

    /// Loss of one batch and (when `backward`) its gradients accumulated into `grads`.
    /// `histories[b]` are the items averaged into user b's input; `negatives` extra item rows.
    func batchLoss(users: [Int32], items: [Int32], histories: [[Int32]], negatives: [Int32], s: Scratch,
                   backward: Bool) -> Double {
        let d = config.dim, hidden = config.hidden, b = users.count, cols = b + negatives.count
        let invT = 1 / config.temperature
        // Inputs: x_u = E_user[u] + mean of the history items' inputs; x_i = E_item[i] + features.
        let colItems = items + negatives
        let parts = threads
        Parallel.forEachChunk(count: b + cols, chunk: max(64, (b + cols) / (4 * parts) + 1), threads: parts) { range, _ in
            for q in range {
                if q < b {
                    let x = s.u0.row(q)
                    x.update(from: model.userEmb.row(Int(users[q])), count: d)
                    let h = histories[q]
                    if !h.isEmpty { addItemInputs(h, weight: 1 / Float(h.count), into: x) }
                } else {
                    let x = s.i0.row(q - b)
                    x.update(repeating: 0, count: d)
                    addItemInputs([colItems[q - b]], weight: 1, into: x)
                }
            }
        }
        // Towers.
        let nu = TwoTowerModel.forward(model.user, x: s.u0, n: b, h: s.hu, out: s.un, d: d, hidden: hidden, threads: threads)
        let ni = TwoTowerModel.forward(model.item, x: s.i0, n: cols, h: s.hi, out: s.inn, d: d, hidden: hidden, threads: threads)
        // Logits: Un In^T / T, corrected by log expected count, same item as the positive masked.
        pgemm(m: b, n: cols, k: d, alpha: invT, a: s.un.storage, lda: d, b: s.inn.storage, ldb: d, transB: true,
              c: s.logits.storage, ldc: cols)
        let uniformLogQ = Float(Foundation.log(Double(max(1, negatives.count)) / Double(max(1, data.items))))
        var bias = [Float](repeating: 0, count: cols)
        if config.logQ { for c in 0..<cols { bias[c] = c < b ? logQ[Int(colItems[c])] : uniformLogQ } }
        var columnsOf: [Int32: [Int]] = [:]
        for (c, i) in colItems.enumerated() { columnsOf[i, default: []].append(c) }
        var partial = [Double](repeating: 0, count: parts)
        let scale = invT / Float(b)
        bias.withUnsafeBufferPointer { biasBuf in
            partial.withUnsafeMutableBufferPointer { partialBuf in
                Parallel.forEachChunk(count: b, chunk: max(1, (b + parts - 1) / parts), threads: parts) { range, worker in
                    var acc = 0.0
                    for r in range {
                        let row = s.logits.row(r)
                        let mx = VectorOps.subtractMax(row, biasBuf.baseAddress!, cols)
                        if let dup = columnsOf[items[r]], dup.count > 1 { for c in dup where c != r { row[c] = -.infinity } }
                        let positive = row[r]
                        let sum = VectorOps.expShifted(row, cols, shift: mx)
                        acc += Double(mx) + Foundation.log(Double(sum)) - Double(positive)
                        if backward {
                            // dLoss/dlogit = (softmax - onehot) / b, times 1/T for the dot products.
                            VectorOps.scale(row, cols, scale / sum)
                            row[r] -= scale
                        }
                    }
                    partialBuf[worker] += acc
                }
            }
        }
        let loss = partial.reduce(0, +) / Double(b)
        guard backward else { return loss }
        // dUn = G In, dIn = G^T Un.
        pgemm(m: b, n: d, k: cols, a: s.logits.storage, lda: cols, b: s.inn.storage, ldb: d, transB: false,
              c: s.du.storage, ldc: d)
        pgemm(m: cols, n: d, k: b, a: s.logits.storage, lda: cols, b: s.un.storage, ldb: d, transB: false,
              c: s.di.storage, ldc: d, transA: true)
        towerBackward(model.user, grads: 3, x: s.u0, n: b, h: s.hu, out: s.un, norms: nu, dOut: s.du, dH: s.dhu, dX: s.dxu)
        towerBackward(model.item, grads: 7, x: s.i0, n: cols, h: s.hi, out: s.inn, norms: ni, dOut: s.di, dH: s.dhi, dX: s.dxi)
        // Into the embeddings.
        for r in 0..<b {
            addRow(0, Int(users[r]), s.dxu.row(r), 1)
            let h = histories[r]
            if config.historyGradient && !h.isEmpty {
                let w = 1 / Float(h.count)
                for j in h { addItemInput(j, s.dxu.row(r), w) }
            }
        }
        for c in 0..<cols { addItemInput(colItems[c], s.dxi.row(c), 1) }
        return loss
    }

    var threads: Int { config.threads > 0 ? config.threads : BLASRuntime.availableCores }

    /// sgemm split into row blocks of C across the engine's threads (OpenBLAS itself runs
    /// single-threaded during training, so its threads never spin while the rest runs).
    func pgemm(m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               transB: Bool, beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, transA: Bool = false) {
        let parts = m * n * k >= 1 << 20 ? threads : 1
        Parallel.forEachChunk(count: m, chunk: max(1, (m + parts - 1) / parts), threads: parts) { range, _ in
            let lo = range.lowerBound
            BLAS.gemm(m: range.count, n: n, k: k, alpha: alpha, a: transA ? a + lo : a + lo * lda, lda: lda, b: b, ldb: ldb,
                      transB: transB, beta: beta, c: c + lo * ldc, ldc: ldc, transA: transA)
        }
    }

    /// x += weight * sum over `items` of (E_item[j] + mean of j's feature embeddings).
    @inline(__always)
    func addItemInputs(_ items: [Int32], weight: Float, into x: UnsafeMutablePointer<Float>) {
        let d = config.dim
        for j in items {
            VectorOps.axpy(d, weight, model.itemEmb.row(Int(j)), x)
            let f = data.itemFeatures[Int(j)]
            if !f.isEmpty {
                let wf = weight / Float(f.count)
                for bkt in f { VectorOps.axpy(d, wf, model.featEmb.row(Int(bkt)), x) }
            }
        }
    }

    @inline(__always)
    func addRow(_ p: Int, _ row: Int, _ g: UnsafePointer<Float>, _ w: Float) {
        if !isTouched[p][row] { isTouched[p][row] = true; touched[p].append(Int32(row)) }
        VectorOps.axpy(config.dim, w, g, grads[p].row(row))
    }

    @inline(__always)
    func addItemInput(_ item: Int32, _ g: UnsafePointer<Float>, _ w: Float) {
        addRow(1, Int(item), g, w)
        let f = data.itemFeatures[Int(item)]
        if !f.isEmpty {
            let wf = w / Float(f.count)
            for b in f { addRow(2, Int(b), g, wf) }
        }
    }

    /// Backward through normalisation, the residual MLP and the input; parameter gradients of
    /// the tower at `grads` (w1, b1, w2, b2) accumulated, dL/dx written to `dX`.
    func towerBackward(_ t: TwoTowerModel.Tower, grads g: Int, x: Matrix, n: Int, h: Matrix, out: Matrix, norms: [Float],
                       dOut: Matrix, dH: Matrix, dX: Matrix) {
        let d = config.dim, hidden = config.hidden
        // Through y / |y|: dy = (dOut - out (out . dOut)) / |y|.
        for r in 0..<n {
            let o = out.row(r), dr = dOut.row(r)
            let dp = BLAS.dot(d, o, dr)
            let inv = 1 / norms[r]
            for c in 0..<d { dr[c] = (dr[c] - o[c] * dp) * inv }
        }
        // dW2 += h^T dy; db2 += colsum dy; dH = dy W2^T masked by relu.
        pgemm(m: hidden, n: d, k: n, a: h.storage, lda: hidden, b: dOut.storage, ldb: d, transB: false, beta: 1,
                  c: grads[g + 2].storage, ldc: d, transA: true)
        for r in 0..<n { VectorOps.axpy(d, 1, dOut.row(r), grads[g + 3].storage) }
        pgemm(m: n, n: hidden, k: d, a: dOut.storage, lda: d, b: t.w2.storage, ldb: d, transB: true,
                  c: dH.storage, ldc: hidden)
        for i in 0..<(n * hidden) where h.storage[i] <= 0 { dH.storage[i] = 0 }
        // dW1 += x^T dH; db1 += colsum dH; dX = dH W1^T + dy (residual).
        pgemm(m: d, n: hidden, k: n, a: x.storage, lda: d, b: dH.storage, ldb: hidden, transB: false, beta: 1,
                  c: grads[g].storage, ldc: hidden, transA: true)
        for r in 0..<n { VectorOps.axpy(hidden, 1, dH.row(r), grads[g + 1].storage) }
        dX.storage.update(from: dOut.storage, count: n * d)
        pgemm(m: n, n: d, k: hidden, a: dH.storage, lda: hidden, b: t.w1.storage, ldb: hidden, transB: true, beta: 1,
                  c: dX.storage, ldc: d)
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
                let rows = touched[p]
                Parallel.forEachChunk(count: rows.count, chunk: max(256, rows.count / (4 * threads) + 1), threads: threads) { range, _ in
                    for k in range {
                        let lo = Int(rows[k]) * d
                        Self.adam(ps + lo, gs + lo, ms + lo, vs + lo, d, lr: lr, wd: wd, b1: b1, b2: b2, c1: c1, c2: c2)
                    }
                }
                for r in rows { isTouched[p][Int(r)] = false }
                touched[p].removeAll(keepingCapacity: true)
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

    /// Up to `history` of the user's items other than `exclude`: all of them when few, else a
    /// random sample (training) or the most recent (serving).
    static func history(_ items: [Int32], excluding exclude: Int32?, limit: Int, using g: inout SeededGenerator) -> [Int32] {
        var others = exclude.map { e in items.filter { $0 != e } } ?? items
        if others.count <= limit { return others }
        // Partial Fisher-Yates: the first `limit` slots become a uniform sample.
        for k in 0..<limit {
            let j = k + Int(g.next() % UInt64(others.count - k))
            others.swapAt(k, j)
        }
        return Array(others.prefix(limit))
    }

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
                let idx = order[p..<(p + bsz)]
                let users = idx.map { data.pairUser[$0] }, items = idx.map { data.pairItem[$0] }
                let histories = zip(users, items).map {
                    Self.history(data.userItems[Int($0.0)], excluding: $0.1, limit: config.history, using: &g)
                }
                let negatives = (0..<config.uniformNegatives).map { _ in Int32(g.next() % UInt64(data.items)) }
                lossSum += batchLoss(users: users, items: items, histories: histories, negatives: negatives, s: s, backward: true)
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
