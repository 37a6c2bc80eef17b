import Foundation
import LinearAlgebra
import Interactions

/// Hyper-parameters of the two-tower ranker.
public struct TwoTowerConfig: Sendable, Codable, Equatable {
    /// Width of embeddings and outputs.
    public var dim = 64
    /// Width of each tower's hidden layer; the CLI's default is `dim`: at dim 64, widths 64 and
    /// 128 ranked level on both shared splits' validation sets and 64 trains faster
    /// (`scripts/bench-two-tower` prints both).
    public var hidden = 64
    public var epochs = 30
    public var batch = 1024
    public var learningRate: Float = 0.005
    /// Decoupled (AdamW) weight decay. 1e-4 and a temperature of 0.1 won on both shared splits'
    /// validation sets (scripts/bench-two-tower).
    public var weightDecay: Float = 1e-4
    public var temperature: Float = 0.1
    /// Subtract log(sampling probability) from in-batch negatives' logits (Yi et al. 2019).
    public var logQ = true
    /// Extra negatives drawn uniformly from the catalog per batch.
    public var uniformNegatives = 0
    /// Items averaged into the user tower's input (the most recent, when times are known).
    public var history = 50
    /// Train the item embeddings through the user tower's history mean too. Off, the history
    /// mean reads the item inputs as constants: each batch then updates the ~B item rows of its
    /// examples instead of every item in the users' histories, about twice the examples/s, and
    /// validation NDCG@10 stayed level within noise (`scripts/bench-two-tower` prints the
    /// throughput of both settings; `foryou sweep` compares their ranking).
    public var historyGradient = false
    /// Rows of the hashed content-feature table.
    public var featureBuckets = 1 << 14
    /// Epochs without a better validation NDCG before stopping.
    public var patience = 3
    public var seed: UInt64 = 42
    /// 0 = all cores.
    public var threads = 0

    public init() {}
}

/// A user tower and an item tower; each maps its input to an L2-normalised vector and the score
/// is their dot product over the temperature.
///
///   item input x_i = E_item[i] + mean_{f in F(i)} E_feat[f]      (F: hashed content tokens)
///   user input x_u = E_user[u] + mean_{j in H(u)} x_j             (H: the user's recent items)
///   tower(x)      = normalize(W2 relu(W1 x + b1) + b2 + x)
///
/// Users and items unseen at training time have a zero id embedding and are embedded from
/// their history or features alone, so a new video with tags, or a new user with a few events,
/// gets a vector without retraining.
public final class TwoTowerModel: @unchecked Sendable {
    public let config: TwoTowerConfig
    public let userCount: Int
    public let itemCount: Int

    // Parameters.
    let userEmb: Matrix, itemEmb: Matrix, featEmb: Matrix
    let user: Tower, item: Tower

    /// One tower's MLP with a residual connection.
    final class Tower {
        let w1: Matrix, b1: Matrix, w2: Matrix, b2: Matrix
        init(dim: Int, hidden: Int, using g: inout SeededGenerator) {
            w1 = TwoTowerModel.gaussian(dim, hidden, scale: (2.0 / Double(dim)).squareRoot(), &g)
            b1 = Matrix(rows: 1, cols: hidden)
            w2 = TwoTowerModel.gaussian(hidden, dim, scale: 0.1 / Double(hidden).squareRoot(), &g)
            b2 = Matrix(rows: 1, cols: dim)
        }
        init(w1: Matrix, b1: Matrix, w2: Matrix, b2: Matrix) {
            self.w1 = w1; self.b1 = b1; self.w2 = w2; self.b2 = b2
        }
        var parameters: [Matrix] { [w1, b1, w2, b2] }
    }

    static func gaussian(_ r: Int, _ c: Int, scale: Double, _ g: inout SeededGenerator) -> Matrix {
        let m = Matrix(rows: r, cols: c)
        for i in 0..<m.count { m.storage[i] = Float(g.normal() * scale) }
        return m
    }

    public init(config: TwoTowerConfig, users: Int, items: Int) {
        self.config = config
        userCount = users
        itemCount = items
        var g = SeededGenerator(seed: config.seed)
        userEmb = Self.gaussian(users, config.dim, scale: 0.05, &g)
        itemEmb = Self.gaussian(items, config.dim, scale: 0.05, &g)
        featEmb = Self.gaussian(config.featureBuckets, config.dim, scale: 0.05, &g)
        user = Tower(dim: config.dim, hidden: config.hidden, using: &g)
        item = Tower(dim: config.dim, hidden: config.hidden, using: &g)
    }

    /// Every parameter matrix, in a fixed order (checkpoints, Adam state, gradient checks).
    public var parameters: [Matrix] { [userEmb, itemEmb, featEmb] + user.parameters + item.parameters }

    /// A model from stored parameters (the order of `parameters`).
    public init(config: TwoTowerConfig, parameters p: [Matrix]) throws {
        let d = config.dim, h = config.hidden
        let shapes = [(p.first?.rows ?? 0, d), (p.count > 1 ? p[1].rows : 0, d), (config.featureBuckets, d),
                      (d, h), (1, h), (h, d), (1, d), (d, h), (1, h), (h, d), (1, d)]
        guard p.count == shapes.count, zip(p, shapes).allSatisfy({ $0.rows == $1.0 && $0.cols == $1.1 }) else {
            throw LinearAlgebraError.shape("two-tower parameters do not match dim \(d), hidden \(h), buckets \(config.featureBuckets)")
        }
        self.config = config
        userCount = p[0].rows
        itemCount = p[1].rows
        userEmb = p[0]; itemEmb = p[1]; featEmb = p[2]
        user = Tower(w1: p[3], b1: p[4], w2: p[5], b2: p[6])
        item = Tower(w1: p[7], b1: p[8], w2: p[9], b2: p[10])
    }

    // MARK: Inputs

    /// Writes x_i for each of `items` (model item index, or -1 for an item unseen at training)
    /// with its feature buckets into `out` rows.
    func itemInputs(_ items: [Int32], features: [[Int32]], into out: Matrix) {
        let d = config.dim
        for (r, i) in items.enumerated() {
            let dst = out.row(r)
            if i >= 0 { dst.update(from: itemEmb.row(Int(i)), count: d) } else { dst.update(repeating: 0, count: d) }
            let f = features[r]
            if !f.isEmpty {
                let w = 1 / Float(f.count)
                for b in f { VectorOps.axpy(d, w, featEmb.row(Int(b)), dst) }
            }
        }
    }

    /// Runs a tower forward on `x` (n x dim): hidden activations into `h` (n x hidden), output
    /// into `out` (n x dim), L2-normalised in place; returns the pre-normalisation norms.
    @discardableResult
    static func forward(_ t: Tower, x: Matrix, n: Int, h: Matrix, out: Matrix, d: Int, hidden: Int, threads: Int = 1) -> [Float] {
        var norms = [Float](repeating: 0, count: n)
        let parts = n >= 256 ? max(1, threads) : 1
        norms.withUnsafeMutableBufferPointer { normBuf in
            Parallel.forEachChunk(count: n, chunk: max(1, (n + parts - 1) / parts), threads: parts) { range, _ in
                let lo = range.lowerBound, m = range.count
                // h = relu(x W1 + b1)
                BLAS.gemm(m: m, n: hidden, k: d, a: x.row(lo), lda: d, b: t.w1.storage, ldb: hidden, transB: false,
                          c: h.row(lo), ldc: hidden)
                VectorOps.biasReLU(h.row(lo), bias: t.b1.storage, rows: m, hidden)
                // out = normalize(h W2 + b2 + x)
                BLAS.gemm(m: m, n: d, k: hidden, a: h.row(lo), lda: hidden, b: t.w2.storage, ldb: d, transB: false,
                          c: out.row(lo), ldc: d)
                VectorOps.residualNormalize(out.row(lo), bias: t.b2.storage, x: x.row(lo), rows: m, d,
                                            norms: normBuf.baseAddress! + lo)
            }
        }
        return norms
    }

    // MARK: Serving

    /// Item vectors for `items` (model index or -1 when unseen) with their feature buckets.
    public func embedItems(_ items: [Int32], features: [[Int32]]) -> Matrix {
        let n = items.count, d = config.dim
        let out = Matrix(rows: n, cols: d)
        let chunk = 4096
        let x = Matrix(rows: chunk, cols: d), h = Matrix(rows: chunk, cols: config.hidden), o = Matrix(rows: chunk, cols: d)
        var s = 0
        while s < n {
            let e = min(n, s + chunk)
            itemInputs(Array(items[s..<e]), features: Array(features[s..<e]), into: x)
            Self.forward(item, x: x, n: e - s, h: h, out: o, d: d, hidden: config.hidden)
            (out.storage + s * d).update(from: o.storage, count: (e - s) * d)
            s = e
        }
        return out
    }

    /// User vectors from each user's model index (-1 when unseen) and history (item inputs are
    /// built from `historyItems`' model indices, -1 allowed, with their features).
    public func embedUsers(_ users: [Int32], histories: [[Int32]], historyFeatures: [[[Int32]]]) -> Matrix {
        let n = users.count, d = config.dim
        let out = Matrix(rows: n, cols: d)
        let chunk = 1024
        let x = Matrix(rows: chunk, cols: d), h = Matrix(rows: chunk, cols: config.hidden), o = Matrix(rows: chunk, cols: d)
        var hx = Matrix(rows: 64, cols: d)
        var s = 0
        while s < n {
            let e = min(n, s + chunk)
            for r in s..<e {
                let dst = x.row(r - s)
                if users[r] >= 0 { dst.update(from: userEmb.row(Int(users[r])), count: d) } else { dst.update(repeating: 0, count: d) }
                let hist = histories[r]
                if !hist.isEmpty {
                    if hx.rows < hist.count { hx = Matrix(rows: hist.count, cols: d) }
                    itemInputs(hist, features: historyFeatures[r], into: hx)
                    let w = 1 / Float(hist.count)
                    for j in 0..<hist.count { VectorOps.axpy(d, w, hx.row(j), dst) }
                }
            }
            Self.forward(user, x: x, n: e - s, h: h, out: o, d: d, hidden: config.hidden)
            (out.storage + s * d).update(from: o.storage, count: (e - s) * d)
            s = e
        }
        return out
    }
}

/// A two-tower model's vectors for a fixed set of users and items: what the batch scorer,
/// the evaluator and the candidate store consume (score = dot product; the temperature does
/// not change the order).
public final class TwoTowerRanker: FactorRanker, @unchecked Sendable {
    public let kind = "two-tower"
    public let userFactors: Matrix
    public let itemFactors: Matrix
    public let model: TwoTowerModel?
    /// The feature buckets each item was trained with (empty lists when unknown): what a user's
    /// history items contribute when the user is embedded again at scoring time.
    public let itemFeatures: [[Int32]]

    public init(userFactors: Matrix, itemFactors: Matrix, model: TwoTowerModel? = nil, itemFeatures: [[Int32]]? = nil) {
        self.userFactors = userFactors
        self.itemFactors = itemFactors
        self.model = model
        self.itemFeatures = itemFeatures ?? [[Int32]](repeating: [], count: itemFactors.rows)
    }
}
