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
    public let booster: Booster

    public init(sources: [(String, Ranker)], perSource: Int, seen: CSR, features: RerankFeatures, booster: Booster, history: CSR? = nil) {
        precondition(!sources.isEmpty && sources.allSatisfy { $0.1.itemCount == seen.cols && $0.1.userCount == seen.rows })
        self.sourceNames = sources.map(\.0)
        self.sources = sources.map(\.1)
        self.perSource = perSource
        self.seen = seen
        self.history = history ?? seen.positivePart()
        self.features = features
        self.booster = booster
    }

    public var userCount: Int { seen.rows }
    public var itemCount: Int { seen.cols }

    /// The union of the sources' top-C unseen items for each of `users`.
    public func candidates(users: Range<Int>) -> [[Candidate]] {
        Self.candidates(sources: sources, users: users, exclude: seen, perSource: perSource)
    }

    /// Candidates from any rankers over the same items: `exclude`'s rows are the users' rows.
    /// Each candidate carries every source's score of it (and that score standardised over the
    /// user's whole row), not only the proposing sources'.
    public static func candidates(sources: [Ranker], users: Range<Int>, exclude: CSR?, perSource: Int) -> [[Candidate]] {
        let n = sources[0].itemCount
        var out: [[Candidate]] = []
        out.reserveCapacity(users.count)
        let chunk = 64
        var start = users.lowerBound
        let bufs = sources.map { _ in Matrix(rows: min(chunk, max(1, users.count)), cols: n) }
        var items = [Int32](repeating: 0, count: perSource), scores = [Float](repeating: 0, count: perSource)
        while start < users.upperBound {
            let block = start..<min(users.upperBound, start + chunk)
            for (s, source) in sources.enumerated() { source.score(users: block, items: 0..<n, into: bufs[s].storage, ld: n) }
            for (r, u) in block.enumerated() {
                var mean = [Float](repeating: 0, count: sources.count), sd = [Float](repeating: 1, count: sources.count)
                var slot: [Int32: Int] = [:]
                var list: [Candidate] = []
                for s in 0..<sources.count {
                    let row = bufs[s].row(r)
                    if let ex = exclude { for p in ex.indptr[u]..<ex.indptr[u + 1] { row[Int(ex.indices[p])] = -.infinity } }
                    var sum = 0.0, sq = 0.0, m = 0
                    for i in 0..<n where row[i] > -.infinity { let v = Double(row[i]); sum += v; sq += v * v; m += 1 }
                    if m > 1 {
                        let mu = sum / Double(m)
                        mean[s] = Float(mu); sd[s] = Float(max((sq / Double(m) - mu * mu).squareRoot(), 1e-12))
                    }
                    var heap = TopK(k: perSource)
                    heap.feed(row, n, offset: 0)
                    let k = items.withUnsafeMutableBufferPointer { it in
                        scores.withUnsafeMutableBufferPointer { sc in heap.finish(items: it.baseAddress!, outScores: sc.baseAddress!) }
                    }
                    for q in 0..<k {
                        if let at = slot[items[q]] { list[at].ranks[s] = q + 1; continue }
                        slot[items[q]] = list.count
                        var c = Candidate(item: items[q], scores: [Float](repeating: 0, count: sources.count),
                                          standardized: [Float](repeating: 0, count: sources.count),
                                          ranks: [Int?](repeating: nil, count: sources.count))
                        c.ranks[s] = q + 1
                        list.append(c)
                    }
                }
                for c in list.indices {
                    for s in 0..<sources.count {
                        let v = bufs[s].row(r)[Int(list[c].item)]
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
        let predicted: [Float]
        do { predicted = try booster.predict(x, rows: total) } catch { preconditionFailure("second stage: \(error)") }
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
