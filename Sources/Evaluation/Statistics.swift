import Foundation
import Interactions

/// Paired comparisons of a per-user metric between two rankers evaluated on the same users.
public enum Paired {
    public struct Interval: Sendable, Equatable {
        public var mean: Double
        public var low: Double
        public var high: Double
    }

    /// Percentile bootstrap of the mean of `diff` (resampling users with replacement):
    /// the mean and its 2.5 % / 97.5 % quantiles, seeded.
    public static func bootstrap(_ diff: [Double], resamples: Int = 10_000, seed: UInt64 = 42) -> Interval {
        precondition(!diff.isEmpty && resamples > 0)
        let n = diff.count
        var g = SeededGenerator(seed: seed)
        var means = [Double](repeating: 0, count: resamples)
        diff.withUnsafeBufferPointer { d in
            for r in 0..<resamples {
                var s = 0.0
                for _ in 0..<n { s += d[Int(g.next() % UInt64(n))] }
                means[r] = s / Double(n)
            }
        }
        means.sort()
        let lo = Int((0.025 * Double(resamples)).rounded(.down))
        let hi = max(lo, Int((0.975 * Double(resamples)).rounded(.up)) - 1)
        return Interval(mean: diff.reduce(0, +) / Double(n), low: means[lo], high: means[min(hi, resamples - 1)])
    }

    /// Two-sided p-value of the paired randomisation (sign-flip) test of mean(diff) = 0: the
    /// share of sign assignments whose |mean| is at least the observed one. Exact (all 2^n
    /// assignments) for n <= 16, else `resamples` random assignments plus the observed one.
    public static func randomisationP(_ diff: [Double], resamples: Int = 10_000, seed: UInt64 = 42) -> Double {
        precondition(!diff.isEmpty)
        let n = diff.count
        let observed = abs(diff.reduce(0, +))
        let tolerance = 1e-12 * max(1, observed)
        if n <= 16 {
            var atLeast = 0
            for mask in 0..<(1 << n) {
                var s = 0.0
                for i in 0..<n { s += mask & (1 << i) != 0 ? -diff[i] : diff[i] }
                if abs(s) >= observed - tolerance { atLeast += 1 }
            }
            return Double(atLeast) / Double(1 << n)
        }
        var g = SeededGenerator(seed: seed)
        var atLeast = 1  // the observed assignment
        for _ in 0..<resamples {
            var s = 0.0
            var bits: UInt64 = 0, left = 0
            for i in 0..<n {
                if left == 0 { bits = g.next(); left = 64 }
                s += bits & 1 == 1 ? -diff[i] : diff[i]
                bits >>= 1
                left -= 1
            }
            if abs(s) >= observed - tolerance { atLeast += 1 }
        }
        return Double(atLeast) / Double(resamples + 1)
    }
}

extension Paired {
    /// Replicates: two configurations, each trained several times (seeds), evaluated on the
    /// same users. `a[r][u]` is replicate r's metric for user u (the same users, in the same
    /// order, in every row of both sides).
    ///
    /// Two-level (hierarchical) percentile bootstrap of mean(B) - mean(A): each resample draws
    /// the replicates of each side with replacement, then the users with replacement, and takes
    /// the mean over drawn users of (mean of B's drawn replicates - mean of A's). The interval so
    /// covers the randomness of training as well as the sampling of test users. With one
    /// replicate per side it is exactly `bootstrap` of the per-user differences (same draws).
    /// The p-value is the two-sided bootstrap one: twice the smaller share of resampled
    /// differences on either side of zero (capped at 1).
    public static func replicateBootstrap(_ a: [[Double]], _ b: [[Double]], resamples: Int = 10_000,
                                          seed: UInt64 = 42) -> (interval: Interval, p: Double) {
        precondition(!a.isEmpty && !b.isEmpty && resamples > 0)
        let n = a[0].count
        precondition(n > 0 && (a + b).allSatisfy { $0.count == n })
        let ra = a.count, rb = b.count
        func mean(_ rows: [[Double]], _ u: Int) -> Double { rows.reduce(0) { $0 + $1[u] } / Double(rows.count) }
        var g = SeededGenerator(seed: seed)
        var wa = [Double](repeating: 1, count: ra), wb = [Double](repeating: 1, count: rb)
        var diffs = [Double](repeating: 0, count: resamples)
        var d = [Double](repeating: 0, count: n)
        for r in 0..<resamples {
            if ra > 1 {
                for i in 0..<ra { wa[i] = 0 }
                for _ in 0..<ra { wa[Int(g.next() % UInt64(ra))] += 1 }
            }
            if rb > 1 {
                for i in 0..<rb { wb[i] = 0 }
                for _ in 0..<rb { wb[Int(g.next() % UInt64(rb))] += 1 }
            }
            for u in 0..<n {
                var x = 0.0
                for j in 0..<rb where wb[j] != 0 { x += wb[j] * b[j][u] }
                var y = 0.0
                for i in 0..<ra where wa[i] != 0 { y += wa[i] * a[i][u] }
                d[u] = x / Double(rb) - y / Double(ra)
            }
            var s = 0.0
            d.withUnsafeBufferPointer { dp in for _ in 0..<n { s += dp[Int(g.next() % UInt64(n))] } }
            diffs[r] = s / Double(n)
        }
        let below = diffs.count { $0 <= 0 }, above = diffs.count { $0 >= 0 }
        diffs.sort()
        let lo = Int((0.025 * Double(resamples)).rounded(.down))
        let hi = max(lo, Int((0.975 * Double(resamples)).rounded(.up)) - 1)
        let observed = (0..<n).reduce(0.0) { $0 + mean(b, $1) - mean(a, $1) } / Double(n)
        return (Interval(mean: observed, low: diffs[lo], high: diffs[min(hi, resamples - 1)]),
                min(1, 2 * Double(min(below, above)) / Double(resamples)))
    }
}

/// How two rankers' lists differ, and what a set of lists exposes.
public enum ListStats {
    /// |top-k of a ∩ top-k of b| / k.
    public static func overlap<T: Hashable>(_ a: [T], _ b: [T], k: Int) -> Double {
        guard k > 0 else { return 0 }
        return Double(Set(a.prefix(k)).intersection(b.prefix(k)).count) / Double(k)
    }

    /// Rank-biased overlap of two rankings to depth k (Webber et al. 2010, extrapolated form
    /// RBO_ext for lists of equal depth): 1 for identical lists, 0 for disjoint ones.
    public static func rbo<T: Hashable>(_ a: [T], _ b: [T], p: Double = 0.9) -> Double {
        let k = min(a.count, b.count)
        guard k > 0 else { return a.isEmpty && b.isEmpty ? 1 : 0 }
        var seenA = Set<T>(), seenB = Set<T>()
        var x = 0, sum = 0.0, weight = 1.0
        for d in 1...k {
            let ea = a[d - 1], eb = b[d - 1]
            if ea == eb { x += 1 } else {
                if seenB.contains(ea) { x += 1 }
                if seenA.contains(eb) { x += 1 }
            }
            seenA.insert(ea); seenB.insert(eb)
            weight *= p
            sum += Double(x) / Double(d) * weight
        }
        return Double(x) / Double(k) * weight + (1 - p) / p * sum
    }

    /// Gini coefficient of exposure counts (0: every item shown equally; towards 1: a few items
    /// take all the exposure). `counts` covers the whole catalog, zeros included.
    public static func gini(_ counts: [Int]) -> Double {
        let n = counts.count
        let total = counts.reduce(0, +)
        guard n > 0, total > 0 else { return 0 }
        var weighted = 0.0
        for (i, c) in counts.sorted().enumerated() { weighted += Double(i + 1) * Double(c) }
        return 2 * weighted / (Double(n) * Double(total)) - Double(n + 1) / Double(n)
    }

    /// Mean self-information of the recommended items, -log2 p(i) with p(i) the share of
    /// training users who interacted with i (add-one smoothed, so unseen items stay finite).
    public static func novelty(_ lists: [[Int]], popularity: [Int], users: Int) -> Double {
        var s = 0.0, n = 0
        for l in lists {
            for i in l {
                s -= Foundation.log2(Double(popularity[i] + 1) / Double(users + 1))
                n += 1
            }
        }
        return n == 0 ? 0 : s / Double(n)
    }
}
