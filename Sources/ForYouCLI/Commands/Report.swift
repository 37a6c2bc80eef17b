import ArgumentParser
import ForYou
import Foundation

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
    @Option(help: "Bootstrap resamples of the metric intervals (the default is compare's).") var resamples = 10_000
    @Option(help: "Seed of the resampling (the default is compare's).") var seed: UInt64 = 42

    func validate() throws {
        guard !runs.isEmpty || !sweeps.isEmpty else { throw ValidationError("give at least one run or --sweep DIR") }
        guard resamples > 0 else { throw ValidationError("--resamples must be positive") }
    }

    func run() throws {
        let reg = RunsRegistry(root: models)
        var entries: [RunEntry] = []
        for r in runs {
            do { entries.append(try ModelLoading.resolve(r, in: reg, command: "report")) } catch let e as RegistryError { throw CLIError("report: \(e)") }
        }
        var records: [SweepRecord] = []
        for d in sweeps {
            guard let data = FileManager.default.contents(atPath: d + "/sweep.json") else { throw CLIError("report: no \(d)/sweep.json") }
            do { records.append(try JSONDecoder().decode(SweepRecord.self, from: data)) } catch {
                throw CLIError("report: \(d)/sweep.json is not a sweep record: \(error)")
            }
        }
        let html: String
        do { html = try Report.html(runs: entries, sweeps: records, title: title, resamples: resamples, seed: seed) } catch let e as ArtifactError {
            throw CLIError("report: \(e)")
        }
        try AtomicFile.write(html, to: out)
        print(out)
    }
}
