import LinearAlgebra

/// The contract every ranker implements: a score for each (user, item) of its training index
/// space. The batch scorer, evaluation and the CLI only call this, so they work for any model.
public protocol Ranker: AnyObject, Sendable {
    /// Short name used in reports and artifacts ("als", "popularity", ...).
    var kind: String { get }
    var userCount: Int { get }
    var itemCount: Int { get }
    /// Writes scores of `users` x items `items` into `scores` (row-major, row stride `ld`).
    /// Single-threaded: the caller parallelises across blocks.
    func score(users: Range<Int>, items: Range<Int>, into scores: UnsafeMutablePointer<Float>, ld: Int)
}

/// Rankers whose score is a dot product of a user vector and an item vector.
public protocol FactorRanker: Ranker {
    var userFactors: Matrix { get }
    var itemFactors: Matrix { get }
}

extension FactorRanker {
    public var userCount: Int { userFactors.rows }
    public var itemCount: Int { itemFactors.rows }
    public var factors: Int { itemFactors.cols }

    public func score(users: Range<Int>, items: Range<Int>, into scores: UnsafeMutablePointer<Float>, ld: Int) {
        guard !users.isEmpty, !items.isEmpty else { return }
        let k = factors
        BLAS.gemm(m: users.count, n: items.count, k: k,
                  a: userFactors.row(users.lowerBound), lda: k,
                  b: itemFactors.row(items.lowerBound), ldb: k, transB: true,
                  c: scores, ldc: ld)
    }

    /// Items most similar to `item` by cosine of item factors (the item itself excluded).
    public func similarItems(to item: Int, count: Int) -> [(item: Int, score: Float)] {
        let k = factors, n = itemCount
        var norms = [Float](repeating: 0, count: n)
        for i in 0..<n { norms[i] = BLAS.dot(k, itemFactors.row(i), itemFactors.row(i)).squareRoot() }
        var sims = [Float](repeating: 0, count: n)
        BLAS.gemv(transpose: false, m: n, n: k, a: itemFactors.storage, lda: k, x: itemFactors.row(item), y: &sims)
        let q = max(norms[item], 1e-12)
        var out: [(item: Int, score: Float)] = []
        out.reserveCapacity(n)
        for i in 0..<n where i != item { out.append((i, sims[i] / (q * max(norms[i], 1e-12)))) }
        out.sort { $0.score != $1.score ? $0.score > $1.score : $0.item < $1.item }
        return Array(out.prefix(count))
    }
}

/// Progress of an iterative fit, reported once per iteration.
public struct IterationReport: Sendable {
    public let iteration: Int
    public let iterations: Int
    /// Training loss after this iteration, when computed.
    public let loss: Double?
    /// Seconds this iteration's solve took (loss evaluation excluded).
    public let seconds: Double
    public let lossSeconds: Double
    public let elapsed: Double

    public var eta: Double {
        iteration == 0 ? 0 : elapsed / Double(iteration) * Double(iterations - iteration)
    }

    public var line: String {
        let l = loss.map { String(format: "loss %.6f", $0) } ?? "loss -"
        return String(format: "iteration %d/%d  %@  %.2fs  elapsed %.1fs  ETA %.1fs",
                      iteration, iterations, l, seconds + lossSeconds, elapsed, eta)
    }
}

import Foundation

/// A ranker that must see every item of a user at once (it proposes candidates over the
/// whole catalog first): the batch scorer hands it whole rows instead of item blocks.
public protocol WholeRowRanker: Ranker {}
