import ArgumentParser
import ForYou
import Foundation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Tune ALS on a validation split carved from train; evaluate only the best configuration on test.",
        discussion: """
        Every configuration of the grid (or --random N of them) is trained on train minus a \
        per-user random --validation-fraction of it and scored (NDCG@K) on that held-out part; \
        the test file is read only after the sweep, for the best configuration, retrained on all \
        of train and recorded as a run (with its evaluation) in --models. Trials are saved to \
        DIR/sweep.json as they finish: Ctrl-C and the same command again resumes where it stopped.

        Grid keys: factors, reg, alpha, iters, confidence (linear|log|binary), cg_steps.
        Example:
          foryou sweep --model als --train lastfm_train.tsv --test lastfm_test.tsv \\
                       --grid factors=32,64,128 --grid reg=0.01,0.05,0.1 --grid alpha=1,10,40
        """)

    @Option(help: "Model family (als).") var model = "als"
    @Option(help: "Training interactions.") var train: String
    @Option(help: "Held-out interactions: the best configuration is evaluated on them, once.") var test: String?
    @OptionGroup var input: FormatOptions
    @Option(name: .customLong("grid"), help: "KEY=V1,V2,... (repeatable).") var grids: [String] = []
    @Option(name: .customLong("set"), help: "KEY=VALUE fixed for every trial (repeatable), e.g. iters=15.") var sets: [String] = []
    @Option(help: "Try N configurations drawn at random from the grid instead of all of it.") var random: Int?
    @Option(help: "Seed of the validation carve, the random draw and the models.") var seed: UInt64 = 42
    @Option(name: .customLong("validation-fraction"), help: "Share of each user's training items held out for tuning.")
    var validationFraction = 0.1
    @Option(help: "Cutoff K of the tuning metric (NDCG@K).") var k = 10
    @Option(help: "Sweep directory (sweep.json); default models/sweep-<train file>-<grid digest>.") var out: String?
    @Option(help: "Where the best configuration's run goes.") var models = "models"
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard model == "als" else { throw ValidationError("sweep supports --model als") }
        guard !grids.isEmpty else { throw ValidationError("give at least one --grid KEY=V1,V2,...") }
        guard validationFraction > 0, validationFraction < 0.5 else { throw ValidationError("--validation-fraction must be in (0, 0.5)") }
        if let r = random { guard r > 0 else { throw ValidationError("--random must be positive") } }
    }

    static func pairs(_ list: [String], flag: String) throws -> [(String, String)] {
        try list.map { s in
            guard let eq = s.firstIndex(of: "="), eq != s.startIndex, s.index(after: eq) != s.endIndex else {
                throw CLIError("sweep: \(flag) '\(s)' is not KEY=VALUE")
            }
            return (String(s[..<eq]), String(s[s.index(after: eq)...]))
        }
    }

    func run() throws {
        common.announce()
        let grid = try Self.pairs(grids, flag: "--grid")
        let base = Dictionary(try Self.pairs(sets, flag: "--set"), uniquingKeysWith: { $1 })
        let spec = SweepSpec(keys: grid.map(\.0), values: grid.map { $0.1.split(separator: ",").map(String.init) }, base: base,
                             random: random, seed: seed, validationFraction: validationFraction, k: k)
        let configs: [[String: String]]
        do { configs = try Sweep.configurations(spec) } catch let e as SweepError { throw CLIError("sweep: \(e)") }
        let (data, _) = try input.read(train, verbose: common.verbose)
        let fingerprint = try ModelStore.fingerprint(paths: [train])
        let dir = out ?? "\(models)/sweep-\(((train as NSString).lastPathComponent as NSString).deletingPathExtension)-\(spec.digest)"
        Console.err("sweep: \(configs.count) configurations on \(data.users.count) users x \(data.items.count) items; "
                    + "validation: \(Int(validationFraction * 100)) % of each user's items; trials in \(dir)/sweep.json")
        let t0 = Date()
        let (record, outcome): (SweepRecord, Sweep.Outcome)
        do {
            (record, outcome) = try Sweep.run(spec, data: data, dataPaths: [train], fingerprint: fingerprint, directory: dir,
                                              threads: common.threads, cancel: CLIContext.cancel) { Console.err($0) }
        } catch let e as SweepError { throw CLIError("sweep: \(e)") }
        if outcome == .cancelled {
            throw CLIError("sweep: interrupted after \(record.trials.count) of \(configs.count) trials; the same command resumes")
        }
        let metric = "ndcg@\(k)"
        let sorted = record.trials.sorted { ($0.metrics[metric] ?? 0) > ($1.metrics[metric] ?? 0) }
        var rows = [spec.keys + ["val " + metric, "val recall@\(k)", "seconds"]]
        for t in sorted {
            rows.append(spec.keys.map { t.params[$0] ?? "-" }
                        + [String(format: "%.4f", t.metrics[metric] ?? 0), String(format: "%.4f", t.metrics["recall@\(k)"] ?? 0),
                           String(format: "%.1f", t.seconds)])
        }
        print(Table.render(rows))
        let best = sorted[0]
        print("\nbest on validation: " + spec.keys.map { "\($0)=\(best.params[$0]!)" }.joined(separator: " ")
              + String(format: " (%@ %.4f); %d trials in %.1fs this run", metric, best.metrics[metric] ?? 0, record.trials.count,
                       Date().timeIntervalSince(t0)))
        // The best configuration, on all of train; the only model that sees the test file.
        let (als, conf) = try Sweep.settings(best.params, threads: common.threads, seed: seed)
        let cui = data.confidenceMatrix(conf)
        let m = ALSModel(config: als, users: cui.rows, items: cui.cols)
        if case .cancelled = try m.train(cui, cancel: CLIContext.cancel) { throw CLIError("sweep: interrupted while training the best") }
        let runId = ModelStore.newRunId(model: "als")
        let runDir = models + "/" + runId
        var params = Sweep.defaults.merging(best.params) { $1 }
        params["sweep"] = record.id
        params["seed"] = "\(seed)"
        params["solver"] = "cg"
        params["validation_\(metric)"] = String(format: "%.5f", best.metrics[metric] ?? 0)
        let run = RunRecord(
            id: runId, model: "als", createdAt: ISO8601DateFormatter().string(from: Date()), codeVersion: CodeVersion.current,
            params: params,
            data: .init(paths: [train], format: input.format.rawValue, fingerprint: fingerprint, rows: data.count,
                        users: data.users.count, items: data.items.count, nnz: cui.nnz),
            losses: m.losses, timings: .init(importSeconds: 0, fitSeconds: 0, iterationSeconds: m.iterationSeconds, lossSeconds: nil),
            outcome: "completed", environment: ["blas_core": BLASRuntime.coreName, "cores": "\(BLASRuntime.availableCores)"],
            metrics: [:], files: [:])
        try ModelStore.save(m, users: data.users, items: data.items, seen: cui, run: run, to: runDir)
        if let test {
            let (testData, _) = try input.read(test, verbose: common.verbose)
            let report = Evaluator(k: k, threads: common.threads).evaluate(m, users: data.users, items: data.items, seen: cui,
                                                                           test: testData)
            try EvaluationRecord.attach(report, test: [test], to: runDir)
            print(String(format: "test (best configuration only): ndcg@%d %.4f  recall@%d %.4f  precision@%d %.4f", k,
                         report.summary.ndcg, k, report.summary.recall, k, report.summary.precision))
        }
        print("best run: \(runDir)")
    }
}
