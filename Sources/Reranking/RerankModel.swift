import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Scoring

/// A two-stage ranker: each source ranker proposes its top-C unseen items for a user, and a
/// LambdaMART model (XGBoost) orders their union from per-(user, item) features (each source's
/// score and rank, item popularity and age, the user's activity, content affinity). Items no
/// source proposed score -inf, so a list is at most the union's size.
public final class RerankModel: WholeRowRanker, @unchecked Sendable {
    public let kind = "rerank"
    /// How many of a user's newest items the ease-recent source looks at.
    public static let defaultRecentItems = 10
    public let sourceNames: [String]
    public let sources: [Ranker]
    /// Candidates each source proposes per user.
    public let perSource: Int
    /// Every training pair of each user (excluded from candidates).
    public let seen: CSR
    /// Each user's positive items with their raw weights (history for the user features).
    public let history: CSR
    public let features: RerankFeatures
    /// The ranker: a bag of boosted ensembles trained with different seeds; a candidate's score
    /// is the sum of their outputs (the same order as their mean).
    public let boosters: [Booster]
    /// The constant sources, ranked once.
    let prepared: [ConstantSource?]

    public init(sources: [(String, Ranker)], perSource: Int, seen: CSR, features: RerankFeatures, boosters: [Booster], history: CSR? = nil) {
        precondition(!sources.isEmpty && sources.allSatisfy { $0.1.itemCount == seen.cols && $0.1.userCount == seen.rows })
        precondition(!boosters.isEmpty)
        self.sourceNames = sources.map(\.0)
        self.sources = sources.map(\.1)
        self.perSource = perSource
        self.seen = seen
        self.history = history ?? seen.positivePart()
        self.features = features
        self.boosters = boosters
        self.prepared = Self.prepare(self.sources)
    }

    public var userCount: Int { seen.rows }
    public var itemCount: Int { seen.cols }

    /// The union of the sources' top-C unseen items for each of `users`.
    public func candidates(users: Range<Int>) -> [[Candidate]] {
        Self.candidates(sources: sources, users: users, exclude: seen, perSource: perSource, prepared: prepared)
    }

    /// How deep a source's ranks are known: a candidate carries each source's rank when it is
    /// within `rankDepth` x C of that source's list (the sources proposing it: within C).
    public static let rankDepth = 4

    /// A source that scores every user alike (popularity), ranked once: its items best first,
    /// and the sum and sum of squares of its scores (for each user's row statistics, less the
    /// user's seen items), so no user's row is materialised, summed or heaped.
    public struct ConstantSource: Sendable {
        public let scores: [Float]
        let order: [Int32]
        let sum: Double, squares: Double

        public init(_ scores: [Float]) {
            self.scores = scores
            order = scores.indices.sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.map(Int32.init)
            sum = scores.reduce(0) { $0 + Double($1) }
            squares = scores.reduce(0) { $0 + Double($1) * Double($1) }
        }
    }

    /// The constant sources among `sources` (nil for the others).
    public static func prepare(_ sources: [Ranker]) -> [ConstantSource?] {
        sources.map { ($0 as? PopularityModel).map { ConstantSource($0.itemScores) } }
    }

    /// Candidates from any rankers over the same items: `exclude`'s rows are the users' rows.
    /// Each candidate carries every source's score of it (and that score standardised over the
    /// user's unseen items), not only the proposing sources'.
    public static func candidates(sources: [Ranker], users: Range<Int>, exclude: CSR?, perSource: Int,
                                  prepared: [ConstantSource?]? = nil) -> [[Candidate]] {
        let n = sources[0].itemCount
        let constant = prepared ?? prepare(sources)
        var out: [[Candidate]] = []
        out.reserveCapacity(users.count)
        let chunk = 64
        var start = users.lowerBound
        let bufs = sources.indices.map { constant[$0] == nil ? Matrix(rows: min(chunk, max(1, users.count)), cols: n) : nil }
        let depth = perSource * rankDepth
        var items = [Int32](repeating: 0, count: depth), scores = [Float](repeating: 0, count: depth)
        let ones = [Float](repeating: 1, count: n)
        func stats(_ sum: Double, _ sq: Double, _ m: Int) -> (Float, Float)? {
            guard m > 1, sum.isFinite, sq.isFinite else { return nil }
            let mu = sum / Double(m)
            return (Float(mu), Float(max((max(sq / Double(m) - mu * mu, 0)).squareRoot(), 1e-12)))
        }
        while start < users.upperBound {
            let block = start..<min(users.upperBound, start + chunk)
            for (s, source) in sources.enumerated() {
                if let buf = bufs[s] { source.score(users: block, items: 0..<n, into: buf.storage, ld: n) }
            }
            for (r, u) in block.enumerated() {
                var mean = [Float](repeating: 0, count: sources.count), sd = [Float](repeating: 1, count: sources.count)
                var slot: [Int32: Int] = [:]
                var deeper = [[Int32: Int]](repeating: [:], count: sources.count)
                var list: [Candidate] = []
                let seen = exclude.map { ex in ex.indptr[u]..<ex.indptr[u + 1] } ?? 0..<0
                for s in 0..<sources.count {
                    var k = 0
                    if let c = constant[s] {
                        var sum = c.sum, sq = c.squares, m = n
                        var skip = Set<Int32>()
                        for p in seen {
                            let i = exclude!.indices[p]
                            guard skip.insert(i).inserted else { continue }
                            let v = Double(c.scores[Int(i)]); sum -= v; sq -= v * v; m -= 1
                        }
                        if let (mu, sigma) = stats(sum, sq, m) { mean[s] = mu; sd[s] = sigma }
                        for i in c.order where !skip.contains(i) {
                            items[k] = i; scores[k] = c.scores[Int(i)]; k += 1
                            if k == depth { break }
                        }
                    } else {
                        let row = bufs[s]!.row(r)
                        // Mean and spread over the unseen items: the whole row by BLAS, less the seen.
                        var sum = Double(BLAS.dot(n, row, ones)), sq = Double(BLAS.dot(n, row, row))
                        var m = n
                        for p in seen {
                            let i = Int(exclude!.indices[p])
                            if row[i] > -.infinity { let v = Double(row[i]); sum -= v; sq -= v * v; m -= 1 }
                            row[i] = -.infinity
                        }
                        if let (mu, sigma) = stats(sum, sq, m) {
                            mean[s] = mu; sd[s] = sigma
                        } else if m > 1 {
                            // A source with -inf entries of its own: the slow path over the finite ones.
                            var sum = 0.0, sq = 0.0, m = 0
                            for i in 0..<n where row[i] > -.infinity { let v = Double(row[i]); sum += v; sq += v * v; m += 1 }
                            if let (mu, sigma) = stats(sum, sq, m) { mean[s] = mu; sd[s] = sigma }
                        }
                        var heap = TopK(k: depth)
                        heap.feed(row, n, offset: 0)
                        k = items.withUnsafeMutableBufferPointer { it in
                            scores.withUnsafeMutableBufferPointer { sc in heap.finish(items: it.baseAddress!, outScores: sc.baseAddress!) }
                        }
                    }
                    for q in 0..<k {
                        guard q < perSource else { deeper[s][items[q]] = q + 1; continue }
                        if let at = slot[items[q]] { list[at].ranks[s] = q + 1; list[at].proposedBy += 1; continue }
                        slot[items[q]] = list.count
                        var c = Candidate(item: items[q], scores: [Float](repeating: 0, count: sources.count),
                                          standardized: [Float](repeating: 0, count: sources.count),
                                          ranks: [Int?](repeating: nil, count: sources.count))
                        c.ranks[s] = q + 1
                        c.proposedBy = 1
                        list.append(c)
                    }
                }
                // A source's rank past its own top-C, for candidates another source proposed.
                for c in list.indices {
                    for s in 0..<sources.count where list[c].ranks[s] == nil { list[c].ranks[s] = deeper[s][list[c].item] }
                }
                for c in list.indices {
                    for s in 0..<sources.count {
                        let i = Int(list[c].item)
                        let v = constant[s]?.scores[i] ?? bufs[s]!.row(r)[i]
                        list[c].scores[s] = v
                        list[c].standardized[s] = (v - mean[s]) / sd[s]
                    }
                }
                out.append(list)
            }
            start = block.upperBound
        }
        return out
    }

    public func score(users: Range<Int>, items: Range<Int>, into scores: UnsafeMutablePointer<Float>, ld: Int) {
        let lists = candidates(users: users)
        var x: [Float] = []
        x.reserveCapacity(lists.reduce(0) { $0 + $1.count } * features.count)
        for (r, u) in users.enumerated() {
            features.append(lists[r], history: history.columns(ofRow: u), weights: history.values[history.rowRange(u)], to: &x)
        }
        let total = lists.reduce(0) { $0 + $1.count }
        var predicted = [Float](repeating: 0, count: total)
        do {
            for b in boosters { for (k, v) in try b.predict(x, rows: total).enumerated() { predicted[k] += v } }
        } catch { preconditionFailure("second stage: \(error)") }
        var at = 0
        for (r, list) in lists.enumerated() {
            let out = scores + r * ld
            out.initialize(repeating: -.infinity, count: items.count)
            for c in list {
                let i = Int(c.item)
                if items.contains(i) { out[i - items.lowerBound] = predicted[at] }
                at += 1
            }
        }
    }
}
