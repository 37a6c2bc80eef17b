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

    enum ModelKind: String, ExpressibleByArgument, CaseIterable { case als, popularity, twoTower = "two-tower", blend }

    @Option(help: "Training interactions (a file).") var train: String?
    @Option(help: "Train from the event log of this data directory instead of a file (events -> interactions mapping).")
    var events: String?
    @OptionGroup var input: FormatOptions
    @OptionGroup var mapping: MappingOptions
    @Option(help: "als, popularity, two-tower, or blend (ALS + two-tower, weight fitted on the validation split).")
    var model: ModelKind = .als
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
    @OptionGroup(title: "Two-tower") var tt: TwoTowerOptions
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
        var curves: [String: [Double]]?
        var params: [String: String] = ["format": input.format.rawValue, "confidence": confidence.rawValue,
                                        "alpha": "\(alpha)"]
        if events != nil { params.merge(mapping.mapping.params) { $1 } }
        switch model {
        case .popularity:
            ranker = PopularityModel(fit: cui)
        case .blend:
            let cfg = ALSConfig(factors: factors, regularization: reg, iterations: iters, solver: solver,
                                cgSteps: cgSteps, threads: common.threads, seed: seed, computeLoss: false)
            let (f, c) = try tt.features(data, catalogOf: events)
            var ttc = c
            ttc.threads = common.threads
            ttc.seed = seed
            let r: BlendJob.Result
            do {
                r = try BlendJob.fit(data, features: f, twoTower: ttc, als: cfg, confidence: conf, validationFraction: tt.validationFraction, refit: tt.refit,
                                     cancel: CLIContext.cancel) { Console.err($0) }
            } catch RescoreError.cancelled { throw CLIError("train: interrupted; no blend saved") }
            ranker = r.ranker
            params.merge(["factors": "\(factors)", "reg": "\(reg)", "iters": "\(iters)", "solver": solver.rawValue,
                          "lambda": "\(r.lambda)", "als_validation_ndcg": String(format: "%.5f", r.alsValidation),
                          "two_tower_validation_ndcg": String(format: "%.5f", r.twoTowerValidation),
                          "blend_grid": r.grid.map { String(format: "%.1f:%.5f", $0.lambda, $0.ndcg) }.joined(separator: ","),
                          "seed": "\(seed)"]) { $1 }
            params.merge(tt.params(r.twoTower, seed: seed)) { a, _ in a }
            Console.err(String(format: "train: blend lambda %.1f (validation NDCG@10: ALS %.4f, two-tower %.4f, blend %.4f)", r.lambda,
                               r.alsValidation, r.twoTowerValidation, r.grid.map(\.ndcg).max()!))
        case .twoTower:
            let (r, p, l) = try tt.fit(data, threads: common.threads, seed: seed, catalogOf: events)
            ranker = r
            params.merge(p) { $1 }
            losses = l
            // Without a validation split no epoch has a value (and JSON has no NaN): no curve.
            let ndcgs = (p["validation_ndcg"] ?? "").split(separator: ",").compactMap { Double($0) }
            curves = ndcgs.isEmpty ? nil : ["validation_ndcg@10": ndcgs]
            if let o = p["outcome"], o.hasPrefix("interrupted") { outcome = o }
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
        var report: Evaluator.Report?
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
            let r = Evaluator(k: k, threads: common.threads).evaluate(ranker, users: data.users, items: data.items,
                                                                      seen: cui, test: testData)
            Console.err(EvaluationOutput.table(r))
            report = r
        }
        if let v = curves { run.curves = v }
        try ModelStore.save(ranker, users: data.users, items: data.items, seen: cui, run: run, to: dir)
        if let report, let test { try EvaluationRecord.attach(report, test: [test], to: dir) }
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

/// `foryou train --model two-tower` options.
struct TwoTowerOptions: ParsableArguments {
    @Option(help: "Two-tower: embedding and output width.") var dim = 64
    @Option(help: "Two-tower: hidden layer width of each tower (default: --dim).") var hidden: Int?
    @Option(help: "Two-tower: maximum epochs.") var epochs = 30
    @Option(help: "Two-tower: examples per mini-batch (the in-batch negatives).") var batch = 1024
    @Option(help: "Two-tower: Adam learning rate.") var lr: Float = 0.005
    @Option(name: .customLong("weight-decay"), help: "Two-tower: decoupled weight decay.") var weightDecay: Float = 1e-4
    @Option(help: "Two-tower: softmax temperature.") var temperature: Float = 0.1
    @Option(help: "Two-tower: content features, item<TAB>token|token|... per line.") var features: String?
    @Option(name: .customLong("feature-buckets"), help: "Two-tower: rows of the hashed feature table.") var featureBuckets = 1 << 14
    @Option(name: .customLong("uniform-negatives"), help: "Two-tower: extra uniformly drawn negatives per batch.")
    var uniformNegatives = 0
    @Flag(name: .customLong("no-log-q"), help: "Two-tower: no popularity (log-Q) correction of in-batch negatives.")
    var noLogQ = false
    @Option(help: "Two-tower: recent items averaged into the user tower.") var history = 50
    @Flag(name: .customLong("history-gradient"), help: "Two-tower: also train item embeddings through the user tower's history mean (slower).")
    var historyGradient = false
    @Option(help: "Two-tower: epochs without a better validation NDCG@10 before stopping.") var patience = 3
    @Option(name: .customLong("validation-fraction"), help: "Two-tower: share of each user's training items held out for early stopping.")
    var validationFraction = 0.1
    @Flag(inversion: .prefixedNo,
          help: "Two-tower: once early stopping has chosen the epoch count, train again on every training interaction for that many epochs (the served model).")
    var refit = true

    func validate() throws {
        guard dim > 0, (hidden ?? dim) > 0, epochs > 0, batch >= 2, history >= 0, patience >= 1, featureBuckets > 0 else {
            throw ValidationError("--dim, --hidden, --epochs, --patience, --feature-buckets must be positive and --batch >= 2")
        }
        guard lr > 0, temperature > 0, weightDecay >= 0, uniformNegatives >= 0 else {
            throw ValidationError("--lr and --temperature must be positive")
        }
        guard validationFraction >= 0, validationFraction < 0.5 else { throw ValidationError("--validation-fraction must be in [0, 0.5)") }
    }

    /// `--hidden`, or the embedding width.
    var hiddenWidth: Int { hidden ?? dim }

    func config(threads: Int, seed: UInt64) -> TwoTowerConfig {
        var c = TwoTowerConfig()
        c.dim = dim; c.hidden = hiddenWidth; c.epochs = epochs; c.batch = batch; c.learningRate = lr; c.weightDecay = weightDecay
        c.temperature = temperature; c.featureBuckets = featureBuckets; c.uniformNegatives = uniformNegatives
        c.logQ = !noLogQ; c.history = history; c.historyGradient = historyGradient; c.patience = patience
        c.threads = threads; c.seed = seed
        return c
    }

    /// The configuration and the features: the --features file, else (training on a data
    /// directory's events) the catalog's captions and tags.
    func features(_ data: Interactions, catalogOf dataDir: String? = nil) throws -> (ItemFeatures?, TwoTowerConfig) {
        let c = config(threads: 0, seed: 42)
        var f: ItemFeatures?
        var source = features
        if let path = features {
            do { f = try ItemFeatures.load(path, buckets: featureBuckets) } catch let e as ImportError {
                throw CLIError("features: \(e)")
            }
        } else if let dir = dataDir {
            f = TwoTowerCatalog.features(try DataDirectory(dir).openStore().videos(), buckets: featureBuckets)
            source = "the catalog of \(dir)"
        }
        if let f, let source {
            Console.err(String(format: "features: %@ covers %.1f%% of the training items", source, 100 * f.coverage(of: data.items.raw)))
        }
        return (f, c)
    }

    func fit(_ data: Interactions, threads: Int, seed: UInt64, catalogOf dataDir: String?) throws
        -> (TwoTowerRanker, [String: String], [Double]) {
        var (f, c) = try features(data, catalogOf: dataDir)
        c.seed = seed
        c.threads = threads
        let r = TwoTowerJob.fit(data, features: f, config: c, validationFraction: validationFraction, refit: refit,
                                cancel: CLIContext.cancel) {
            Console.err($0.line)
        }
        var params = self.params(r, seed: seed)
        if features == nil && dataDir != nil { params["features"] = "catalog" }
        Console.err("train: two-tower \(params["outcome"]!) (validation users \(r.validationUsers), training pairs \(r.trainPairs))")
        return (r.ranker, params, r.reports.map(\.loss))
    }

    func params(_ r: TwoTowerJob.Result, seed: UInt64) -> [String: String] {
        var params: [String: String] = [
            "dim": "\(dim)", "hidden": "\(hiddenWidth)", "epochs": "\(epochs)", "batch": "\(batch)", "lr": "\(lr)",
            "weight_decay": "\(weightDecay)", "temperature": "\(temperature)", "feature_buckets": "\(featureBuckets)",
            "uniform_negatives": "\(uniformNegatives)", "log_q": "\(!noLogQ)", "history": "\(history)",
            "history_gradient": "\(historyGradient)",
            "patience": "\(patience)", "validation_fraction": "\(validationFraction)", "seed": "\(seed)",
            "refit_epochs": "\(r.refitEpochs)",
            "validation_ndcg": r.reports.map { $0.validationNDCG.map { String(format: "%.5f", $0) } ?? "-" }.joined(separator: ","),
            "examples_per_s": String(format: "%.0f", r.reports.map(\.examplesPerSecond).reduce(0, +) / Double(max(1, r.reports.count))),
        ]
        if let path = features { params["features"] = path }
        switch r.outcome {
        case .completed: params["outcome"] = "completed"
        case .stoppedEarly(let e): params["outcome"] = "stopped early; best epoch \(e)"
        case .cancelled(let e): params["outcome"] = "interrupted; best epoch \(e) kept"
        }
        return params
    }
}
