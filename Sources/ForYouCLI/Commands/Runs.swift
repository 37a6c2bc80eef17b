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
            do { return try ModelLoading.resolve(s, in: registry, command: "runs") } catch let e as RegistryError { throw CLIError("runs: \(e)") }
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
            let runs: [RunEntry]
            do { runs = try location.registry.list(filters: parsed, sort: sort, descending: desc) } catch let e as RegistryError {
                throw CLIError("runs: \(e)")
            }
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
            let bad = location.registry.scan().unreadable
            if !bad.isEmpty {
                throw CLIError("runs: \(bad.count) run.json unreadable (fix or remove the directory):\n"
                               + bad.map { "  \($0.directory)/run.json: \($0.reason)" }.joined(separator: "\n"))
            }
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
