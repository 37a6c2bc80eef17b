import Foundation
import Artifacts

/// An online experiment's report as one self-contained HTML page (inline SVG and CSS, no script):
/// the arms, every effect with its fixed-horizon and always-valid intervals, the guardrails, and
/// per metric a panel of the effect over time: each day alone (points) and from the start through
/// the day (line, with its 95 % band), which is where a novelty effect shows as a daily effect
/// that fades. An interleaving test gets its preference instead.
public enum ExperimentPage {
    public static func render(_ r: ExperimentReport) -> String {
        let e = r.experiment
        let esc = Report.esc
        var body = "<h1>Experiment \(esc(e.name))</h1>\n<p class=note>\(esc(e.kind == .interleave ? "interleaving test" : "A/B test")), "
            + "\(esc(e.status.rawValue)); generated \(esc(UTCStamp.iso8601())) by foryou "
            + "\(esc(CodeVersion.semantic)).</p>\n"
        if let il = r.interleaving {
            body += "<h2>Preference</h2>\n<table><tr><th>users served drafted videos</th><th>with credit</th><th>credit A</th>"
                + "<th>credit B</th><th>A wins</th><th>B wins</th><th>ties</th><th>preference for B [95 %]</th><th>p</th>"
                + "<th>users needed (80 %)</th></tr>\n"
            body += row([String(il.users), String(il.credited), String(il.creditA), String(il.creditB), String(il.winsA),
                          String(il.winsB), String(il.ties), f("%+.4f [%+.4f, %+.4f]", il.preference, il.low, il.high),
                          f("%.4g", il.p), f("%.0f", il.usersNeeded)]) + "</table>\n"
            body += "<p class=note>A = \(esc(e.variants[0].name)) (generation \(e.variants[0].generation)), B = "
                + "\(esc(e.variants[1].name)) (generation \(e.variants[1].generation)). Credit: completions and likes on the videos "
                + "each side drafted; per user (B - A) / (A + B), averaged over users with credit.</p>\n"
            return page(e.name, body)
        }
        body += "<h2>Arms</h2>\n<table><tr><th>variant</th><th>users</th><th>impressions</th><th>pages</th><th>latency p99</th>"
        body += ExperimentReport.metrics.map { "<th>\(esc($0)) [95 %]</th>" }.joined() + "</tr>\n"
        for a in r.arms {
            var cells = [esc(a.name), String(a.users), String(a.impressions), String(a.pages), f("%.1f ms", a.latencyP99Ms)]
            for m in ExperimentReport.metrics { cells.append(f("%.4f ± %.4f", a.means[m] ?? .nan, a.halfWidths[m] ?? .nan)) }
            body += row(cells)
        }
        body += "</table>\n<p class=note>Impressions: "
            + (r.fromExposures ? "the videos the server served (exposure log)." : "videos with a client event (no exposures recorded).")
            + " Primary metric: \(esc(r.primary)) (its p as is; the others Holm-adjusted).</p>\n"
        body += "<h2>Effects against \(esc(e.variants[0].name))</h2>\n<table><tr><th>variant</th><th>metric</th>"
            + "<th>CUPED difference [95 %]</th><th>lift [95 %]</th><th>decision p</th><th>always-valid [95 %]</th>"
            + "<th>always-valid p</th><th>users needed (80 %)</th></tr>\n"
        for x in r.effects {
            let cls = x.significant ? (x.cupedDifference > 0 ? "pos" : "neg") : ""
            let metric = esc(x.metric) + (x.primary ? " (primary)" : "")
            let cuped = f("%+.4f [%+.4f, %+.4f]", x.cupedDifference, x.cupedLow, x.cupedHigh)
            let lift = f("%+.1f%% [%+.1f%%, %+.1f%%]", 100 * x.lift, 100 * x.liftLow, 100 * x.liftHigh)
            let seq = f("[%+.4f, %+.4f]", x.sequentialLow, x.sequentialHigh)
            body += row([esc(x.variant), metric, cuped, lift, f("%.4f", x.decisionP), seq, f("%.4f", x.sequentialP),
                         f("%.0f", x.usersNeeded)], classes: [2: cls])
        }
        body += "</table>\n"
        if !r.guardrails.isEmpty {
            body += "<h2>Guardrails</h2>\n<table><tr><th>guardrail</th><th>variant</th><th>control</th><th>variant value</th>"
                + "<th>difference [95 %]</th><th>margin</th><th>status</th></tr>\n"
            for g in r.guardrails {
                body += row([esc(g.metric), esc(g.variant), f("%.4f", g.control), f("%.4f", g.treatment),
                             f("%+.4f [%+.4f, %+.4f]", g.difference, g.low, g.high), f("+%.4f", g.margin), esc(g.status)],
                            classes: [6: g.status == "ok" ? "" : "neg"])
            }
            body += "</table>\n"
        }
        body += "<h2>Over time</h2>\n"
        let days = Set(r.timeline.map(\.day)).sorted()
        if days.isEmpty {
            body += "<p class=note>No data yet.</p>\n"
        } else {
            body += "<p class=note>CUPED difference per day alone (points) and from the start through the day (line, 95 % band). "
                + "A daily effect that fades while the cumulative one settles is a novelty effect.</p>\n"
            for v in e.variants.dropFirst() {
                for m in ExperimentReport.metrics { body += overTime(r, variant: v.name, metric: m, days: days) }
            }
        }
        return page(e.name, body)
    }

    /// A table row; `classes`: a CSS class for some cells (by index).
    static func row(_ cells: [String], classes: [Int: String] = [:]) -> String {
        var s = "<tr>"
        for (i, c) in cells.enumerated() {
            let cls = classes[i].map { $0.isEmpty ? "" : " class=\($0)" } ?? ""
            s += "<td" + cls + ">" + c + "</td>"
        }
        return s + "</tr>\n"
    }

    static func f(_ format: String, _ args: Double...) -> String {
        args.allSatisfy(\.isFinite) ? String(format: format, arguments: args) : "-"
    }

    static func page(_ name: String, _ body: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>experiment \(Report.esc(name))</title>
        <style>
        \(Report.style)
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    /// One metric's effect over the days: daily points, cumulative line with its band, zero line.
    static func overTime(_ r: ExperimentReport, variant: String, metric: String, days: [Int]) -> String {
        func series(_ cumulative: Bool) -> [(day: Int, d: Double, lo: Double, hi: Double)] {
            r.timeline.filter { $0.cumulative == cumulative }.compactMap { p in
                p.effects.first { $0.variant == variant && $0.metric == metric }.map { (p.day, $0.cupedDifference, $0.cupedLow, $0.cupedHigh) }
            }.filter { $0.d.isFinite }
        }
        let daily = series(false), cumulative = series(true)
        let values = (daily.flatMap { [$0.d] } + cumulative.flatMap { [$0.lo, $0.hi, $0.d] }).filter(\.isFinite) + [0]
        guard let lo0 = values.min(), let hi0 = values.max() else { return "" }
        // A flat series (no effect, a metric nobody moved) still gets a readable axis.
        let pad = hi0 - lo0 < 1e-9 ? max(0.01, abs(hi0) * 0.1) : (hi0 - lo0) * 0.08
        let lo = lo0 - pad, hi = hi0 + pad
        let w = 640.0, h = 220.0, left = 64.0, right = 20.0, top = 24.0, bottom = 34.0
        let first = days.first!, last = days.last!
        func x(_ d: Int) -> Double { left + (last == first ? 0.5 : Double(d - first) / Double(last - first)) * (w - left - right) }
        func y(_ v: Double) -> Double { top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom) }
        let title = "\(metric): \(variant) minus control"
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"\(Report.esc(title))\">"
        s += "<rect x=\"0\" y=\"0\" width=\"\(Int(w))\" height=\"\(Int(h))\" fill=\"#fafafa\"/>"
        s += "<text x=\"\(Int(left))\" y=\"16\" font-size=\"13\" font-weight=\"bold\">\(Report.esc(title))</text>"
        for t in 0...4 {
            let v = lo + (hi - lo) * Double(t) / 4
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>", left, w - right, y(v), y(v))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%+.4f</text>", left - 4, y(v) + 3, v)
        }
        s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"4 3\"/>",
                    left, w - right, y(0), y(0))
        for d in days {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">day %d</text>", x(d), h - 18, d + 1)
        }
        if !cumulative.isEmpty {
            let band = cumulative.map { String(format: "%.1f,%.1f", x($0.day), y($0.hi)) }
                + cumulative.reversed().map { String(format: "%.1f,%.1f", x($0.day), y($0.lo)) }
            s += "<polygon fill=\"#1f77b4\" fill-opacity=\"0.15\" stroke=\"none\" points=\"\(band.joined(separator: " "))\"/>"
            s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\""
                + cumulative.map { String(format: "%.1f,%.1f", x($0.day), y($0.d)) }.joined(separator: " ") + "\"/>"
            for c in cumulative { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"#1f77b4\"/>", x(c.day), y(c.d)) }
        }
        for p in daily {
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-opacity=\"0.5\"/>",
                        x(p.day) + 4, x(p.day) + 4, y(p.lo), y(p.hi))
            s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>", x(p.day) + 4, y(p.d))
        }
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#1f77b4\">through the day</text>", w - right - 170, h - 4)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#d62728\">the day alone</text>", w - right - 80, h - 4)
        return s + "</svg>\n"
    }
}
