import ArgumentParser
import ForYou
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a ranker on an interaction file and save it as a model directory.",
        discussion: """
        Confidence of an observed (user, item) is c = 1 + alpha * r, with r = weight (linear), \
        ln(1 + weight) (log) or 1 (binary); duplicate pairs are summed first. Progress \
        (iteration, loss, elapsed, ETA) goes to stderr; Ctrl-C stops after the current half-step \
        and still saves the model, marked as interrupted.

        Example (the shared protocol):
          foryou train --train movielens_train.tsv --factors 64 --reg 0.05 --iters 15 \\
                       --alpha 1 --confidence binary --solver cg --out models/ml-als
        """)

    enum ModelKind: String, ExpressibleByArgument, CaseIterable { case als, popularity }

    @Option(help: "Training interactions (a file).") var train: String?
    @Option(help: "Train from the event log of this data directory instead of a file (events -> interactions mapping).")
    var events: String?
    @OptionGroup var input: FormatOptions
    @OptionGroup var mapping: MappingOptions
    @Option(help: "als or popularity.") var model: ModelKind = .als
    @Option(help: "Latent factors.") var factors = 64
    @Option(help: "L2 regularization added to each normal equation's diagonal.") var reg: Float = 0.05
    @Option(help: "ALS iterations (one user pass + one item pass each).") var iters = 15
    @Option(help: "Confidence scale alpha in c = 1 + alpha * r.") var alpha: Float = 1
    @Option(help: "r as a function of the weight: linear, log or binary.") var confidence: Confidence.Scheme = .linear
    @Option(help: "exact (BLAS normal equations + LAPACKE sposv) or cg (conjugate gradient).") var solver: ALSConfig.Solver = .cg
    @Option(name: .customLong("cg-steps"), help: "Conjugate-gradient steps per row and half-iteration.") var cgSteps = 3
    @Option(help: "Seed of the factor initialisation.") var seed: UInt64 = 42
    @Flag(name: .customLong("no-loss"), help: "Skip the per-iteration training loss.") var noLoss = false
    @Option(help: "Model directory to write (default models/<run-id>).") var out: String?
    @Option(help: "Held-out interactions: evaluate after training and record the metrics.") var test: String?
    @Option(help: "Cutoff for --test metrics.") var k = 10
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (train == nil) != (events == nil) else { throw ValidationError("give exactly one of --train FILE and --events DATA_DIR") }
        guard factors > 0 else { throw ValidationError("--factors must be positive") }
        guard reg >= 0 else { throw ValidationError("--reg must be >= 0") }
        guard iters >= 0 else { throw ValidationError("--iters must be >= 0") }
        guard cgSteps > 0 else { throw ValidationError("--cg-steps must be positive") }
        guard alpha >= 0 else { throw ValidationError("--alpha must be >= 0") }
    }

    func run() throws {
        common.announce()
        let (data, importSeconds, sourcePaths, fingerprint) = try TrainingData.load(train: train, events: events, input: input,
                                                                                     mapping: mapping.mapping, verbose: common.verbose)
        let conf = Confidence(scheme: confidence, alpha: alpha)
        let cui = data.confidenceMatrix(conf)
        let runId = out.map { ($0 as NSString).lastPathComponent } ?? ModelStore.newRunId(model: model.rawValue)
        let dir = out ?? "models/\(runId)"
        Console.err("train: \(model.rawValue) on \(data.users.count) users x \(data.items.count) items, \(cui.nnz) interactions")
        let t0 = Date()
        let ranker: Ranker
        var outcome = "completed"
        var losses: [Double] = [], iterSeconds: [Double] = []
        var params: [String: String] = ["format": input.format.rawValue, "confidence": confidence.rawValue,
                                        "alpha": "\(alpha)"]
        if events != nil { params.merge(mapping.mapping.params) { $1 } }
        switch model {
        case .popularity:
            ranker = PopularityModel(fit: cui)
        case .als:
            let cfg = ALSConfig(factors: factors, regularization: reg, iterations: iters, solver: solver,
                                cgSteps: cgSteps, threads: common.threads, seed: seed, computeLoss: !noLoss)
            params.merge(["factors": "\(factors)", "reg": "\(reg)", "iters": "\(iters)", "solver": solver.rawValue,
                          "cg_steps": "\(cgSteps)", "seed": "\(seed)", "threads": "\(common.threads)"]) { $1 }
            let m = ALSModel(config: cfg, users: cui.rows, items: cui.cols)
            let result = try m.train(cui, cancel: CLIContext.cancel) { Console.err($0.line) }
            if case .cancelled(let n) = result {
                outcome = "interrupted after \(n) of \(iters) iterations"
                Console.err("train: \(outcome); saving what was trained")
            }
            losses = m.losses
            iterSeconds = m.iterationSeconds
            ranker = m
        }
        let fitSeconds = Date().timeIntervalSince(t0)
        var run = RunRecord(
            id: runId, model: model.rawValue, createdAt: ISO8601DateFormatter().string(from: Date()),
            codeVersion: CodeVersion.current, params: params,
            data: .init(paths: sourcePaths, format: events == nil ? input.format.rawValue : "events",
                        fingerprint: fingerprint, rows: data.count,
                        users: data.users.count, items: data.items.count, nnz: cui.nnz),
            losses: losses,
            timings: .init(importSeconds: importSeconds, fitSeconds: fitSeconds, iterationSeconds: iterSeconds, lossSeconds: nil),
            outcome: outcome,
            environment: ["blas_core": BLASRuntime.coreName, "cores": "\(BLASRuntime.availableCores)"],
            metrics: [:], files: [:])
        if let test {
            let (testData, _) = try input.read(test, verbose: common.verbose)
            let report = Evaluator(k: k, threads: common.threads).evaluate(ranker, users: data.users, items: data.items,
                                                                           seen: cui, test: testData)
            run.metrics = EvaluationOutput.metricMap(report.summary)
            Console.err(EvaluationOutput.table(report))
        }
        try ModelStore.save(ranker, users: data.users, items: data.items, seen: cui, run: run, to: dir)
        Console.err(String(format: "train: fit %.2fs; model saved to %@", fitSeconds, dir))
        print(dir)
    }
}

enum TrainingData {
    /// Interactions from a file, or from a data directory's event log and catalog.
    static func load(train: String?, events: String?, input: FormatOptions, mapping: EventMapping, verbose: Bool) throws
        -> (Interactions, Double, [String], String) {
        if let train {
            let (d, s) = try input.read(train, verbose: verbose)
            return (d, s, [train], try ModelStore.fingerprint(paths: [train]))
        }
        let dir = DataDirectory(events!)
        let t0 = Date()
        let log = try EventLog(directory: dir.events)
        let store = try dir.openStore()
        let durations = Dictionary(try store.videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        let data = try EventMapping.fromLog(log, durations: durations, mapping: mapping)
        guard data.weights.contains(where: { $0 > 0 }) else { throw CLIError("\(dir.events): no positive interactions in the event log") }
        let s = Date().timeIntervalSince(t0)
        if verbose {
            Console.err(String(format: "events: %llu events -> %d interactions, %d users, %d videos in %.2fs", log.endId, data.count,
                               data.users.count, data.items.count, s))
        }
        return (data, s, ["events:" + dir.events], "events-\(log.endId)")
    }
}
