import Foundation
import LinearAlgebra

// One batch's forward and backward pass: both towers forward, the in-batch logits and their
// softmax, and the gradients back through the logits and the towers.

extension TwoTowerTrainer {
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

    /// The batch in `s` (`b` user rows, `cols` item columns: the positives then the extra
    /// negatives). With `source`, rows 0..<b and their positives are read from it and each
    /// row's history is drawn (`gatherInputs`); otherwise `s` holds them. With `adam`, each
    /// embedding row the batch touched and every dense parameter is stepped once the gradients
    /// are in (gradients reset); without, the gradients are left accumulated in `grads`.
    func batchLoss(b: Int, cols: Int, s: Scratch, source: BatchSource?, backward: Bool,
                   adam: VectorOps.AdamStep? = nil) -> Double {
        let d = config.dim, invT = 1 / config.temperature
        let parts = threads
        let colItems = s.colItems
        gatherInputs(b: b, cols: cols, s: s, source: source)
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
                logitBiases(b: b, cols: cols, colItems: colItems, into: s.bias)
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
                towerBackward(model.user, grads: grads.userTower, x: s.u0, n: b, h: s.hu, out: s.un, norms: nu,
                              dOut: s.du, dH: s.dhu, dX: s.dxu, threads: th)
            } else {
                towerBackward(model.item, grads: grads.itemTower, x: s.i0, n: cols, h: s.hi, out: s.inn, norms: ni,
                              dOut: s.di, dH: s.dhi, dX: s.dxi, threads: th)
            }
        }
        scatter(b: b, cols: cols, s: s, adam: adam)
        return loss
    }

    /// Backward through normalisation, the residual MLP and the input; the tower's parameter
    /// gradients accumulated into `g`, dL/dx written to `dX`.
    func towerBackward(_ t: TwoTowerModel.Tower, grads g: TowerBuffers, x: Matrix, n: Int, h: Matrix, out: Matrix, norms: [Float],
                       dOut: Matrix, dH: Matrix, dX: Matrix, threads: Int) {
        let d = config.dim, hidden = config.hidden
        // Through y / |y|: dy = (dOut - out (out . dOut)) / |y|; db2 += colsum dy.
        VectorOps.normalizeBackward(out: out.storage, dOut.storage, norms: norms, rows: n, d, colsum: g.b2.storage)
        // dW2 += h^T dy; dH = dy W2^T masked by relu; db1 += colsum dH.
        pgemm(m: hidden, n: d, k: n, a: h.storage, lda: hidden, b: dOut.storage, ldb: d, transB: false, beta: 1,
                  c: g.w2.storage, ldc: d, transA: true, threads: threads)
        pgemm(m: n, n: hidden, k: d, a: dOut.storage, lda: d, b: t.w2.storage, ldb: d, transB: true,
                  c: dH.storage, ldc: hidden, threads: threads)
        VectorOps.reluBackward(h: h.storage, dH.storage, rows: n, hidden, colsum: g.b1.storage)
        // dW1 += x^T dH; dX = dH W1^T + dy (residual).
        pgemm(m: d, n: hidden, k: n, a: x.storage, lda: d, b: dH.storage, ldb: hidden, transB: false, beta: 1,
                  c: g.w1.storage, ldc: hidden, transA: true, threads: threads)
        dX.storage.update(from: dOut.storage, count: n * d)
        pgemm(m: n, n: d, k: hidden, a: dH.storage, lda: hidden, b: t.w1.storage, ldb: hidden, transB: true, beta: 1,
                  c: dX.storage, ldc: d, threads: threads)
    }

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
}
