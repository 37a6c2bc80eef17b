import Foundation
import Artifacts
import Evaluation

/// One self-contained HTML page about some runs (and sweeps): metric table with bootstrap
/// intervals (and, against the first run, paired deltas), loss and metric curves by iteration,
/// sweep heat maps, and coverage with popularity bias (the share of recommendations that go to
/// each decile of item popularity). Inline SVG and CSS only: no script, no network.
public enum Report {
    public static func html(runs: [RunEntry], sweeps: [SweepRecord] = [], title: String = "foryou report",
                            resamples: Int = 10_000, seed: UInt64 = 42) throws -> String {
        var body = "<h1>\(esc(title))</h1>\n<p class=note>Generated \(esc(UTCStamp.iso8601())) by foryou "
            + "\(esc(CodeVersion.semantic)); \(runs.count) run(s), \(sweeps.count) sweep(s).</p>\n"
        body += runTable(runs)
        body += try metricTable(runs, resamples: resamples, seed: seed)
        body += curves(runs)
        body += featureImportance(runs)
        for s in sweeps { body += heatMap(s) }
        body += try popularityBias(runs)
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title>
        <style>
        \(style)
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    /// The pages' shared CSS.
    static let style = """
        body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; max-width: 1100px; }
        h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
        table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
        th:first-child, td:first-child { text-align: left; } .note { color: #666; } svg { display: block; margin: 8px 0; }
        .pos { color: #1a7f37; } .neg { color: #b42318; }
        """

    static func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]

    static func runTable(_ runs: [RunEntry]) -> String {
        var s = "<h2>Runs</h2>\n<table><tr><th>run</th><th>model</th><th>created</th><th>data</th><th>test set</th><th>parameters</th></tr>\n"
        for (i, e) in runs.enumerated() {
            let p = e.run.params.filter { !["validation_ndcg", "blend_grid"].contains($0.key) }.sorted { $0.key < $1.key }
                .map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            s += "<tr><td><span style=\"color:\(palette[i % palette.count])\">&#9632;</span> \(esc(e.id))</td><td>\(esc(e.run.model))</td>"
                + "<td>\(esc(e.run.createdAt))</td><td>\(esc(e.run.data.fingerprint))</td>"
                + "<td>\(esc(e.run.evaluation?.testFingerprint ?? "-"))</td><td style=\"text-align:left\">\(esc(p))</td></tr>\n"
        }
        return s + "</table>\n"
    }

    static func metricTable(_ runs: [RunEntry], resamples: Int, seed: UInt64) throws -> String {
        let evaluated = runs.filter { $0.run.evaluation != nil }
        guard !evaluated.isEmpty else { return "<h2>Metrics</h2>\n<p class=note>No run has a recorded evaluation.</p>\n" }
        var s = "<h2>Metrics on the test set</h2>\n<p class=note>Mean over test users with a bootstrap 95 % interval"
        if evaluated.count > 1 { s += "; &Delta; is each run minus \(esc(evaluated[0].id)), paired over users, with its interval and randomisation p" }
        s += "; \(resamples) resamples, seed \(seed)" + (resamples == 10_000 && seed == 42 ? " (the same as <code>foryou compare</code>'s defaults)" : "")
        s += ".</p>\n<table><tr><th>run</th>"
        let names = EvaluationRecord.metricNames
        let k = evaluated[0].run.evaluation!.k
        for n in names { s += "<th>\(n)@\(k)</th>" }
        if evaluated.count > 1 { s += "<th>&Delta; ndcg@\(k)</th><th>p</th>" }
        s += "</tr>\n"
        for (i, e) in evaluated.enumerated() {
            let rec = try EvaluationRecord.read(e.directory + "/" + e.run.evaluation!.perUserFile)
            s += "<tr><td>\(esc(e.id))</td>"
            for n in names {
                let iv = Paired.bootstrap(rec.metrics[n]!, resamples: resamples, seed: seed)
                s += String(format: "<td>%.4f <span class=note>[%.4f, %.4f]</span></td>", iv.mean, iv.low, iv.high)
            }
            if evaluated.count > 1 {
                if i == 0 {
                    s += "<td>-</td><td>-</td>"
                } else if let c = try? RunComparison.compare(evaluated[0], e, metrics: ["ndcg"], resamples: resamples, seed: seed),
                          let d = c.metrics.first {
                    let cls = d.interval.low > 0 ? "pos" : d.interval.high < 0 ? "neg" : ""
                    s += String(format: "<td class=\"%@\">%+.4f [%+.4f, %+.4f]</td><td>%.4f</td>", cls, d.interval.mean, d.interval.low,
                                d.interval.high, d.p)
                } else {
                    s += "<td colspan=2 class=note>not comparable (other data or test set)</td>"
                }
            }
            s += "</tr>\n"
        }
        return s + "</table>\n"
    }

    /// A line chart of named series over x = 1, 2, ...
    static func lineChart(_ series: [(name: String, color: String, values: [Double])], title: String, yLabel: String) -> String {
        let w = 640.0, h = 260.0, left = 60.0, right = 150.0, top = 24.0, bottom = 36.0
        let all = series.flatMap { $0.values.filter(\.isFinite) }
        guard let lo0 = all.min(), let hi0 = all.max(), let n = series.map(\.values.count).max(), n > 0 else { return "" }
        let pad = (hi0 - lo0) * 0.05 + (hi0 == lo0 ? max(abs(hi0) * 0.05, 1e-6) : 0)
        // Figures that cannot be negative (losses, metrics) get no negative tick.
        let lo = lo0 >= 0 ? max(0, lo0 - pad) : lo0 - pad, hi = hi0 + pad
        func x(_ i: Int) -> Double { left + (n == 1 ? 0.5 : Double(i) / Double(n - 1)) * (w - left - right) }
        func y(_ v: Double) -> Double { top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"\(esc(title))\">"
        s += "<rect x=\"0\" y=\"0\" width=\"\(Int(w))\" height=\"\(Int(h))\" fill=\"#fafafa\"/>"
        s += "<text x=\"\(Int(left))\" y=\"16\" font-size=\"13\" font-weight=\"bold\">\(esc(title))</text>"
        for t in 0...4 {
            let v = lo + (hi - lo) * Double(t) / 4
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, w - right, y(v), y(v))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.4g</text>", left - 4, y(v) + 3, v)
        }
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">iteration (1-%d)</text>",
                    (left + w - right) / 2, h - 8, n)
        s += "<text x=\"12\" y=\"\(Int(h / 2))\" font-size=\"11\" transform=\"rotate(-90 12 \(Int(h / 2)))\" text-anchor=\"middle\">\(esc(yLabel))</text>"
        for (j, ser) in series.enumerated() {
            let pts = ser.values.enumerated().filter { $0.element.isFinite }.map { String(format: "%.1f,%.1f", x($0.offset), y($0.element)) }
            if pts.count > 1 {
                s += "<polyline fill=\"none\" stroke=\"\(ser.color)\" stroke-width=\"2\" points=\"\(pts.joined(separator: " "))\"/>"
            }
            for p in pts { let c = p.split(separator: ","); s += "<circle cx=\"\(c[0])\" cy=\"\(c[1])\" r=\"2.5\" fill=\"\(ser.color)\"/>" }
            s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%@\"/>", w - right + 10, top + Double(j) * 16,
                        ser.color)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%@</text>", w - right + 24, top + Double(j) * 16 + 9,
                        esc(String(ser.name.prefix(22))))
        }
        return s + "</svg>\n"
    }

    static func curves(_ runs: [RunEntry]) -> String {
        var s = "<h2>Training curves</h2>\n"
        let losses = runs.enumerated().filter { !$0.element.run.losses.isEmpty }
            .map { (model: $0.element.run.model, name: $0.element.id, color: palette[$0.offset % palette.count], values: $0.element.run.losses) }
        var names = Set<String>()
        for e in runs { if let c = e.run.curves { names.formUnion(c.keys) } }
        if losses.isEmpty && names.isEmpty { return s + "<p class=note>No run recorded per-iteration figures.</p>\n" }
        // One panel per model family: their losses are on different scales (ALS's weighted squared
        // error per entry, the two-tower's softmax cross-entropy), and the two-tower counts epochs.
        for model in Set(losses.map(\.model)).sorted() {
            let step = model == "two-tower" || model == "blend" ? "epoch" : "iteration"
            s += lineChart(losses.filter { $0.model == model }.map { ($0.name, $0.color, $0.values) },
                           title: "\(model): training loss by \(step)", yLabel: "loss")
        }
        for n in names.sorted() {
            let series = runs.enumerated().compactMap { i, e in
                e.run.curves?[n].map { (name: e.id, color: palette[i % palette.count], values: $0) }
            }
            s += lineChart(series, title: n + " by epoch", yLabel: n)
        }
        return s
    }

    /// Heat map of the validation metric over the sweep's first two grid keys (best over the
    /// other keys, if any).
    /// A learned second stage's features by their share of the ranker's total split gain.
    static func featureImportance(_ runs: [RunEntry]) -> String {
        var s = ""
        for r in runs {
            guard let gains = r.run.featureImportance, !gains.isEmpty else { continue }
            let total = max(gains.values.reduce(0, +), 1e-12)
            if s.isEmpty { s = "<h2>Second-stage feature importance</h2>\n<p class=note>Share of the LambdaMART ranker's total split gain per feature.</p>\n" }
            s += "<table><tr><th>\(esc(r.id)): feature</th><th>share of gain</th><th></th></tr>\n"
            for (name, g) in gains.sorted(by: { $0.value > $1.value }) {
                let share = g / total
                s += String(format: "<tr><td>%@</td><td>%.1f %%</td><td style=\"text-align:left\"><span style=\"display:inline-block;height:9px;"
                            + "width:%.0fpx;background:#4c78a8\"></span></td></tr>\n", esc(name), 100 * share, 300 * share)
            }
            s += "</table>\n"
        }
        return s
    }

    static func heatMap(_ sweep: SweepRecord) -> String {
        let metric = "ndcg@\(sweep.spec.k)"
        var s = "<h2>Sweep \(esc(sweep.id))</h2>\n<p class=note>\(sweep.trials.count) trials, validation \(metric)"
        guard let kx = sweep.spec.keys.first else { return s + "</p>\n" }
        let ky = sweep.spec.keys.count > 1 ? sweep.spec.keys[1] : nil
        if sweep.spec.keys.count > 2 { s += "; each cell is the best over \(esc(sweep.spec.keys.dropFirst(2).joined(separator: ", ")))" }
        s += ".</p>\n"
        let xs = sweep.spec.values[0], ys = ky.map { k in sweep.spec.values[sweep.spec.keys.firstIndex(of: k)!] } ?? [""]
        var cell = [[Double?]](repeating: [Double?](repeating: nil, count: xs.count), count: ys.count)
        for t in sweep.trials {
            guard let xi = xs.firstIndex(of: t.params[kx] ?? ""), let v = t.metrics[metric] else { continue }
            let yi = ky.flatMap { k in ys.firstIndex(of: t.params[k] ?? "") } ?? 0
            cell[yi][xi] = max(cell[yi][xi] ?? -.infinity, v)
        }
        let vals = cell.flatMap { $0.compactMap { $0 } }
        guard let lo = vals.min(), let hi = vals.max() else { return s }
        let cw = 90.0, ch = 34.0, left = 110.0, top = 40.0
        let w = left + cw * Double(xs.count) + 20, h = top + ch * Double(ys.count) + 20
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"sweep heat map\">"
        s += "<text x=\"\(Int(left))\" y=\"16\" font-size=\"12\">\(esc(kx)) &#8594;</text>"
        if let ky { s += "<text x=\"4\" y=\"\(Int(top) - 6)\" font-size=\"12\">\(esc(ky)) &#8595;</text>" }
        for (i, x) in xs.enumerated() {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%@</text>", left + cw * (Double(i) + 0.5),
                        top - 6, esc(x))
        }
        for (j, y) in ys.enumerated() {
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%@</text>", left - 6, top + ch * (Double(j) + 0.6),
                        esc(y))
            for i in 0..<xs.count {
                let x0 = left + cw * Double(i), y0 = top + ch * Double(j)
                if let v = cell[j][i] {
                    let t = hi > lo ? (v - lo) / (hi - lo) : 1
                    // white -> deep blue
                    let r = Int(255 - 225 * t), g = Int(255 - 150 * t), b = Int(255 - 40 * t)
                    s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\" stroke=\"#fff\"/>",
                                x0, y0, cw, ch, r, g, b)
                    s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\" fill=\"%@\">%.4f</text>",
                                x0 + cw / 2, y0 + ch * 0.6, t > 0.6 ? "#fff" : "#222", v)
                } else {
                    s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#eee\" stroke=\"#fff\"/>", x0, y0, cw, ch)
                }
            }
        }
        s += "</svg>\n"
        if let best = sweep.best(by: metric) {
            s += "<p>Best: " + esc(sweep.spec.keys.map { "\($0)=\(best.params[$0] ?? "-")" }.joined(separator: " "))
                + String(format: " (%@ %.4f).</p>\n", metric, best.metrics[metric] ?? 0)
        }
        return s
    }

    /// Coverage, and the share of all recommended slots that go to each decile of training
    /// popularity (decile 1: the least popular tenth of the catalog, 10: the most popular).
    static func popularityBias(_ runs: [RunEntry]) throws -> String {
        let evaluated = runs.filter { $0.run.evaluation != nil }
        guard !evaluated.isEmpty else { return "" }
        var s = "<h2>Coverage and popularity bias</h2>\n<p class=note>Share of recommended slots per decile of item popularity in "
            + "the training data (1 = least popular tenth of the catalog, 10 = most popular), on a log scale so that models which all "
            + "put most slots in the top decile still separate; the table adds the share to the top 1 % of items. A uniform ranker "
            + "would give 10 % per decile.</p>\n"
        var series: [(name: String, color: String, shares: [Double], coverage: Double, top1: Double)] = []
        for e in evaluated {
            let rec = try EvaluationRecord.read(e.directory + "/" + e.run.evaluation!.perUserFile)
            let pop = try ModelStore.trainingPopularity(e.directory)
            let ordered = pop.sorted { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }.map(\.key)
            var decile: [String: Int] = [:]
            for (r, id) in ordered.enumerated() { decile[id] = min(9, r * 10 / max(1, ordered.count)) }
            // The top 1 % of items by popularity (at least one).
            let top1 = Set(ordered.suffix(max(1, ordered.count / 100)))
            var counts = [Double](repeating: 0, count: 10)
            var inTop1 = 0.0
            var distinct = Set<String>()
            for l in rec.lists {
                for id in l {
                    if let d = decile[id] { counts[d] += 1 }
                    if top1.contains(id) { inTop1 += 1 }
                    distinct.insert(id)
                }
            }
            let total = max(1, counts.reduce(0, +))
            series.append((e.id, palette[runs.firstIndex { $0.id == e.id }! % palette.count], counts.map { $0 / total },
                           Double(distinct.count) / Double(max(1, ordered.count)), inTop1 / total))
        }
        s += "<table><tr><th>run</th><th>catalog coverage</th><th>share to the top 1 %</th><th>share to the top decile</th>"
            + "<th>share to the bottom half</th></tr>\n"
        for x in series {
            s += String(format: "<tr><td>%@</td><td>%.4f</td><td>%.3f</td><td>%.3f</td><td>%.4f</td></tr>\n", esc(x.name), x.coverage, x.top1,
                        x.shares[9], x.shares[0..<5].reduce(0, +))
        }
        s += "</table>\n"
        // Grouped bars.
        let w = 700.0, h = 240.0, left = 50.0, top = 20.0, bottom = 36.0
        let groupW = (w - left - 20) / 10, barW = groupW * 0.8 / Double(max(1, series.count))
        // Log scale from 0.01 % to 100 % (an empty decile sits on the floor).
        let floorShare = 1e-4
        func y(_ v: Double) -> Double { top + (-log10(max(v, floorShare)) / -log10(floorShare)) * (h - top - bottom) }
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\" aria-label=\"popularity deciles\">"
        s += "<rect x=\"0\" y=\"0\" width=\"\(Int(w))\" height=\"\(Int(h))\" fill=\"#fafafa\"/>"
        for (v, label) in [(1e-4, "0.01%"), (1e-3, "0.1%"), (1e-2, "1%"), (0.1, "10%"), (1.0, "100%")] {
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, w - 20, y(v), y(v))
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%@</text>", left - 4, y(v) + 3, label)
        }
        for d in 0..<10 {
            let gx = left + groupW * Double(d)
            for (j, x) in series.enumerated() {
                let v = x.shares[d]
                s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"/>", gx + groupW * 0.1 + barW * Double(j),
                            y(v), barW, max(0, h - bottom - y(v)), x.color)
            }
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%d</text>", gx + groupW / 2, h - bottom + 14, d + 1)
        }
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">popularity decile</text>", (left + w) / 2, h - 4)
        return s + "</svg>\n"
    }
}
