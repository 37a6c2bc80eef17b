import Interactions
import LinearAlgebra

/// Factor vectors loaded from a model directory, for kinds whose own structure is not needed
/// to score (a blend).
public final class StoredFactors: FactorRanker, @unchecked Sendable {
    public let kind: String
    public let userFactors: Matrix
    public let itemFactors: Matrix
    public init(kind: String, userFactors: Matrix, itemFactors: Matrix) {
        self.kind = kind
        self.userFactors = userFactors
        self.itemFactors = itemFactors
    }
}

/// A weighted sum of factor rankers over the same users and items, as one factor ranker: user
/// vectors are concatenated with the weights folded in, item vectors concatenated, so the
/// blended score w_1 s_1 + w_2 s_2 + ... comes out of one GEMM in the batch scorer.
public enum Blend {
    public static func combine(_ parts: [FactorRanker], weights: [Float]) -> StoredFactors {
        precondition(parts.count == weights.count && !parts.isEmpty)
        let users = parts[0].userCount, items = parts[0].itemCount
        precondition(parts.allSatisfy { $0.userCount == users && $0.itemCount == items }, "blend parts must share users and items")
        let k = parts.reduce(0) { $0 + $1.factors }
        let u = Matrix(rows: users, cols: k), v = Matrix(rows: items, cols: k)
        var off = 0
        for (p, w) in zip(parts, weights) {
            let f = p.factors
            for r in 0..<users { for c in 0..<f { u[r, off + c] = w * p.userFactors[r, c] } }
            for r in 0..<items { (v.row(r) + off).update(from: p.itemFactors.row(r), count: f) }
            off += f
        }
        return StoredFactors(kind: "blend", userFactors: u, itemFactors: v)
    }

    /// Standard deviation of a ranker's scores over `samples` seeded (user, item) pairs, to put
    /// rankers on one scale before weighting.
    public static func scoreScale(_ r: FactorRanker, samples: Int = 20_000, seed: UInt64 = 7) -> Float {
        var g = SeededGenerator(seed: seed)
        var sum = 0.0, sq = 0.0
        for _ in 0..<samples {
            let u = Int(g.next() % UInt64(max(1, r.userCount))), i = Int(g.next() % UInt64(max(1, r.itemCount)))
            let s = Double(BLAS.dot(r.factors, r.userFactors.row(u), r.itemFactors.row(i)))
            sum += s; sq += s * s
        }
        let n = Double(samples), mean = sum / n
        return Float(max((sq / n - mean * mean).squareRoot(), 1e-12))
    }
}
