import Foundation
import LinearAlgebra
import Interactions
import Rankers

/// Cold-item evaluation: the test items were never seen in training (a `cold-items` split); each
/// test user ranks only those items, and recall@K / NDCG@K are computed per user over them.
/// Rankers that need an item's training interactions (ALS) cannot take part; the two-tower
/// embeds each cold item from its content features. Two baselines run on the same users:
/// a random ranking (its expected recall@K in closed form) and tag popularity (an item scores
/// the sum, over its feature tokens, of log(1 + training interactions of items with the token);
/// the sum rather than the mean, because well-tagged items are the popular ones and the mean made
/// a baseline worse than random).
public enum ColdItems {
    public struct Report: Sendable {
        public var users: [String]
        public var candidates: Int
        public var recall: [Double], ndcg: [Double]
        public var baselineRecall: [Double], baselineNDCG: [Double]
        public var randomRecall: Double
        public var unknownUsers: Int
        public var itemsWithFeatures: Int
    }

    /// Per-user metrics of `vectors` (user x candidate scores come from `userFactors` x
    /// `itemVectors`) against `truth` (candidate indices), K cut-off.
    static func metrics(scores: (Int) -> [Float], truth: [Set<Int>], k: Int) -> ([Double], [Double]) {
        var rec: [Double] = [], nd: [Double] = []
        for (u, t) in truth.enumerated() {
            let s = scores(u)
            let order = s.indices.sorted { s[$0] != s[$1] ? s[$0] > s[$1] : $0 < $1 }.prefix(k)
            var hits = 0, dcg = 0.0
            for (r, i) in order.enumerated() where t.contains(i) { hits += 1; dcg += 1 / Foundation.log2(Double(r + 2)) }
            let ideal = (0..<min(k, t.count)).reduce(0.0) { $0 + 1 / Foundation.log2(Double($1 + 2)) }
            rec.append(Double(hits) / Double(t.count))
            nd.append(ideal > 0 ? dcg / ideal : 0)
        }
        return (rec, nd)
    }

    /// `model`: a two-tower with its towers; `users`/`items` its id maps; `seen` its training
    /// matrix (tag popularity counts); `test`: interactions whose items are all new to the model.
    public static func evaluate(model: TwoTowerRanker, users: IdMap, items: IdMap, seen: CSR, test: Interactions,
                                features: ItemFeatures, k: Int = 10) throws -> Report {
        guard let towers = model.model else {
            throw LinearAlgebraError.shape("the model directory has no towers (two_tower.json); retrain it to embed new items")
        }
        var candidates = IdMap()
        var truthByUser: [String: Set<Int>] = [:]
        for r in 0..<test.count {
            let item = test.items.raw[Int(test.itemIndex[r])]
            guard items.index(of: item) == nil else { continue }  // not cold
            let c = Int(candidates.index(inserting: item))
            truthByUser[test.users.raw[Int(test.userIndex[r])], default: []].insert(c)
        }
        let names = truthByUser.keys.sorted()
        let known = names.filter { users.index(of: $0) != nil }
        let featureLists = features.lists(for: candidates.raw)
        let vectors = towers.embedItems([Int32](repeating: -1, count: candidates.count), features: featureLists)
        let d = vectors.cols
        // Tag popularity from the training interactions.
        var itemCount = [Double](repeating: 0, count: items.count)
        for u in 0..<seen.rows { for p in seen.rowRange(u) { itemCount[Int(seen.indices[p])] += 1 } }
        var bucketCount: [Int32: Double] = [:]
        for (i, raw) in items.raw.enumerated() where itemCount[i] > 0 {
            for b in features.byId[raw] ?? [] { bucketCount[b, default: 0] += itemCount[i] }
        }
        let tagPop: [Float] = featureLists.map { f in
            Float(f.reduce(0.0) { $0 + Foundation.log1p(bucketCount[$1] ?? 0) })
        }
        let truth = known.map { truthByUser[$0]! }
        let (rec, nd) = metrics(scores: { row in
            let u = Int(users.index(of: known[row])!)
            return (0..<candidates.count).map { BLAS.dot(d, model.userFactors.row(u), vectors.row($0)) }
        }, truth: truth, k: k)
        let (bRec, bNd) = metrics(scores: { _ in tagPop }, truth: truth, k: k)
        let n = Double(max(1, candidates.count))
        return Report(users: known, candidates: candidates.count, recall: rec, ndcg: nd, baselineRecall: bRec, baselineNDCG: bNd,
                      randomRecall: min(1, Double(k) / n), unknownUsers: names.count - known.count,
                      itemsWithFeatures: featureLists.count { !$0.isEmpty })
    }

    /// Paired bootstrap of mean(a - b) over users: (mean, 2.5 %, 97.5 %), seeded.
    public static func pairedBootstrap(_ a: [Double], _ b: [Double], resamples: Int = 10_000, seed: UInt64 = 42)
        -> (mean: Double, low: Double, high: Double) {
        precondition(a.count == b.count && !a.isEmpty)
        let i = Paired.bootstrap(zip(a, b).map { $0 - $1 }, resamples: resamples, seed: seed)
        return (i.mean, i.low, i.high)
    }
}

/// Test access to the per-user metric code with explicit scores.
public enum ColdItemsTesting {
    public static func metrics(_ scores: [[Float]], truth: [Set<Int>], k: Int) -> ([Double], [Double]) {
        ColdItems.metrics(scores: { scores[$0] }, truth: truth, k: k)
    }
}
