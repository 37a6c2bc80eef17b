import Foundation
import Interactions

/// What the second stage knows about each item, from the training interactions alone (never
/// a test or validation label): how many users, how many lately, when first and last, the mean
/// raw weight. Times are optional; without them the time features are missing (NaN).
public struct ItemStats: Sendable {
    /// Users with a positive interaction.
    public var count: [Float]
    /// The same among the newest `recentShare` of all interactions (NaN without times).
    public var recentCount: [Float]
    /// Days from the item's first / last interaction to the data's newest one (NaN without times).
    public var ageDays: [Float]
    public var daysSinceLast: [Float]
    /// Mean of ln(1 + weight) over its positive interactions.
    public var meanWeight: [Float]

    /// Share of the newest interactions counted as "recent".
    public static let recentShare = 0.1

    public init(count: [Float], recentCount: [Float], ageDays: [Float], daysSinceLast: [Float], meanWeight: [Float]) {
        self.count = count; self.recentCount = recentCount; self.ageDays = ageDays; self.daysSinceLast = daysSinceLast
        self.meanWeight = meanWeight
    }

    public init(_ data: Interactions) {
        let n = data.items.count
        var count = [Float](repeating: 0, count: n), recent = [Float](repeating: 0, count: n)
        var sum = [Float](repeating: 0, count: n)
        var first = [Int64](repeating: .max, count: n), last = [Int64](repeating: .min, count: n)
        var now: Int64?
        var threshold = Int64.max
        if let t = data.timestamps, !t.isEmpty {
            let sorted = t.sorted()
            now = sorted.last!
            threshold = sorted[min(sorted.count - 1, Int(Double(sorted.count) * (1 - Self.recentShare)))]
        }
        for r in 0..<data.count {
            let i = Int(data.itemIndex[r])
            guard data.weights[r] > 0 else { continue }
            count[i] += 1
            sum[i] += Float(log1p(Double(data.weights[r])))
            if let t = data.timestamps {
                first[i] = min(first[i], t[r]); last[i] = max(last[i], t[r])
                if t[r] >= threshold { recent[i] += 1 }
            }
        }
        func days(_ t: Int64) -> Float { now == nil || t == .max || t == .min ? .nan : Float(Double(now! - t) / 86_400) }
        self.init(count: count, recentCount: now == nil ? [Float](repeating: .nan, count: n) : recent,
                  ageDays: first.map(days), daysSinceLast: last.map(days), meanWeight: zip(sum, count).map { $1 > 0 ? $0 / $1 : 0 })
    }

    /// Columns in storage order (items x 5).
    public var columns: [[Float]] { [count, recentCount, ageDays, daysSinceLast, meanWeight] }
    public init(columns c: [[Float]]) { self.init(count: c[0], recentCount: c[1], ageDays: c[2], daysSinceLast: c[3], meanWeight: c[4]) }
}

/// One candidate of one user: the item and, per source, its score, that score standardised
/// over the user's whole row ((s - mean) / sd), and its 1-based rank in the source's list
/// (nil past the depth the ranks are known to), and how many sources proposed it (ranked it
/// within their top-C).
public struct Candidate: Sendable {
    public var item: Int32
    public var scores: [Float]
    public var standardized: [Float]
    public var ranks: [Int?]
    public var proposedBy = 0

    public init(item: Int32, scores: [Float], standardized: [Float], ranks: [Int?]) {
        self.item = item; self.scores = scores; self.standardized = standardized; self.ranks = ranks
    }
}

/// The feature rows of a user's candidates. Column order is `names(sources:)`.
public struct RerankFeatures: Sendable {
    public let sources: [String]
    public let stats: ItemStats
    /// Content tokens (hashed) of each item, when item features were given.
    public let itemTokens: [[Int32]]?

    public init(sources: [String], stats: ItemStats, itemTokens: [[Int32]]?) {
        self.sources = sources
        self.stats = stats
        self.itemTokens = itemTokens
    }

    public static let itemColumns = ["item_popularity_log", "item_recent_popularity_log", "item_age_days", "item_days_since_last",
                                     "item_mean_log_weight", "user_items_log", "user_mean_log_weight", "user_max_log_weight",
                                     "content_affinity", "sources_proposing"]

    public var names: [String] { sources.flatMap { ["\($0)_score", "\($0)_z", "\($0)_rank"] } + Self.itemColumns }
    public var count: Int { sources.count * 3 + Self.itemColumns.count }

    /// Appends one row per candidate to `out`. `history` is the user's positive items and
    /// `weights` their raw weights.
    public func append(_ candidates: [Candidate], history: ArraySlice<Int32>, weights: ArraySlice<Float>, to out: inout [Float]) {
        // The user's content profile: token -> count over their items.
        var profile: [Int32: Float] = [:]
        var profileNorm: Float = 0
        if let tokens = itemTokens {
            for i in history { for t in tokens[Int(i)] { profile[t, default: 0] += 1 } }
            profileNorm = profile.values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        }
        let userItems = Float(log1p(Double(history.count)))
        let logs = weights.map { Float(log1p(Double(max($0, 0)))) }
        let userMean = logs.isEmpty ? Float.nan : logs.reduce(0, +) / Float(logs.count)
        let userMax = logs.max() ?? .nan
        for c in candidates {
            let i = Int(c.item)
            for s in 0..<sources.count {
                out.append(c.scores[s].isFinite ? c.scores[s] : .nan)
                out.append(c.standardized[s].isFinite ? c.standardized[s] : .nan)
                out.append(c.ranks[s].map(Float.init) ?? .nan)
            }
            out.append(Float(log1p(Double(stats.count[i]))))
            out.append(stats.recentCount[i].isNaN ? .nan : Float(log1p(Double(stats.recentCount[i]))))
            out.append(stats.ageDays[i])
            out.append(stats.daysSinceLast[i])
            out.append(stats.meanWeight[i])
            out.append(userItems)
            out.append(userMean)
            out.append(userMax)
            if let tokens = itemTokens, profileNorm > 0, !tokens[i].isEmpty {
                var dot: Float = 0
                for t in tokens[i] { dot += profile[t] ?? 0 }
                out.append(dot / (profileNorm * Float(tokens[i].count).squareRoot()))
            } else {
                out.append(.nan)
            }
            out.append(Float(c.proposedBy))
        }
    }
}
