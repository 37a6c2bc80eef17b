import Foundation
import EventLog
import CandidateStore

/// The analysis of an online experiment from the event log alone.
///
/// Every event the server accepts while an experiment runs carries the experiment and the
/// user's variant. Per user: impressions are the distinct videos they had any event on (the
/// client reports every clip it shows: view, skip or complete), likes and completions count
/// distinct videos, watch time is the longest watch reported per video. The metrics are
/// user-level rates (each user weighs the same, users being the unit of randomisation): like
/// rate, completion rate, watch seconds per impression. Each variant is compared with the first
/// (the control): difference with a 95 % interval (Welch, normal), relative lift with a
/// delta-method interval, and the same difference after CUPED (Deng et al. 2013), whose
/// covariate is each user's same metric before the experiment started, from the same log
/// (users without earlier activity get the mean, i.e. no adjustment). A chi-square test of the
/// users per variant against the configured weights flags a sample ratio mismatch at p < 0.001.
public struct ExperimentReport: Sendable {
    public static let metrics = ["like_rate", "completion_rate", "watch_s_per_impression"]

    public struct Arm: Sendable {
        public var name: String
        public var weight: Double
        public var users: Int
        public var impressions: Int
        public var means: [String: Double]
        public var halfWidths: [String: Double]
    }

    public struct Effect: Sendable {
        public var variant: String
        public var metric: String
        public var control: Double, treatment: Double
        public var difference: Double, low: Double, high: Double
        public var lift: Double, liftLow: Double, liftHigh: Double
        public var cupedDifference: Double, cupedLow: Double, cupedHigh: Double
        /// 1 - var(adjusted) / var(raw), pooled over both arms.
        public var varianceReduction: Double
    }

    public struct SampleRatio: Sendable {
        public var chiSquare: Double
        public var p: Double
        public var mismatch: Bool { p < 0.001 }
    }

    public var experiment: Experiment
    public var arms: [Arm]
    public var effects: [Effect]
    public var sampleRatio: SampleRatio

    /// Per-user counts in one period.
    struct UserStats {
        var videos: [String: (watch: UInt32, like: Bool, complete: Bool)] = [:]
        var values: [String: Double] {
            let n = Double(max(1, videos.count))
            var likes = 0.0, completes = 0.0, watch = 0.0
            for v in videos.values {
                if v.like { likes += 1 }
                if v.complete { completes += 1 }
                watch += Double(v.watch) / 1000
            }
            return ["like_rate": likes / n, "completion_rate": completes / n, "watch_s_per_impression": watch / n,
                    "impressions": Double(videos.count)]
        }
        mutating func add(_ e: Event) {
            var v = videos[e.video] ?? (0, false, false)
            v.watch = max(v.watch, e.watchMs)
            if e.type == .like { v.like = true }
            if e.type == .complete { v.complete = true }
            videos[e.video] = v
        }
    }

    public static func analyse(_ experiment: Experiment, log: EventSource) throws -> ExperimentReport {
        var during: [String: (variant: String, stats: UserStats)] = [:]
        var before: [String: UserStats] = [:]
        let start = experiment.startedAt ?? .max
        try log.forEachEvent { e in
            if let a = Experiment.parseAnnotation(e.draft.extra), a.experiment == experiment.name {
                during[e.user, default: (a.variant, UserStats())].stats.add(e)
            } else if e.timeMs < start {
                before[e.user, default: UserStats()].add(e)
            }
        }
        return analyse(experiment, during: during.mapValues { ($0.variant, $0.stats.values) },
                       before: before.mapValues { $0.values })
    }

    /// From per-user metric values: during the experiment (with the user's variant) and before it.
    public static func analyse(_ experiment: Experiment, during: [String: (variant: String, values: [String: Double])],
                               before: [String: [String: Double]]) -> ExperimentReport {
        let names = experiment.variants.map(\.name)
        var byArm: [String: [String]] = [:]
        for (user, d) in during { byArm[d.variant, default: []].append(user) }
        for k in byArm.keys { byArm[k]!.sort() }
        var arms: [Arm] = []
        for v in experiment.variants {
            let users = byArm[v.name] ?? []
            var means: [String: Double] = [:], hw: [String: Double] = [:]
            for m in metrics {
                let ys = users.map { during[$0]!.values[m]! }
                let (mu, se) = meanSE(ys)
                means[m] = mu
                hw[m] = 1.96 * se
            }
            let impressions = users.reduce(0.0) { $0 + (during[$1]!.values["impressions"] ?? 0) }
            arms.append(Arm(name: v.name, weight: v.weight, users: users.count, impressions: Int(impressions), means: means,
                            halfWidths: hw))
        }
        // CUPED: theta pooled over all users of the experiment, per metric.
        var effects: [Effect] = []
        let control = names[0]
        for m in metrics {
            let all = during.keys.sorted()
            let xsKnown = all.compactMap { before[$0]?[m] }
            let xMean = xsKnown.isEmpty ? 0 : xsKnown.reduce(0, +) / Double(xsKnown.count)
            let x = Dictionary(uniqueKeysWithValues: all.map { ($0, before[$0]?[m] ?? xMean) })
            let y = Dictionary(uniqueKeysWithValues: all.map { ($0, during[$0]!.values[m]!) })
            let theta = slope(all.map { x[$0]! }, all.map { y[$0]! })
            let xBar = all.isEmpty ? 0 : all.reduce(0) { $0 + x[$1]! } / Double(all.count)
            func adjusted(_ u: String) -> Double { y[u]! - theta * (x[u]! - xBar) }
            let rawVar = variance(all.map { y[$0]! }), adjVar = variance(all.map(adjusted))
            let cu = (byArm[control] ?? [])
            for v in names.dropFirst() {
                let tr = byArm[v] ?? []
                let (mc, sc) = meanSE(cu.map { y[$0]! }), (mt, st) = meanSE(tr.map { y[$0]! })
                let d = mt - mc, sd = (sc * sc + st * st).squareRoot()
                let (ac, asc) = meanSE(cu.map(adjusted)), (at, ast) = meanSE(tr.map(adjusted))
                let ad = at - ac, asd = (asc * asc + ast * ast).squareRoot()
                let lift = mc != 0 ? d / mc : .nan
                let liftSE = mc != 0 ? (st * st / (mc * mc) + mt * mt * sc * sc / (mc * mc * mc * mc)).squareRoot() : .nan
                effects.append(Effect(variant: v, metric: m, control: mc, treatment: mt, difference: d, low: d - 1.96 * sd,
                                      high: d + 1.96 * sd, lift: lift, liftLow: lift - 1.96 * liftSE, liftHigh: lift + 1.96 * liftSE,
                                      cupedDifference: ad, cupedLow: ad - 1.96 * asd, cupedHigh: ad + 1.96 * asd,
                                      varianceReduction: rawVar > 0 ? 1 - adjVar / rawVar : 0))
            }
        }
        return ExperimentReport(experiment: experiment, arms: arms, effects: effects,
                                sampleRatio: sampleRatio(observed: arms.map(\.users), weights: arms.map(\.weight)))
    }

    public static func sampleRatio(observed: [Int], weights: [Double]) -> SampleRatio {
        let n = Double(observed.reduce(0, +)), total = weights.reduce(0, +)
        guard n > 0, observed.count > 1 else { return SampleRatio(chiSquare: 0, p: 1) }
        var chi = 0.0
        for (o, w) in zip(observed, weights) {
            let e = n * w / total
            chi += (Double(o) - e) * (Double(o) - e) / e
        }
        return SampleRatio(chiSquare: chi, p: chiSquareSurvival(chi, degrees: observed.count - 1))
    }

    static func meanSE(_ v: [Double]) -> (Double, Double) {
        guard !v.isEmpty else { return (.nan, .nan) }
        let n = Double(v.count), m = v.reduce(0, +) / n
        return (m, v.count > 1 ? (variance(v) / n).squareRoot() : .nan)
    }

    static func variance(_ v: [Double]) -> Double {
        guard v.count > 1 else { return 0 }
        let m = v.reduce(0, +) / Double(v.count)
        return v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(v.count - 1)
    }

    /// cov(x, y) / var(x) (0 when x does not vary).
    static func slope(_ x: [Double], _ y: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
        var cov = 0.0, vx = 0.0
        for (a, b) in zip(x, y) { cov += (a - mx) * (b - my); vx += (a - mx) * (a - mx) }
        return vx > 0 ? cov / vx : 0
    }

    /// P(X >= x) for a chi-square variable with `degrees` degrees of freedom: the regularised
    /// upper incomplete gamma Q(k/2, x/2) (series below a + 1, continued fraction above).
    public static func chiSquareSurvival(_ x: Double, degrees: Int) -> Double {
        guard x > 0 else { return 1 }
        let a = Double(degrees) / 2, z = x / 2
        let lnPrefix = a * Foundation.log(z) - z - Foundation.lgamma(a)
        if z < a + 1 {
            var term = 1 / a, sum = term, n = a
            for _ in 0..<1_000 {
                n += 1
                term *= z / n
                sum += term
                if abs(term) < abs(sum) * 1e-15 { break }
            }
            return max(0, 1 - sum * Foundation.exp(lnPrefix))
        }
        // Lentz's continued fraction for Q.
        let tiny = 1e-300
        var b = z + 1 - a, c = 1 / tiny, d = 1 / b, h = d
        for i in 1..<1_000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b; if abs(d) < tiny { d = tiny }
            c = b + an / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return min(1, Foundation.exp(lnPrefix) * h)
    }
}
