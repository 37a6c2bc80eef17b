import XCTest
import Foundation
import CandidateStore
import Interactions
import EventLog
import TestSupport
@testable import Workbench

final class ExperimentReportTests: XCTestCase {
    let exp = Experiment(name: "e", salt: "s", status: .stopped,
                         variants: [.init(name: "control", generation: 1, weight: 1), .init(name: "treatment", generation: 2, weight: 1)],
                         createdAt: 0, startedAt: 100, stoppedAt: 200)

    func testChiSquareSurvivalMatchesTables() {
        // 95th percentiles of chi-square with 1, 2, 3 and 10 degrees of freedom.
        XCTAssertEqual(ExperimentReport.chiSquareSurvival(3.841459, degrees: 1), 0.05, accuracy: 1e-6)
        XCTAssertEqual(ExperimentReport.chiSquareSurvival(5.991465, degrees: 2), 0.05, accuracy: 1e-6)
        XCTAssertEqual(ExperimentReport.chiSquareSurvival(7.814728, degrees: 3), 0.05, accuracy: 1e-6)
        XCTAssertEqual(ExperimentReport.chiSquareSurvival(18.307038, degrees: 10), 0.05, accuracy: 1e-6)
        XCTAssertEqual(ExperimentReport.chiSquareSurvival(10.827566, degrees: 1), 0.001, accuracy: 1e-7)
        XCTAssertEqual(ExperimentReport.chiSquareSurvival(0, degrees: 4), 1)
    }

    func testSampleRatioMismatchIsFlaggedOnABrokenSplit() {
        XCTAssertFalse(ExperimentReport.sampleRatio(observed: [5_000, 5_000], weights: [1, 1]).mismatch)
        XCTAssertFalse(ExperimentReport.sampleRatio(observed: [5_040, 4_960], weights: [1, 1]).mismatch)
        // (5000 - 4800)^2 / 4800 + (4600 - 4800)^2 / 4800 = 16.67, p = 4.5e-5.
        let broken = ExperimentReport.sampleRatio(observed: [5_000, 4_600], weights: [1, 1])
        XCTAssertEqual(broken.chiSquare, 16.6667, accuracy: 1e-3)
        XCTAssertTrue(broken.mismatch)
        XCTAssertFalse(ExperimentReport.sampleRatio(observed: [2_000, 8_000], weights: [20, 80]).mismatch)
        // Whole analysis: a treatment arm that lost a tenth of its users (broken logging) is flagged.
        var g = SeededGenerator(seed: 3)
        var during: [String: (variant: String, values: [String: Double])] = [:]
        for u in 0..<20_000 {
            let user = "u\(u)"
            let v = exp.variant(for: user).name
            if v == "treatment" && g.unit() < 0.1 { continue }
            during[user] = (v, ["like_rate": 0.1, "completion_rate": 0.1, "watch_s_per_impression": 10, "impressions": 10])
        }
        XCTAssertTrue(ExperimentReport.analyse(exp, during: during, before: [:]).sampleRatio.mismatch)
    }

    func testEffectsAndCUPEDOnAPlantedDifference() {
        // y = x + 0.02 (treatment) + small noise; x (the user's pre-period rate) varies a lot.
        var g = SeededGenerator(seed: 9)
        var during: [String: (variant: String, values: [String: Double])] = [:], before: [String: [String: Double]] = [:]
        for u in 0..<4_000 {
            let user = "p\(u)"
            let v = exp.variant(for: user).name
            let x = 0.3 * g.unit()
            let y = x + (v == "treatment" ? 0.02 : 0) + 0.01 * (g.unit() - 0.5)
            during[user] = (v, ["like_rate": y, "completion_rate": y, "watch_s_per_impression": 10 * y, "impressions": 5])
            before[user] = ["like_rate": x, "completion_rate": x, "watch_s_per_impression": 10 * x]
        }
        let r = ExperimentReport.analyse(exp, during: during, before: before)
        XCTAssertEqual(r.arms.map(\.users).reduce(0, +), 4_000)
        XCTAssertEqual(r.arms.map(\.impressions).reduce(0, +), 20_000)
        let e = r.effects.first { $0.metric == "like_rate" }!
        XCTAssertEqual(e.difference, e.treatment - e.control, accuracy: 1e-12)
        XCTAssertEqual(e.lift, e.difference / e.control, accuracy: 1e-12)
        // Raw: the interval is wide (x dominates); CUPED removes x and pins the 0.02.
        XCTAssertGreaterThan(e.varianceReduction, 0.95)
        XCTAssertEqual(e.cupedDifference, 0.02, accuracy: 0.001)
        XCTAssertLessThan(e.cupedHigh - e.cupedLow, (e.high - e.low) / 4)
        XCTAssertTrue(e.cupedLow > 0.018 && e.cupedHigh < 0.022)
        XCTAssertTrue(e.low < e.difference && e.difference < e.high)
        // MDE at 80 % power: 2.80 CUPED standard errors (the interval is +-1.96 of them).
        XCTAssertEqual(e.minimumDetectable, (e.cupedHigh - e.cupedLow) / 2 * 2.801585 / 1.959964, accuracy: 1e-9)
        XCTAssertLessThan(e.minimumDetectable, 0.02, "the planted 0.02 is detectable")
        // Users without a pre-period get no adjustment rather than a wrong one.
        before = [:]
        let none = ExperimentReport.analyse(exp, during: during, before: before).effects.first { $0.metric == "like_rate" }!
        XCTAssertEqual(none.cupedDifference, none.difference, accuracy: 1e-12)
        XCTAssertEqual(none.varianceReduction, 0, accuracy: 1e-12)
        XCTAssertTrue(none.cupedNote?.contains("0 % of these users were active before the start") == true, none.cupedNote ?? "nil")
        XCTAssertNil(e.cupedNote)
    }

    /// Skip and hide rates are guardrails: a variant that skips far more fails, a same-rate one passes.
    func testGuardrailsFlagAVariantThatIsWorseBeyondTheMargin() {
        var g = SeededGenerator(seed: 5)
        var during: [String: (variant: String, values: [String: Double])] = [:]
        for u in 0..<6_000 {
            let user = "g\(u)"
            let v = exp.variant(for: user).name
            let skip = (v == "treatment" ? 0.30 : 0.20) + 0.05 * (g.unit() - 0.5)
            let hide = 0.02 + 0.01 * (g.unit() - 0.5)
            during[user] = (v, ["like_rate": 0.1, "completion_rate": 0.3, "watch_s_per_impression": 8, "skip_rate": skip,
                                "hide_rate": hide, "impressions": 10])
        }
        let r = ExperimentReport.analyse(exp, during: during, before: [:], guardrailMargin: 0.05)
        let skip = r.guardrails.first { $0.metric == "skip_rate" }!, hide = r.guardrails.first { $0.metric == "hide_rate" }!
        XCTAssertEqual(skip.difference, 0.10, accuracy: 0.005)
        XCTAssertEqual(skip.margin, 0.05 * skip.control, accuracy: 1e-12)
        XCTAssertEqual(skip.status, "failed")
        XCTAssertEqual(hide.status, "ok")
        // A worse estimate that is not significant only warns: control 0.1, 0.3, 0.1, 0.3 (mean 0.2),
        // variant 0, 0.5, 0, 0.5 (mean 0.25): +0.05 is past the 0.01 margin, the interval spans 0.
        let names = (0..<200).map { "w\($0)" }
        let cu = names.filter { exp.variant(for: $0).name == "control" }.prefix(4)
        let tr = names.filter { exp.variant(for: $0).name == "treatment" }.prefix(4)
        var few: [String: (variant: String, values: [String: Double])] = [:]
        for (k, u) in cu.enumerated() { few[u] = ("control", ["like_rate": 0, "completion_rate": 0, "watch_s_per_impression": 0, "skip_rate": k % 2 == 0 ? 0.1 : 0.3, "hide_rate": 0]) }
        for (k, u) in tr.enumerated() { few[u] = ("treatment", ["like_rate": 0, "completion_rate": 0, "watch_s_per_impression": 0, "skip_rate": k % 2 == 0 ? 0 : 0.5, "hide_rate": 0]) }
        let w = ExperimentReport.analyse(exp, during: few, before: [:]).guardrails.first { $0.metric == "skip_rate" }!
        XCTAssertEqual(w.difference, 0.05, accuracy: 1e-12)
        XCTAssertLessThan(w.low, 0)
        XCTAssertEqual(w.status, "warning")
    }

    /// From a real event log over three days: a novelty effect (treatment completes twice as
    /// often on day 1 only) shows in the daily rows and fades in the cumulative ones.
    func testResultsOverTimeShowANoveltyEffectFading() throws {
        let dir = Fixtures.tempDir("timeline")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try EventLog(directory: dir, access: .append)
        let start: Int64 = 1_000_000_000_000, day: Int64 = 86_400_000
        var drafts: [EventDraft] = []
        for u in 0..<400 {
            let user = "t\(u)", note = exp.annotation(for: user)
            let treated = exp.variant(for: user).name == "treatment"
            for d in 0..<3 {
                for k in 0..<10 {
                    let video = "d\(d)v\(k)", t = start + Int64(d) * day + Int64(u * 10 + k)
                    drafts.append(EventDraft(user: user, video: video, type: .view, watchMs: 1_000, timeMs: t, extra: note))
                    let completes = d == 0 && treated ? k < 6 : k < 3
                    if completes { drafts.append(EventDraft(user: user, video: video, type: .complete, watchMs: 5_000, timeMs: t, extra: note)) }
                }
            }
        }
        _ = try log.appendSync(drafts)
        let started = Experiment(name: "e", salt: "s", status: .stopped, variants: exp.variants, createdAt: 0, startedAt: start,
                                 stoppedAt: start + 3 * day)
        let r = try ExperimentReport.analyse(started, log: log)
        log.close()
        func effect(_ day: Int, _ cumulative: Bool) -> ExperimentReport.Effect {
            r.timeline.first { $0.day == day && $0.cumulative == cumulative }!.effects.first { $0.metric == "completion_rate" }!
        }
        XCTAssertEqual(r.timeline.count, 6)
        XCTAssertEqual(effect(0, false).difference, 0.3, accuracy: 1e-9)
        XCTAssertEqual(effect(1, false).difference, 0, accuracy: 1e-9)
        XCTAssertEqual(effect(2, false).difference, 0, accuracy: 1e-9)
        XCTAssertEqual(effect(0, true).difference, 0.3, accuracy: 1e-9)
        XCTAssertEqual(effect(2, true).difference, 0.1, accuracy: 1e-9, "30 videos, 3 more completions in the first 10")
        XCTAssertEqual(r.effects.first { $0.metric == "completion_rate" }!.difference, 0.1, accuracy: 1e-9)
        XCTAssertTrue(r.timeline.allSatisfy { $0.users == 400 })
    }

    func testPValuesAndHolmAgainstHandComputedCases() {
        XCTAssertEqual(ExperimentReport.twoSidedP(1.959964, 1), 0.05, accuracy: 1e-6)
        XCTAssertEqual(ExperimentReport.twoSidedP(-2.575829, 1), 0.01, accuracy: 1e-6)
        XCTAssertEqual(ExperimentReport.twoSidedP(0, 0.3), 1, accuracy: 1e-12)
        XCTAssertTrue(ExperimentReport.twoSidedP(.nan, 1).isNaN)
        // Holm: sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04).
        let h = ExperimentReport.holm([0.01, 0.04, 0.03])
        for (a, b) in zip(h, [0.03, 0.06, 0.06]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        XCTAssertEqual(ExperimentReport.holm([0.5, 0.9]), [1, 1])
    }

    /// A real effect must not shrink CUPED's variance cut (pooled across arms it would: the
    /// effect inflates var(y)); the primary metric's p stands, the others are Holm-adjusted.
    func testCUPEDIsWithinArmsAndOnlyThePrimaryMetricEscapesHolm() {
        var g = SeededGenerator(seed: 11)
        var during: [String: (variant: String, values: [String: Double])] = [:], before: [String: [String: Double]] = [:]
        var ys: [Double] = [], xs: [Double] = []
        for u in 0..<4_000 {
            let user = "q\(u)"
            let v = exp.variant(for: user).name
            let x = 0.1 * g.unit()
            let y = x + (v == "treatment" ? 0.3 : 0) + 0.005 * (g.unit() - 0.5)
            during[user] = (v, ["like_rate": y, "completion_rate": 0.5 + 0.01 * g.unit(), "watch_s_per_impression": 10 * y, "impressions": 5])
            before[user] = ["like_rate": x, "completion_rate": 0.5, "watch_s_per_impression": 10 * x]
            ys.append(y); xs.append(x)
        }
        let r = ExperimentReport.analyse(exp, during: during, before: before, primary: "like_rate")
        let like = r.effects.first { $0.metric == "like_rate" }!
        // Within arms y - x is noise alone: the cut is nearly all of the within-arm variance.
        XCTAssertGreaterThan(like.varianceReduction, 0.97)
        // Pooled over both arms the same covariate explains little of var(y), which the effect dominates.
        let mx = xs.reduce(0, +) / Double(xs.count), my = ys.reduce(0, +) / Double(ys.count)
        let cov = zip(xs, ys).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }, vx = xs.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }
        let vy = ys.reduce(0) { $0 + ($1 - my) * ($1 - my) }
        XCTAssertLessThan(cov * cov / (vx * vy), 0.2, "the pooled cut this replaces")
        XCTAssertTrue(like.primary)
        XCTAssertEqual(like.decisionP, like.cupedP)
        XCTAssertTrue(like.significant)
        let others = r.effects.filter { !$0.primary }
        XCTAssertEqual(others.count, 2)
        let adjusted = ExperimentReport.holm(others.map(\.cupedP))
        for (o, a) in zip(others, adjusted) { XCTAssertEqual(o.decisionP, a, accuracy: 1e-12) }
        // completion_rate does not move and its pre-period is constant: not significant, and the note says why CUPED cut nothing.
        let completion = r.effects.first { $0.metric == "completion_rate" }!
        XCTAssertFalse(completion.significant)
        XCTAssertTrue(completion.cupedNote?.contains("barely predicts") == true, completion.cupedNote ?? "nil")
    }

    /// The mSPRT interval and p against a hand computation (V = 1e-4, tau = 0.015, d = 0.02):
    /// Lambda = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2))).
    func testAlwaysValidIntervalAgainstHandComputation() {
        let r = ExperimentReport.alwaysValid(0.02, se: 0.01, tau: 0.015)
        XCTAssertEqual(r.p, 0.4514512495178554, accuracy: 1e-12)
        XCTAssertEqual(r.low, -0.012182043658752233, accuracy: 1e-12)
        XCTAssertEqual(r.high, 0.05218204365875223, accuracy: 1e-12)
        XCTAssertTrue(ExperimentReport.alwaysValid(0.02, se: 0, tau: 0.015).p.isNaN)
    }

    /// Why it exists: under no effect, read at 20 looks, the fixed-horizon interval excludes 0 at
    /// some look far more often than 5 %; the always-valid one at most 5 % of the time.
    func testAlwaysValidIntervalsHoldAcrossRepeatedLooks() {
        var g = SeededGenerator(seed: 3)
        func normal() -> Double {
            let u1 = max(1e-12, Double(g.next() >> 11) * 0x1.0p-53), u2 = Double(g.next() >> 11) * 0x1.0p-53
            return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
        var fixedCross = 0, sequentialCross = 0
        let streams = 1_000
        for _ in 0..<streams {
            var sum = 0.0, n = 0, fixed = false, sequential = false
            for _ in 0..<20 {
                for _ in 0..<50 { sum += normal(); n += 1 }
                let d = sum / Double(n), se = 1 / Double(n).squareRoot()
                if abs(d) > 1.959964 * se { fixed = true }
                let a = ExperimentReport.alwaysValid(d, se: se, tau: 0.1)
                if a.low > 0 || a.high < 0 { sequential = true }
            }
            if fixed { fixedCross += 1 }
            if sequential { sequentialCross += 1 }
        }
        XCTAssertGreaterThan(Double(fixedCross) / Double(streams), 0.15, "peeking at fixed-horizon intervals")
        XCTAssertLessThanOrEqual(Double(sequentialCross) / Double(streams), 0.05, "always-valid intervals")
    }

    /// The server's exposures are the denominator (not the videos with a client event), and its
    /// own health per variant is a guardrail: hand-computed on four users.
    func testExposuresAreTheDenominatorAndTheServersHealthAGuardrail() throws {
        let dir = Fixtures.tempDir("exposures")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try EventLog(directory: dir, access: .append)
        let t: Int64 = 150
        var users: [String: String] = [:]  // a control and a treatment user, twice
        for u in 0..<200 where users.count < 4 {
            let v = exp.variant(for: "u\(u)").name
            if users.values.filter({ $0 == v }).count < 2 { users["u\(u)"] = v }
        }
        let control = users.filter { $0.value == "control" }.keys.sorted(), treated = users.filter { $0.value == "treatment" }.keys.sorted()
        var drafts: [EventDraft] = [], exposures: [Exposure] = []
        for u in control + treated {
            let note = exp.annotation(for: u), arm = users[u]!
            // Served 10 videos over two pages (the second has 2 from trending); the client reported 5, completed 3.
            exposures.append(Exposure(user: u, timeMs: t, experiment: "e", variant: arm, videos: (0..<5).map { "a\($0)" },
                                      latencyUs: arm == "control" ? 2_000 : 8_000))
            exposures.append(Exposure(user: u, timeMs: t, experiment: "e", variant: arm, videos: (0..<5).map { "b\($0)" }, fallback: 2,
                                      latencyUs: arm == "control" ? 3_000 : 9_000))
            for k in 0..<5 { drafts.append(EventDraft(user: u, video: "a\(k)", type: .view, watchMs: 1_000, timeMs: t, extra: note)) }
            for k in 0..<3 { drafts.append(EventDraft(user: u, video: "a\(k)", type: .complete, watchMs: 1_000, timeMs: t, extra: note)) }
        }
        // A completion on a video the server never served them (reached outside the feed) is not counted.
        drafts.append(EventDraft(user: control[0], video: "elsewhere", type: .complete, watchMs: 1_000, timeMs: t,
                                 extra: exp.annotation(for: control[0])))
        // One treatment user's third request failed.
        exposures.append(Exposure(user: treated[0], timeMs: t, experiment: "e", variant: "treatment", videos: [], latencyUs: 50_000,
                                  error: true))
        exposures.append(Exposure(user: "other", timeMs: t, experiment: "another", variant: "x", videos: ["z"]))
        _ = try log.appendSync(drafts)
        let r = try ExperimentReport.analyse(exp, log: log, exposures: exposures)
        let without = try ExperimentReport.analyse(exp, log: log)
        log.close()
        XCTAssertTrue(r.fromExposures)
        XCTAssertFalse(without.fromExposures)
        for a in r.arms {
            XCTAssertEqual(a.users, 2)
            XCTAssertEqual(a.impressions, 20)
            XCTAssertEqual(a.means["completion_rate"]!, 0.3, accuracy: 1e-12, "3 completions of 10 served")
            XCTAssertEqual(a.pages, a.name == "control" ? 4 : 5)
        }
        // Without exposures: the videos with a client event (the first control user's 6 include the
        // one from elsewhere, 4 completed).
        XCTAssertEqual(without.arms[0].means["completion_rate"]!, (4.0 / 6 + 3.0 / 5) / 2, accuracy: 1e-12)
        XCTAssertEqual(r.arms[0].latencyP99Ms, 3, accuracy: 1e-12)
        XCTAssertEqual(r.arms[1].latencyP99Ms, 50, accuracy: 1e-12)
        func guardrail(_ m: String) -> ExperimentReport.Guardrail { r.guardrails.first { $0.metric == m }! }
        XCTAssertEqual(guardrail("fallback_share").control, 0.2, accuracy: 1e-12)
        XCTAssertEqual(guardrail("error_rate").treatment, (1.0 / 3 + 0) / 2, accuracy: 1e-12)
        XCTAssertEqual(guardrail("latency_p99_ms").difference, 47, accuracy: 1e-12)
        XCTAssertNotEqual(guardrail("latency_p99_ms").status, "ok")
        XCTAssertFalse(without.guardrails.contains { $0.metric == "error_rate" || $0.metric == "latency_p99_ms" })
        // Users needed: the sample at which the observed difference is the minimum detectable one.
        for x in r.effects where x.usersNeeded.isFinite {
            XCTAssertEqual(x.minimumDetectable * (4 / x.usersNeeded).squareRoot(), abs(x.cupedDifference), accuracy: 1e-9)
        }
    }

    /// An interleaving test's preference, hand-computed: per user with credit,
    /// (credit B - credit A) / (credit A + credit B), averaged.
    func testInterleavingPreferenceAgainstHandComputation() throws {
        let dir = Fixtures.tempDir("interleaving")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let il = Experiment(name: "il", salt: "s", status: .stopped, variants: exp.variants, createdAt: 0, startedAt: 100,
                            stoppedAt: 200, kind: .interleave)
        let log = try EventLog(directory: dir, access: .append)
        let note = il.annotation(for: "any")
        XCTAssertEqual(note, #"{"exp":"il","var":"interleaved"}"#)
        func ev(_ u: String, _ v: String, _ t: EventType) -> EventDraft { EventDraft(user: u, video: v, type: t, timeMs: 150, extra: note) }
        _ = try log.appendSync([ev("u1", "v1", .complete), ev("u1", "v1", .like), ev("u1", "v2", .complete), ev("u1", "v9", .like),
                                ev("u2", "v4", .complete), ev("u3", "v5", .view), ev("u4", "v6", .like), ev("u4", "v7", .complete)])
        func x(_ u: String, _ v: [String], _ t: [Int]) -> Exposure {
            Exposure(user: u, timeMs: 150, experiment: "il", variant: Experiment.interleaved, videos: v, teams: t)
        }
        let r = try ExperimentReport.analyse(il, log: log, exposures: [x("u1", ["v1", "v2", "v3", "v9"], [0, 1, 0, -1]),
                                                                      x("u2", ["v4"], [1]), x("u3", ["v5"], [0]),
                                                                      x("u4", ["v6", "v7"], [0, 1])])
        log.close()
        let p = try XCTUnwrap(r.interleaving)
        XCTAssertEqual([p.users, p.credited, p.creditA, p.creditB, p.winsA, p.winsB, p.ties], [4, 3, 3, 3, 1, 1, 1])
        XCTAssertEqual(p.preference, 0.22222222222222224, accuracy: 1e-12)
        XCTAssertEqual(p.low, -0.5629867222121577, accuracy: 1e-9)
        XCTAssertEqual(p.high, 1.0074311666566023, accuracy: 1e-9)
        XCTAssertEqual(p.usersNeeded, 102.03542065892502, accuracy: 1e-6)
    }

    /// The HTML page: tables and one over-time panel per metric, with a band and a point per day.
    func testTheHTMLPageHasOverTimePanels() throws {
        let dir = Fixtures.tempDir("page")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try EventLog(directory: dir, access: .append)
        let start: Int64 = 1_000_000_000_000, day: Int64 = 86_400_000
        var drafts: [EventDraft] = []
        for u in 0..<200 {
            let user = "t\(u)", note = exp.annotation(for: user), treated = exp.variant(for: user).name == "treatment"
            for d in 0..<4 {
                for k in 0..<5 {
                    let v = "d\(d)v\(k)", t = start + Int64(d) * day + Int64(u)
                    drafts.append(EventDraft(user: user, video: v, type: .view, watchMs: 1_000, timeMs: t, extra: note))
                    if k < (treated && d < 2 ? 3 : 2) || (u + k) % 7 == 0 {
                        drafts.append(EventDraft(user: user, video: v, type: .complete, watchMs: 1_000, timeMs: t, extra: note))
                    }
                }
            }
        }
        _ = try log.appendSync(drafts)
        let e = Experiment(name: "e", salt: "s", status: .stopped, variants: exp.variants, createdAt: 0, startedAt: start,
                           stoppedAt: start + 4 * day)
        let page = ExperimentPage.render(try ExperimentReport.analyse(e, log: log))
        log.close()
        XCTAssertEqual(page.components(separatedBy: "<svg").count - 1, ExperimentReport.metrics.count)
        XCTAssertTrue(page.contains("completion_rate: treatment minus control"))
        XCTAssertEqual(page.components(separatedBy: "<polygon").count - 1, ExperimentReport.metrics.count, "one band per panel")
        XCTAssertTrue(page.contains(">day 4<"))
        XCTAssertFalse(page.contains("nan"))
        if let out = ProcessInfo.processInfo.environment["FORYOU_PAGE_OUT"] { try page.write(toFile: out, atomically: true, encoding: .utf8) }
        // Checked in headless Chromium: it renders (inked, in colour) and logs nothing.
        let shot = try WorkbenchTests.render(page, dir: dir, name: "experiment")
        XCTAssertEqual(shot.console, [], "console messages")
        XCTAssertGreaterThan(shot.inked, 0.02, "the screenshot is blank")
        XCTAssertGreaterThan(shot.colours, 10)
    }
}
