import Foundation
import EventLog
import CandidateStore
import Interactions

/// The analysis of an online experiment from the event log alone.
///
/// Every event the server accepts while an experiment runs carries the experiment and the
/// user's variant, and every page it serves is an `Exposure` in the exposure log. Per user:
/// impressions are the distinct videos the server served them (from the exposures; without
/// exposures, the distinct videos they had any event on), likes and completions count distinct
/// videos, watch time is the longest watch reported per video. The metrics are
/// user-level rates (each user weighs the same, users being the unit of randomisation): like
/// rate, completion rate, watch seconds per impression. Each variant is compared with the first
/// (the control): difference with a 95 % interval (Welch, normal), relative lift with a
/// delta-method interval, and the same difference after CUPED (Deng et al. 2013), whose
/// covariate is each user's same metric before the experiment started, from the same log
/// (users without earlier activity get the mean, i.e. no adjustment). CUPED's coefficient and
/// its variance cut are computed within arms (pooled within-arm covariance over the two arms
/// compared): pooled across arms, a real effect inflates var(y) and the cut is understated.
/// Each effect has a two-sided p-value (normal, on the CUPED difference); one metric is the
/// primary (`primary`, declared before reading), its p stands as it is, and the p-values of
/// every other metric and variant are Holm-adjusted together. A chi-square test of the
/// users per variant against the configured weights flags a sample ratio mismatch at p < 0.001.
///
/// Besides the fixed-horizon figures, each effect has an always-valid interval and p-value
/// (mSPRT with a normal mixing distribution, Johari et al. 2017, "Peeking at A/B tests"): they
/// hold at every look, so a running experiment may be read and stopped at any time; the p is the
/// smallest over the daily cumulative looks. The mixing standard deviation is
/// `sequentialTau` x the control's mean (the size of effect the test is tuned to find).
/// "Users needed" scales the observed standard error to the sample that detects the observed
/// effect with 80 % power at a two-sided 5 % level.
///
/// An interleaving test (`Experiment.Kind.interleave`) is read differently: each user's
/// completions and likes on videos their pages drafted from one side credit that side; per
/// user with any credit, the preference is (credit B - credit A) / (credit A + credit B), and the
/// report gives its mean over users with a 95 % interval (negative: the first variant, A, wins).
public struct ExperimentReport: Sendable {
    public static let metrics = ["like_rate", "completion_rate", "watch_s_per_impression"]
    public static let defaultPrimary = "completion_rate"
    /// Guardrail margin: a relative worsening of the control's value (0.05 = 5 %).
    public static let defaultGuardrailMargin = 0.05
    /// The mSPRT mixing standard deviation as a share of the control's mean.
    public static let sequentialTau = 0.05
    /// z(0.975) + z(0.80): a two-sided 5 % test with 80 % power.
    static let powerZ = 1.959964 + 0.841621

    public struct Arm: Sendable {
        public var name: String
        public var weight: Double
        public var users: Int
        public var impressions: Int
        public var means: [String: Double]
        public var halfWidths: [String: Double]
        /// Pages the server served this arm (exposures; 0 without them) and their latency p99 (ms).
        public var pages: Int = 0
        public var latencyP99Ms: Double = .nan
    }

    public struct Effect: Sendable {
        public var variant: String
        public var metric: String
        public var control: Double, treatment: Double
        public var difference: Double, low: Double, high: Double
        public var lift: Double, liftLow: Double, liftHigh: Double
        public var cupedDifference: Double, cupedLow: Double, cupedHigh: Double
        /// 1 - var(adjusted) / var(raw), both within arms (pooled over the two arms compared).
        public var varianceReduction: Double
        /// Two-sided p of the raw and of the CUPED difference (normal approximation).
        public var p: Double, cupedP: Double
        /// The p a decision reads: the CUPED p for the primary metric, Holm-adjusted for the rest.
        public var decisionP: Double
        public var primary: Bool
        /// Share of the two arms' users with a pre-period value of this metric.
        public var preCoverage: Double
        /// Why CUPED cut little, when it did (nil otherwise).
        public var cupedNote: String?
        /// The always-valid (mSPRT) interval of the CUPED difference and its p-value (the
        /// smallest over the cumulative looks).
        public var sequentialLow = Double.nan, sequentialHigh = Double.nan, sequentialP = Double.nan
        /// Users (both arms, in the same proportions) that detect the observed difference with 80 %
        /// power at a two-sided 5 % level.
        public var usersNeeded = Double.nan
        public var significant: Bool { decisionP < 0.05 }
        /// The smallest true difference this sample detects with 80 % power at a two-sided 5 %
        /// level: (1.96 + 0.84) x the CUPED standard error. A fixed-horizon test is planned to run
        /// until this is below the effect that matters, and read then, not before.
        public var minimumDetectable: Double { (cupedHigh - cupedLow) / (2 * 1.959964) * (1.959964 + 0.841621) }
    }

    /// Metrics that must not get worse (higher is worse): each variant against the control.
    /// The last two need exposures: the share of served videos that came from the trending
    /// fallback, and the share of feed requests that failed. Page latency p99 is compared too
    /// (`latency_p99_ms`, with a bootstrap interval over pages).
    public static let guardrailMetrics = ["skip_rate", "hide_rate", "fallback_share", "error_rate"]

    /// A guardrail comparison: `failed` when the variant is worse beyond the margin (a relative
    /// share of the control's value) and significantly so (the interval's lower end above 0);
    /// `warning` when only the estimate is beyond the margin.
    public struct Guardrail: Sendable {
        public var variant: String
        public var metric: String
        public var control: Double, treatment: Double
        public var difference: Double, low: Double, high: Double
        public var margin: Double
        public var status: String
    }

    /// The effects over time: day `day` (0 = the start's first 24 hours) alone and from the
    /// start through that day (novelty effects show as a daily effect that fades).
    public struct Period: Sendable {
        public var day: Int
        public var cumulative: Bool
        public var users: Int
        public var effects: [Effect]
    }

    public struct SampleRatio: Sendable {
        public var chiSquare: Double
        public var p: Double
        public var mismatch: Bool { p < 0.001 }
    }

    public var experiment: Experiment
    public var primary: String
    public var arms: [Arm]
    public var effects: [Effect]
    public var guardrails: [Guardrail]
    public var sampleRatio: SampleRatio
    /// Daily and cumulative effects (from the log; empty from `analyse(during:before:)`).
    public var timeline: [Period] = []
    /// Whether the denominators came from the server's exposures.
    public var fromExposures = false
    /// An interleaving test's result (nil for an A/B test).
    public var interleaving: Interleaving?

    public struct Interleaving: Sendable {
        /// Users served at least one drafted video, and those with any credit.
        public var users: Int, credited: Int
        /// Completions + likes on each side's videos, all users.
        public var creditA: Int, creditB: Int
        /// Users whose credit favoured A, B, or neither.
        public var winsA: Int, winsB: Int, ties: Int
        /// Mean per-user preference for B over A, (B - A) / (A + B), with a 95 % interval.
        public var preference: Double, low: Double, high: Double, p: Double
        /// Exposed users that detect the observed preference with 80 % power (two-sided 5 %).
        public var usersNeeded: Double
    }

    /// Per-user counts in one period.
    struct UserStats {
        var videos: [String: (watch: UInt32, like: Bool, complete: Bool, skip: Bool, hide: Bool)] = [:]
        /// From exposures: distinct videos served, pages, failed pages, videos served in all and
        /// from trending, and each drafted video's team (interleaving).
        var served = Set<String>()
        var pages = 0, errors = 0, servedTotal = 0, fallback = 0
        var teams: [String: Int] = [:]
        var values: [String: Double] {
            let n = Double(max(1, served.isEmpty ? videos.count : served.count))
            var likes = 0.0, completes = 0.0, watch = 0.0, skips = 0.0, hides = 0.0
            // With exposures, numerators count only videos the server served (same set as the
            // denominator; a rate cannot pass 1 when an exposure was lost or a video came from elsewhere).
            for (id, v) in videos where served.isEmpty || served.contains(id) {
                if v.like { likes += 1 }
                if v.complete { completes += 1 }
                if v.skip { skips += 1 }
                if v.hide { hides += 1 }
                watch += Double(v.watch) / 1000
            }
            var out = ["like_rate": likes / n, "completion_rate": completes / n, "watch_s_per_impression": watch / n,
                       "skip_rate": skips / n, "hide_rate": hides / n, "impressions": served.isEmpty ? Double(videos.count) : n]
            if pages > 0 {
                out["error_rate"] = Double(errors) / Double(pages)
                if servedTotal > 0 { out["fallback_share"] = Double(fallback) / Double(servedTotal) }
            }
            return out
        }
        mutating func add(_ x: Exposure) {
            pages += 1
            if x.error { errors += 1 }
            served.formUnion(x.videos)
            servedTotal += x.videos.count
            fallback += x.fallback
            if let t = x.teams {
                for (v, team) in zip(x.videos, t) where team >= 0 && teams[v] == nil { teams[v] = team }
            }
        }
        mutating func merge(_ o: UserStats) {
            for (k, b) in o.videos {
                var a = videos[k] ?? (0, false, false, false, false)
                a.watch = max(a.watch, b.watch)
                a.like = a.like || b.like; a.complete = a.complete || b.complete; a.skip = a.skip || b.skip; a.hide = a.hide || b.hide
                videos[k] = a
            }
            served.formUnion(o.served)
            pages += o.pages; errors += o.errors; servedTotal += o.servedTotal; fallback += o.fallback
            teams.merge(o.teams) { a, _ in a }
        }
        mutating func add(_ e: Event) {
            var v = videos[e.video] ?? (0, false, false, false, false)
            v.watch = max(v.watch, e.watchMs)
            if e.type == .like { v.like = true }
            if e.type == .complete { v.complete = true }
            if e.type == .skip { v.skip = true }
            if e.type == .hide { v.hide = true }
            videos[e.video] = v
        }
    }

    /// `exposures`: the experiment's records from the exposure log (`Exposure.read`); empty: the
    /// denominators come from client events and the server-side guardrails are left out.
    public static func analyse(_ experiment: Experiment, log: EventSource, exposures: [Exposure] = [],
                               primary: String = defaultPrimary,
                               guardrailMargin: Double = defaultGuardrailMargin) throws -> ExperimentReport {
        var during: [String: (variant: String, stats: UserStats)] = [:]
        var byDay: [Int: [String: (variant: String, stats: UserStats)]] = [:]
        var before: [String: UserStats] = [:]
        let start = experiment.startedAt ?? .max
        func day(_ ms: Int64) -> Int { start == .max ? 0 : max(0, Int((ms - start) / 86_400_000)) }
        try log.forEachRetainedEvent { e in
            if let a = Experiment.parseAnnotation(e.draft.extra), a.experiment == experiment.name {
                during[e.user, default: (a.variant, UserStats())].stats.add(e)
                byDay[day(e.timeMs), default: [:]][e.user, default: (a.variant, UserStats())].stats.add(e)
            } else if e.timeMs < start {
                before[e.user, default: UserStats()].add(e)
            }
        }
        var latencies: [String: [Double]] = [:]
        for x in exposures where x.experiment == experiment.name {
            during[x.user, default: (x.variant, UserStats())].stats.add(x)
            byDay[day(x.timeMs), default: [:]][x.user, default: (x.variant, UserStats())].stats.add(x)
            latencies[x.variant, default: []].append(Double(x.latencyUs) / 1000)
        }
        if experiment.kind == .interleave {
            var r = analyse(experiment, during: [:], before: [:], primary: primary, guardrailMargin: guardrailMargin)
            r.interleaving = interleaving(during.values.map(\.stats))
            r.fromExposures = !exposures.isEmpty
            return r
        }
        let pre = before.mapValues { $0.values }
        var report = analyse(experiment, during: during.mapValues { ($0.variant, $0.stats.values) },
                             before: pre, primary: primary, guardrailMargin: guardrailMargin, latencies: latencies)
        report.fromExposures = !exposures.isEmpty
        var running: [String: (variant: String, stats: UserStats)] = [:]
        for day in 0..<((byDay.keys.max() ?? -1) + 1) {
            let today = byDay[day] ?? [:]
            for (u, x) in today { running[u, default: (x.variant, UserStats())].stats.merge(x.stats) }
            for (cumulative, set) in [(false, today), (true, running)] where !set.isEmpty {
                let r = analyse(experiment, during: set.mapValues { ($0.variant, $0.stats.values) }, before: pre, primary: primary,
                                guardrailMargin: guardrailMargin)
                report.timeline.append(Period(day: day, cumulative: cumulative, users: set.count, effects: r.effects))
            }
        }
        // The always-valid p is the smallest over the looks (it holds at every one of them).
        for k in report.effects.indices {
            for p in report.timeline where p.cumulative {
                for x in p.effects where x.variant == report.effects[k].variant && x.metric == report.effects[k].metric
                    && x.sequentialP.isFinite {
                    report.effects[k].sequentialP = min(report.effects[k].sequentialP.isNaN ? 1 : report.effects[k].sequentialP,
                                                        x.sequentialP)
                }
            }
        }
        return report
    }

    /// The interleaving preference from per-user stats (drafted teams and reactions).
    static func interleaving(_ users: [UserStats]) -> Interleaving {
        var exposed = 0, totalA = 0, totalB = 0, winsA = 0, winsB = 0, ties = 0
        var scores: [Double] = []
        for u in users where !u.teams.isEmpty {
            exposed += 1
            var c = [0, 0]
            for (video, team) in u.teams {
                guard let v = u.videos[video] else { continue }
                c[team] += (v.complete ? 1 : 0) + (v.like ? 1 : 0)
            }
            totalA += c[0]; totalB += c[1]
            guard c[0] + c[1] > 0 else { continue }
            if c[0] > c[1] { winsA += 1 } else if c[1] > c[0] { winsB += 1 } else { ties += 1 }
            scores.append(Double(c[1] - c[0]) / Double(c[0] + c[1]))
        }
        let (m, se) = meanSE(scores)
        let share = exposed > 0 ? Double(scores.count) / Double(exposed) : .nan
        let needed = powerZ * powerZ * se * se * Double(scores.count) / (m * m) / share
        return Interleaving(users: exposed, credited: scores.count, creditA: totalA, creditB: totalB, winsA: winsA, winsB: winsB,
                            ties: ties, preference: m, low: m - 1.96 * se, high: m + 1.96 * se, p: twoSidedP(m, se),
                            usersNeeded: needed)
    }

    /// The mSPRT always-valid 95 % interval and p for an estimate `d` with standard error `se`,
    /// under a normal mixing distribution N(0, tau^2) of the true difference: with V = se^2,
    /// Lambda = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2))), p = min(1, 1 / Lambda),
    /// and the interval d +- sqrt(V (V + tau^2) / tau^2 (2 log(1 / alpha) + log((V + tau^2) / V))).
    public static func alwaysValid(_ d: Double, se: Double, tau: Double, alpha: Double = 0.05) -> (low: Double, high: Double, p: Double) {
        guard d.isFinite, se.isFinite, se > 0, tau.isFinite, tau > 0 else { return (.nan, .nan, .nan) }
        let v = se * se, t2 = tau * tau
        let logLambda = 0.5 * Foundation.log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))
        let p = min(1, Foundation.exp(-logLambda))
        let half = (v * (v + t2) / t2 * (2 * Foundation.log(1 / alpha) + Foundation.log((v + t2) / v))).squareRoot()
        return (d - half, d + half, p)
    }

    /// The p99 of a sample (nearest rank).
    static func p99(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return .nan }
        let s = v.sorted()
        return s[min(s.count - 1, Int((0.99 * Double(s.count)).rounded(.up)) - 1)]
    }

    /// From per-user metric values: during the experiment (with the user's variant) and before it.
    public static func analyse(_ experiment: Experiment, during: [String: (variant: String, values: [String: Double])],
                               before: [String: [String: Double]], primary: String = defaultPrimary,
                               guardrailMargin: Double = defaultGuardrailMargin,
                               latencies: [String: [Double]] = [:]) -> ExperimentReport {
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
            let lat = latencies[v.name] ?? []
            arms.append(Arm(name: v.name, weight: v.weight, users: users.count, impressions: Int(impressions), means: means,
                            halfWidths: hw, pages: lat.count, latencyP99Ms: p99(lat)))
        }
        // CUPED per comparison: theta and the variance cut from within-arm (co)variances.
        var effects: [Effect] = []
        let control = names[0]
        for m in metrics {
            let all = during.keys.sorted()
            let xsKnown = all.compactMap { before[$0]?[m] }
            let xMean = xsKnown.isEmpty ? 0 : xsKnown.reduce(0, +) / Double(xsKnown.count)
            let x = Dictionary(uniqueKeysWithValues: all.map { ($0, before[$0]?[m] ?? xMean) })
            let y = Dictionary(uniqueKeysWithValues: all.map { ($0, during[$0]!.values[m]!) })
            let cu = (byArm[control] ?? [])
            for v in names.dropFirst() {
                let tr = byArm[v] ?? []
                var sxy = 0.0, sxx = 0.0, syy = 0.0
                for arm in [cu, tr] where !arm.isEmpty {
                    let mx = arm.reduce(0) { $0 + x[$1]! } / Double(arm.count), my = arm.reduce(0) { $0 + y[$1]! } / Double(arm.count)
                    for u in arm { sxy += (x[u]! - mx) * (y[u]! - my); sxx += (x[u]! - mx) * (x[u]! - mx); syy += (y[u]! - my) * (y[u]! - my) }
                }
                let theta = sxx > 0 ? sxy / sxx : 0
                let pair = cu + tr
                let xBar = pair.isEmpty ? 0 : pair.reduce(0) { $0 + x[$1]! } / Double(pair.count)
                func adjusted(_ u: String) -> Double { y[u]! - theta * (x[u]! - xBar) }
                // Within-arm residual sum of squares after the adjustment: syy - theta * sxy.
                let cut = syy > 0 ? min(1, max(0, theta * sxy / syy)) : 0
                let coverage = pair.isEmpty ? 0 : Double(pair.filter { before[$0]?[m] != nil }.count) / Double(pair.count)
                let (mc, sc) = meanSE(cu.map { y[$0]! }), (mt, st) = meanSE(tr.map { y[$0]! })
                let d = mt - mc, sd = (sc * sc + st * st).squareRoot()
                let (ac, asc) = meanSE(cu.map(adjusted)), (at, ast) = meanSE(tr.map(adjusted))
                let ad = at - ac, asd = (asc * asc + ast * ast).squareRoot()
                let lift = mc != 0 ? d / mc : .nan
                let liftSE = mc != 0 ? (st * st / (mc * mc) + mt * mt * sc * sc / (mc * mc * mc * mc)).squareRoot() : .nan
                var note: String?
                if cut < 0.05 {
                    note = coverage < 0.2
                        ? String(format: "only %.0f %% of these users were active before the start: little to adjust with", 100 * coverage)
                        : String(format: "the pre-period %@ barely predicts the in-experiment one (within-arm r = %.2f)", m,
                                 sxx > 0 && syy > 0 ? sxy / (sxx * syy).squareRoot() : 0)
                }
                let cp = twoSidedP(ad, asd)
                var effect = Effect(variant: v, metric: m, control: mc, treatment: mt, difference: d, low: d - 1.96 * sd,
                                    high: d + 1.96 * sd, lift: lift, liftLow: lift - 1.96 * liftSE, liftHigh: lift + 1.96 * liftSE,
                                    cupedDifference: ad, cupedLow: ad - 1.96 * asd, cupedHigh: ad + 1.96 * asd,
                                    varianceReduction: cut, p: twoSidedP(d, sd), cupedP: cp, decisionP: cp, primary: m == primary,
                                    preCoverage: coverage, cupedNote: note)
                let sq = alwaysValid(ad, se: asd, tau: sequentialTau * abs(mc))
                (effect.sequentialLow, effect.sequentialHigh, effect.sequentialP) = sq
                effect.usersNeeded = powerZ * powerZ * asd * asd * Double(pair.count) / (ad * ad)
                effects.append(effect)
            }
        }
        // Guardrails (users who reported the metric; higher is worse).
        var guardrails: [Guardrail] = []
        for m in guardrailMetrics {
            let cu = (byArm[control] ?? []).compactMap { during[$0]!.values[m] }
            guard !cu.isEmpty else { continue }
            for v in names.dropFirst() {
                let tr = (byArm[v] ?? []).compactMap { during[$0]!.values[m] }
                guard !tr.isEmpty else { continue }
                let (mc, sc) = meanSE(cu), (mt, st) = meanSE(tr)
                let d = mt - mc, sd = (sc * sc + st * st).squareRoot()
                let margin = guardrailMargin * mc
                let low = d - 1.96 * sd, high = d + 1.96 * sd
                let status = d > margin && low > 0 ? "failed" : d > margin ? "warning" : "ok"
                guardrails.append(Guardrail(variant: v, metric: m, control: mc, treatment: mt, difference: d, low: low, high: high,
                                            margin: margin, status: status))
            }
        }
        // Page latency p99 per arm: a bootstrap interval of the difference over pages.
        if let cl = latencies[control], !cl.isEmpty {
            for v in names.dropFirst() {
                guard let tl = latencies[v], !tl.isEmpty else { continue }
                let (mc, mt) = (p99(cl), p99(tl))
                var g = SeededGenerator(seed: 42)
                var diffs: [Double] = []
                for _ in 0..<400 {
                    let a = (0..<cl.count).map { _ in cl[Int(g.next() % UInt64(cl.count))] }
                    let b = (0..<tl.count).map { _ in tl[Int(g.next() % UInt64(tl.count))] }
                    diffs.append(p99(b) - p99(a))
                }
                diffs.sort()
                let (low, high) = (diffs[9], diffs[389])
                let d = mt - mc, margin = guardrailMargin * mc
                let status = d > margin && low > 0 ? "failed" : d > margin ? "warning" : "ok"
                guardrails.append(Guardrail(variant: v, metric: "latency_p99_ms", control: mc, treatment: mt, difference: d, low: low,
                                            high: high, margin: margin, status: status))
            }
        }
        // Holm over every effect but the primary metric's.
        let rest = effects.indices.filter { !effects[$0].primary }
        for (i, adjusted) in zip(rest, holm(rest.map { effects[$0].cupedP })) { effects[i].decisionP = adjusted }
        return ExperimentReport(experiment: experiment, primary: primary, arms: arms, effects: effects, guardrails: guardrails,
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

    /// Two-sided p of a normal estimate d with standard error se (NaN without data).
    public static func twoSidedP(_ d: Double, _ se: Double) -> Double {
        guard d.isFinite, se.isFinite else { return .nan }
        guard se > 0 else { return d == 0 ? 1 : 0 }
        return erfc(abs(d) / se / 2.0.squareRoot())
    }

    /// Holm's step-down adjustment (family-wise error): p-values in the order given.
    public static func holm(_ p: [Double]) -> [Double] {
        let order = p.indices.sorted { (p[$0].isNaN ? 2 : p[$0]) < (p[$1].isNaN ? 2 : p[$1]) }
        var out = [Double](repeating: .nan, count: p.count)
        var running = 0.0
        for (rank, i) in order.enumerated() where !p[i].isNaN {
            running = max(running, min(1, Double(p.count - rank) * p[i]))
            out[i] = running
        }
        return out
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

