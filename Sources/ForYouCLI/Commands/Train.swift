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

        Item features (--features) must not carry test interactions: tags users applied are \
        features only when that (user, item) pair is not in the test split \
        (scripts/make-features leaves those rows out). --model rerank learns from the \
        validation carve of train only; its item statistics come from train.

        Example (the shared protocol):
          foryou train --train movielens_train.tsv --factors 64 --reg 0.05 --iters 15 \\
                       --alpha 1 --confidence binary --solver cg --out models/ml-als
        """)

    enum ModelKind: String, ExpressibleByArgument, CaseIterable { case als, popularity, ease, twoTower = "two-tower", blend, rerank }

    @Option(help: "Training interactions (a file).") var train: String?
    @Option(help: "Train from the event log of this data directory instead of a file (events -> interactions mapping).")
    var events: String?
    @OptionGroup var input: FormatOptions
    @OptionGroup var mapping: MappingOptions
    @Option(help: "als, popularity, ease (closed-form item x item, Steck 2019), two-tower, blend (ALS + two-tower, weight fitted on the validation split), or rerank (a learned second stage over the candidates of --sources).")
    var model: ModelKind = .als
    @Option(help: "Each training pair's time: a user,item,...,timestamp CSV (MovieLens ratings.csv works as is); enables the chrono validation carve and the second stage's time features.")
    var times: String?
    @Option(help: "Two-tower, blend, rerank: the validation carve: chrono, random, leave-k or auto (chrono when times are known).")
    var validation: ValidationCarve.Scheme = .auto
    @Option(help: "Rerank: candidate sources, comma-separated: als, ease, ease-recent (EASE on each user's 10 newest items; needs times), popularity, two-tower (default als,ease,[ease-recent,]popularity; EASE only up to 20000 items).")
    var sources: String?
    @Option(help: "Rerank: candidates each source proposes per user.") var candidates = 100
    @Option(help: "Rerank: most trees of the LambdaMART ranker (the count kept is chosen on validation).") var trees = 400
    @Option(help: "Rerank: boosters in the final ranker's bag, summed (0 = 5 when the validation users are fewer than 20,000, else 1).") var bag = 0
    @Option(help: "Rerank: labelled carves; 2 adds a second carve of the first one's train when the validation users are fewer than 20,000.") var labelCarves = 2
    @Option(help: "EASE: L2 penalty lambda on the item x item weights.") var lambda: Float = 200
    @Option(name: .customLong("ease-max-memory"), help: "EASE: refuse catalogs whose items^2 x 4 B weight matrix exceeds this many GiB (default: two thirds of RAM).")
    var easeMaxMemory: Double?
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
        guard lambda > 0 else { throw ValidationError("--lambda must be positive") }
        guard candidates > 0, trees > 0 else { throw ValidationError("--candidates and --trees must be positive") }
        guard bag >= 0 else { throw ValidationError("--bag must be >= 0 (0 = auto)") }
        guard (1...2).contains(labelCarves) else { throw ValidationError("--label-carves must be 1 or 2") }
        if let m = easeMaxMemory, !(m > 0) { throw ValidationError("--ease-max-memory must be a positive number of GiB") }
    }

    func run() throws {
        common.announce()
        var (data, importSeconds, sourcePaths, fingerprint) = try TrainingData.load(train: train, events: events, input: input,
                                                                                     mapping: mapping.mapping, verbose: common.verbose)
        if let times {
            do { data = try PairTimes(path: times).attach(to: data, path: times) } catch let e as PairTimes.ReadError { throw CLIError("train: \(e)") }
            sourcePaths.append(times)
            fingerprint = try ModelStore.fingerprint(paths: sourcePaths)
        }
        if validation == .chrono && data.timestamps == nil { throw CLIError("train: \(ValidationCarve.CarveError.needsTimes)") }
        var spec = TrainingSpec(model: TrainingSpec.Model(rawValue: model.rawValue)!,
                                als: ALSConfig(factors: factors, regularization: reg, iterations: iters, solver: solver, cgSteps: cgSteps,
                                               threads: common.threads, seed: seed, computeLoss: model == .als && !noLoss),
                                confidence: Confidence(scheme: confidence, alpha: alpha))
        spec.ease = EASEConfig(lambda: lambda, maxBytes: easeMaxMemory.map { Int($0 * 1_073_741_824) } ?? EASEConfig.defaultMaxBytes,
                               threads: common.threads)
        spec.validation = ValidationCarve(scheme: validation, fraction: tt.validationFraction, seed: seed)
        if model == .twoTower || model == .blend || model == .rerank {
            (spec.features, spec.featuresSource) = try tt.features(data, catalogOf: events)
            spec.twoTower = tt.config(threads: common.threads, seed: seed)
            spec.refit = tt.refit
        }
        if model == .rerank {
            var r = RerankConfig()
            r.sources = try sources.map { list in
                let names = list.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
                for n in names where !RerankConfig.knownSources.contains(n) {
                    throw ValidationError("--sources: unknown source '\(n)' (\(RerankConfig.knownSources.joined(separator: ", ")))")
                }
                return names
            } ?? RerankConfig.defaultSources(items: data.items.count, hasTimes: data.timestamps != nil)
            r.perSource = candidates
            r.maxTrees = trees
            r.bag = bag
            r.labelCarves = labelCarves
            spec.rerank = r
        }
        let runId = out.map { ($0 as NSString).lastPathComponent } ?? ModelStore.newRunId(model: model.rawValue)
        let dir = out ?? "models/\(runId)"
        // ALS needs only the confidence matrix: build it once and let the raw rows go (about a
        // third of train's peak memory at 10M interactions).
        let rows = data.count
        var alsMatrix: CSR?
        if model == .als {
            alsMatrix = data.confidenceMatrix(spec.confidence)
            data.userIndex = []; data.itemIndex = []; data.weights = []; data.timestamps = nil
        }
        let nnz = alsMatrix?.nnz ?? data.confidenceMatrix(spec.confidence).nnz
        Console.err("train: \(model.rawValue) on \(data.users.count) users x \(data.items.count) items, \(nnz) interactions")
        let trained: TrainedModel
        do { trained = try TrainingPipeline.fit(data, spec, confidence: alsMatrix, cancel: CLIContext.cancel) { Console.err($0) } } catch TrainingError.cancelled {
            throw CLIError("train: interrupted; no \(model.rawValue) saved")
        }
        if !trained.completed { Console.err("train: \(trained.outcome); saving what was trained") }
        if let r = trained.rerank {
            Console.err(String(format: "train: second stage with %d trees (cross-fitted validation NDCG@10 %.4f; sources %@)", r.trees, r.validationNDCG,
                               r.sourceValidation.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: ", ")))
            let top = r.importance.sorted { $0.value > $1.value }.prefix(5).map { String(format: "%@ %.0f", $0.key, $0.value) }
            Console.err("train: strongest features (total gain): " + top.joined(separator: ", "))
        } else if let r = trained.blend {
            Console.err(String(format: "train: blend lambda %.1f (validation NDCG@10: ALS %.4f, two-tower %.4f, blend %.4f)", r.lambda,
                               r.alsValidation, r.twoTowerValidation, r.grid.map(\.ndcg).max()!))
        } else if let r = trained.twoTower {
            Console.err("train: two-tower \(trained.results["outcome"]!) (validation users \(r.validationUsers), training pairs \(r.trainPairs))")
        }
        var extra = ["format": input.format.rawValue]
        if events != nil { extra.merge(mapping.mapping.params) { $1 } }
        let run = TrainingPipeline.record(
            id: runId, spec: spec, trained: trained,
            source: .init(paths: sourcePaths, format: events == nil ? input.format.rawValue : "events", fingerprint: fingerprint,
                          rows: rows, users: data.users.count, items: data.items.count, nnz: nnz),
            importSeconds: importSeconds, extraParams: extra)
        let cui = alsMatrix ?? data.confidenceMatrix(spec.confidence)
        var report: Evaluator.Report?
        if let test {
            let (testData, _) = try input.read(test, verbose: common.verbose)
            let r = Evaluator(k: k, threads: common.threads).evaluate(trained.ranker, users: data.users, items: data.items,
                                                                      seen: cui, test: testData)
            Console.err(EvaluationOutput.table(r))
            report = r
        }
        try ModelStore.save(trained.ranker, users: data.users, items: data.items, seen: cui, run: run, to: dir)
        if let report, let test { try EvaluationRecord.attach(report, test: [test], to: dir) }
        Console.err(String(format: "train: fit %.2fs; model saved to %@", trained.fitSeconds, dir))
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
        let read: EventTrainingData
        do { read = try EventTrainingData.read(dataDir: dir.root, mapping: mapping) } catch let e as TrainingError { throw CLIError("\(e)") }
        if verbose {
            Console.err(String(format: "events: %llu events -> %d interactions, %d users, %d videos in %.2fs", read.events,
                               read.interactions.count, read.interactions.users.count, read.interactions.items.count, read.seconds))
        }
        return (read.interactions, read.seconds, ["events:" + dir.events], "events-\(read.events)")
    }
}
