import ArgumentParser
import ForYou
import Foundation

/// `foryou runs list|show|diff|rm`: the runs registry in a models directory.
struct Runs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The runs registry: every trained model directory under --models with its run.json.",
        discussion: """
        Fields for --filter and --sort: id, model, created, outcome, code, data (training data \
        fingerprint), test (evaluation test-set fingerprint), rows, users, items, fit_s, any metric \
        (ndcg@10, recall@10, ...) and any parameter (factors, reg, seed, ...).
        """,
        subcommands: [List.self, Show.self, Diff.self, Remove.self])

    struct Location: ParsableArguments {
        @Option(help: "Models directory holding the runs.") var models = "models"
        var registry: RunsRegistry { RunsRegistry(root: models) }

        func resolve(_ s: String) throws -> RunEntry {
            do { return try registry.resolve(s) } catch let e as RegistryError { throw CLIError("runs: \(e)") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per run: id, model, data, key parameters, metrics.")
        @OptionGroup var location: Location
        @Option(name: .customLong("filter"), help: "KEY=VALUE, KEY>NUMBER or KEY<NUMBER (repeatable).") var filters: [String] = []
        @Option(help: "Sort by this field (numbers numerically).") var sort: String?
        @Flag(help: "Sort descending.") var desc = false
        @Option(help: "Metric columns.") var metrics = "ndcg@10,recall@10"

        func run() throws {
            let parsed: [RunsRegistry.Filter]
            do { parsed = try filters.map(RunsRegistry.Filter.init) } catch let e as RegistryError { throw CLIError("runs: \(e)") }
            let runs = location.registry.list(filters: parsed, sort: sort, descending: desc)
            let cols = metrics.split(separator: ",").map(String.init)
            var rows = [["id", "model", "created", "data", "params"] + cols]
            for e in runs {
                let r = e.run
                let keys = ["factors", "reg", "alpha", "iters", "dim", "temperature", "seed"].filter { r.params[$0] != nil }
                rows.append([r.id, r.model, r.createdAt, r.data.fingerprint, keys.map { "\($0)=\(r.params[$0]!)" }.joined(separator: " ")]
                            + cols.map { c in r.metrics[c].map { String(format: "%.4f", $0) } ?? "-" })
            }
            print(Table.render(rows))
            if runs.isEmpty { Console.err("runs: none under \(location.models)" + (filters.isEmpty ? "" : " matching the filters")) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Everything recorded about one run (run.json).")
        @OptionGroup var location: Location
        @Argument(help: "Run id (or unique prefix) or model directory.") var id: String

        func run() throws {
            let e = try location.resolve(id)
            print(e.directory)
            print(String(decoding: try Data(contentsOf: URL(fileURLWithPath: e.directory + "/run.json")), as: UTF8.self))
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The fields in which two runs differ (parameters, data, metrics, code).")
        @OptionGroup var location: Location
        @Argument(help: "First run.") var a: String
        @Argument(help: "Second run.") var b: String

        func run() throws {
            let x = try location.resolve(a), y = try location.resolve(b)
            let d = RunsRegistry.diff(x.run, y.run)
            if d.isEmpty { print("no differences in parameters, data, code or metrics"); return }
            print(Table.render([["field", x.id, y.id]] + d.map { [$0.field, $0.a, $0.b] }))
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete runs (their model directories).")
        @OptionGroup var location: Location
        @Argument(help: "Runs to delete.") var runs: [String]

        func run() throws {
            for r in runs {
                let e = try location.resolve(r)
                try FileManager.default.removeItem(atPath: e.directory)
                print("removed \(e.id) (\(e.directory))")
            }
        }
    }
}

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

    func run() throws {
        let reg = RunsRegistry(root: models)
        func side(_ s: String) throws -> [RunEntry] {
            let ids = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !ids.isEmpty else { throw CLIError("compare: no run given in '\(s)'") }
            do { return try ids.map { try reg.resolve($0) } } catch let e as RegistryError { throw CLIError("compare: \(e)") }
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
        print("A = \(label(x)), B = \(label(y)); \(c.users) test users, K = \(c.k); \(resamples) resamples, seed \(seed)")
        if c.replicated {
            print("intervals resample replicates and users, so they cover training randomness")
            if x.count == 1 || y.count == 1 {
                print("note: side \(x.count == 1 ? "A" : "B") is a single run, so its own training randomness is not covered; give it replicates too")
            }
        } else if RunComparison.areReplicates(x[0], y[0]) && x[0].run.params["seed"] != y[0].run.params["seed"] {
            print("note: A and B differ only in seed, so any difference is training randomness, which these intervals (test users "
                  + "resampled) do not cover; compare replicates, e.g. A_S1,A_S2,A_S3 B_S1,B_S2,B_S3")
        }
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

/// Plain-text tables with padded columns.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        var widths = [Int](repeating: 0, count: first.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            r.enumerated().map { i, c in i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// `foryou export RUN`: a run's numbers for notebooks.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a run's factors/embeddings (.npy), id maps and per-user metrics (CSV) for notebooks.",
        discussion: """
        Into OUT/<run id>/: users.csv and items.csv (index,id: row i of the .npy files is that id), \
        user_factors.npy and item_factors.npy (float32, numpy.load reads them), item_scores.npy for \
        popularity runs, and per_user_metrics.csv when the run has a recorded evaluation.
        """)
    @Option(help: "Models directory holding the runs.") var models = "models"
    @Argument(help: "Runs (id, unique prefix or model directory).") var runs: [String]
    @Option(help: "Output directory.") var out = "notebooks-data"

    func run() throws {
        let reg = RunsRegistry(root: models)
        for r in runs {
            let e: RunEntry
            do { e = try reg.resolve(r) } catch let err as RegistryError { throw CLIError("export: \(err)") }
            let dir = out + "/" + e.id
            let files: [String]
            do { files = try Export.run(e, to: dir) } catch let err as ArtifactError { throw CLIError("export: \(err)") }
            print("\(dir): " + files.joined(separator: ", "))
        }
    }
}

/// `foryou report RUN... --out report.html`.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "One self-contained HTML file about runs and sweeps (inline SVG, no network).",
        discussion: """
        Metric table with bootstrap intervals (and paired deltas against the first run), loss and \
        metric curves by iteration, a heat map per sweep (--sweep DIR), coverage and the share of \
        recommendations per item-popularity decile.
        """)
    @Option(help: "Models directory holding the runs.") var models = "models"
    @Argument(help: "Runs (id, unique prefix or model directory).") var runs: [String] = []
    @Option(name: .customLong("sweep"), help: "A sweep directory (sweep.json) to draw as a heat map (repeatable).") var sweeps: [String] = []
    @Option(help: "Output HTML file.") var out = "report.html"
    @Option(help: "Page title.") var title = "foryou report"

    func validate() throws {
        guard !runs.isEmpty || !sweeps.isEmpty else { throw ValidationError("give at least one run or --sweep DIR") }
    }

    func run() throws {
        let reg = RunsRegistry(root: models)
        var entries: [RunEntry] = []
        for r in runs {
            do { entries.append(try reg.resolve(r)) } catch let e as RegistryError { throw CLIError("report: \(e)") }
        }
        var records: [SweepRecord] = []
        for d in sweeps {
            guard let data = FileManager.default.contents(atPath: d + "/sweep.json") else { throw CLIError("report: no \(d)/sweep.json") }
            do { records.append(try JSONDecoder().decode(SweepRecord.self, from: data)) } catch {
                throw CLIError("report: \(d)/sweep.json is not a sweep record: \(error)")
            }
        }
        let html: String
        do { html = try Report.html(runs: entries, sweeps: records, title: title) } catch let e as ArtifactError {
            throw CLIError("report: \(e)")
        }
        try AtomicFile.write(html, to: out)
        print(out)
    }
}
