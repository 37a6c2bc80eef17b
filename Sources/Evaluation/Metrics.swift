import Foundation

/// Ranking metrics at K, with the definitions of the shared referee (`metrics_at_k` in
/// `bench/implicit_ref.py`): for test user u with test set T_u and top-K list L_u,
///   precision = |hits| / K;  recall = |hits| / |T_u|;
///   NDCG = sum_{r: hit} 1/log2(r+2) / sum_{r < min(K,|T_u|)} 1/log2(r+2)  (r 0-based);
///   AP = sum_{r: hit} (hits in top r+1)/(r+1) / min(K, |T_u|);
/// each averaged uniformly over test users; coverage = |union of lists| / catalog size.
public struct MetricSummary: Sendable, Codable, Equatable {
    public var k: Int
    public var precision: Double
    public var recall: Double
    public var ndcg: Double
    public var map: Double
    public var coverage: Double
    public var testUsers: Int
}

/// Per-user values, kept for paired comparisons.
public struct PerUserMetrics: Sendable, Codable, Equatable {
    public var users: [String]
    public var precision: [Double]
    public var recall: [Double]
    public var ndcg: [Double]
    public var ap: [Double]
}

public enum Metrics {
    /// `lists[u]` is user u's ranked list (item ids, best first, at least K long or shorter when
    /// the catalog ran out); `truth[u]` the user's test items. Both indexed alike.
    public static func atK(_ k: Int, lists: [ArraySlice<Int32>], truth: [Set<Int32>], catalogSize: Int,
                           userNames: [String]? = nil) -> (MetricSummary, PerUserMetrics) {
        precondition(lists.count == truth.count)
        var disc = [Double](repeating: 0, count: k)
        for r in 0..<k { disc[r] = 1 / Foundation.log2(Double(r + 2)) }
        var per = PerUserMetrics(users: userNames ?? [], precision: [], recall: [], ndcg: [], ap: [])
        var covered = Set<Int32>()
        for (list, t) in zip(lists, truth) {
            let top = list.prefix(k)
            var hits = 0, dcg = 0.0, apSum = 0.0
            var seen = Set<Int32>()
            for (r, item) in top.enumerated() where item >= 0 {
                covered.insert(item)
                // A repeated item in a list counts once (the referee drops duplicates).
                guard seen.insert(item).inserted else { continue }
                if t.contains(item) {
                    hits += 1
                    dcg += disc[r]
                    apSum += Double(hits) / Double(r + 1)
                }
            }
            let m = min(k, t.count)
            var idcg = 0.0
            for r in 0..<m { idcg += disc[r] }
            per.precision.append(Double(hits) / Double(k))
            per.recall.append(t.isEmpty ? 0 : Double(hits) / Double(t.count))
            per.ndcg.append(idcg > 0 ? dcg / idcg : 0)
            per.ap.append(m > 0 ? apSum / Double(m) : 0)
        }
        let n = Double(max(lists.count, 1))
        func mean(_ a: [Double]) -> Double { a.reduce(0, +) / n }
        let summary = MetricSummary(k: k, precision: mean(per.precision), recall: mean(per.recall),
                                    ndcg: mean(per.ndcg), map: mean(per.ap),
                                    coverage: catalogSize > 0 ? Double(covered.count) / Double(catalogSize) : 0,
                                    testUsers: lists.count)
        return (summary, per)
    }
}
