import ArgumentParser
import ForYou
import Foundation

/// `foryou compare A B`: paired, per-user comparison of two evaluated runs (or of two sets of
/// replicates, seeds of one configuration each).
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two runs evaluated on the same test set: metric deltas with intervals, and how their lists differ.",
        discussion: """
        Each metric's mean difference (B - A) over the test users, with a paired bootstrap 95 % \
        interval (users resampled, seeded) and a two-sided paired randomisation (sign-flip) \
        p-value. Then per-user overlap@K and rank-biased overlap (p = 0.9) of the two runs' \
        lists, and each run's catalog coverage, novelty (mean self-information of recommended \
        items, -log2 of the share of training users who had them) and Gini of item exposure. \
        Runs trained on different data or evaluated on different test files are refused. \
        Record evaluations with `foryou train --test FILE` or `foryou evaluate --record`.

        With one run per side the interval covers the sampling of test users for these two \
        trained models, not the randomness of training: two seeds of one configuration can \
        differ by more than that (scripts/bench-workbench shows such a pair). To compare \
        configurations, give each side as several replicates, comma-separated runs that differ \
        only in seed (e.g. `foryou compare als-s1,als-s2,als-s3 big-s1,big-s2,big-s3`): then \
        replicates are resampled along with users (a two-level bootstrap), the interval covers \
        training randomness too, the p-value is the bootstrap's two-sided one, and the list \
        figures are means over replicates. Few replicates (2-3) understate the spread between \
        seeds; five or more per side give the interval its stated coverage more nearly.
        """)

    @Option(help: "Models directory holding the runs.") var models = "models"
    @Argument(help: "Run A (id, unique prefix or model directory), or its replicates comma-separated.") var a: String
    @Argument(help: "Run B, or its replicates comma-separated.") var b: String
    @Option(help: "Metrics to compare (precision, recall, ndcg, ap; with or without @K), comma-separated.")
    var metric = "ndcg,recall,precision,ap"
    @Option(help: "Bootstrap and randomisation resamples.") var resamples = 10_000
    @Option(help: "Seed of the resampling.") var seed: UInt64 = 42
    @Flag(help: "Print one JSON object (everything the table shows) instead of the tables.") var json = false

    func run() throws {
        let reg = RunsRegistry(root: models)
        func side(_ s: String) throws -> [RunEntry] {
            let ids = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !ids.isEmpty else { throw CLIError("compare: no run given in '\(s)'") }
            do { return try ids.map { try ModelLoading.resolve($0, in: reg, command: "compare") } } catch let e as RegistryError { throw CLIError("compare: \(e)") }
        }
        let x = try side(a), y = try side(b)
        let names = metric.split(separator: ",").map { String($0.split(separator: "@")[0]).trimmingCharacters(in: .whitespaces) }
        for n in names where !EvaluationRecord.metricNames.contains(n) {
            throw CLIError("compare: unknown metric '\(n)' (one of \(EvaluationRecord.metricNames.joined(separator: ", ")))")
        }
        let c: RunComparison
        do { c = try RunComparison.compare(replicates: x, y, metrics: names, resamples: resamples, seed: seed) } catch let e as CompareError {
            throw CLIError("compare: \(e)")
        }
        func label(_ s: [RunEntry]) -> String {
            s.count == 1 ? "\(s[0].id) (\(s[0].run.model))" : "\(s.count) replicates of \(s[0].run.model): \(s.map(\.id).joined(separator: ", "))"
        }
        var notes: [String] = []
        if c.replicated {
            notes.append("intervals resample replicates and users, so they cover training randomness")
            if x.count == 1 || y.count == 1 {
                notes.append("side \(x.count == 1 ? "A" : "B") is a single run, so its own training randomness is not covered; give it replicates too")
            }
        } else if RunComparison.areReplicates(x[0], y[0]) && x[0].run.params["seed"] != y[0].run.params["seed"] {
            notes.append("A and B differ only in seed, so any difference is training randomness, which these intervals (test users "
                         + "resampled) do not cover; compare replicates, e.g. A_S1,A_S2,A_S3 B_S1,B_S2,B_S3")
        }
        if json {
            func side(_ e: [RunEntry], _ s: RunComparison.Side) -> [String: Any] {
                ["runs": e.map { ["id": $0.id, "model": $0.run.model, "directory": $0.directory] },
                 "coverage": s.coverage, "novelty_bits": s.novelty, "gini": s.gini]
            }
            let obj: [String: Any] = [
                "a": side(x, c.sideA), "b": side(y, c.sideB), "users": c.users, "k": c.k, "resamples": resamples, "seed": seed,
                "replicated": c.replicated, "notes": notes,
                "metrics": c.metrics.map { m -> [String: Any] in
                    ["name": m.name, "a": m.a, "b": m.b, "delta": m.interval.mean, "low": m.interval.low,
                     "high": m.interval.high, "p": m.p, "level": 0.95]
                },
                "lists": ["overlap": c.overlap, "rbo": c.rbo, "rbo_p": 0.9],
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("A = \(label(x)), B = \(label(y)); \(c.users) test users, K = \(c.k); \(resamples) resamples, seed \(seed)")
        for n in notes { print(n.hasPrefix("intervals") ? n : "note: " + n) }
        var rows = [["metric", "A", "B", "B - A", "95 % interval", "p"]]
        for m in c.metrics {
            rows.append([m.name, String(format: "%.4f", m.a), String(format: "%.4f", m.b), String(format: "%+.4f", m.interval.mean),
                         String(format: "[%+.4f, %+.4f]", m.interval.low, m.interval.high), String(format: "%.4f", m.p)])
        }
        print(Table.render(rows))
        print(String(format: "\nlists: overlap@%d %.3f, rank-biased overlap %.3f (mean over users%@)", c.k, c.overlap, c.rbo,
                     c.replicated ? " and replicate pairs" : ""))
        print(Table.render([["", "coverage", "novelty (bits)", "Gini of exposure"],
                            ["A", String(format: "%.4f", c.sideA.coverage), String(format: "%.3f", c.sideA.novelty),
                             String(format: "%.4f", c.sideA.gini)],
                            ["B", String(format: "%.4f", c.sideB.coverage), String(format: "%.3f", c.sideB.novelty),
                             String(format: "%.4f", c.sideB.gini)]]))
    }
}
