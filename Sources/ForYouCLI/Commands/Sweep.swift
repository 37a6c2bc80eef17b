import ArgumentParser
import ForYou
import Foundation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Tune a model family (or all of them) on a validation carve of train; evaluate only the chosen model on test.",
        discussion: """
        Every configuration of the grid (or --random N of them) is trained on train minus a \
        validation carve of it and scored (NDCG@K) on the carve; the test file is read only \
        after the sweep, for the chosen configuration, retrained on all of train and recorded \
        as a run (with its evaluation) in --models. Trials are saved to DIR/sweep.json as they \
        finish: Ctrl-C and the same command again resumes where it stopped.

        The carve should mirror the test (--validation): chrono holds out each user's latest \
        --validation-fraction (it needs times: from the training file's time column or \
        --times FILE), random a seeded random share, leave-k the latest (or random) k. The \
        default is chrono when times are known, else random.

        --model all searches every family with its default grid (ALS: factors x reg x alpha; \
        EASE: lambda; two-tower: early-stopped on the same carve), then fits the learned \
        second stage over the best ALS and EASE (its validation NDCG cross-fitted over the \
        validation users), picks whichever is best on validation, and prints its test metrics.

        Grid keys: als: factors, reg, alpha, iters, confidence (linear|log|binary), cg_steps; \
        ease: lambda; two-tower: dim, hidden, lr, temperature, weight_decay, batch, history, epochs.
        Examples:
          foryou sweep --model als --train lastfm_train.tsv --test lastfm_test.tsv \\
                       --grid factors=32,64,128 --grid reg=0.01,0.05,0.1 --grid alpha=1,10,40
          foryou sweep --model all --train movielens_train.tsv --test movielens_test.tsv \\
                       --times ratings.csv --validation-fraction 0.2
        """)

    enum Family: String, ExpressibleByArgument, CaseIterable { case als, ease, twoTower = "two-tower", all }

    @Option(help: "Model family: als, ease, two-tower, or all (every family, default grids).") var model: Family = .als
    @Option(help: "Training interactions.") var train: String
    @Option(help: "Held-out interactions: the chosen configuration is evaluated on them, once.") var test: String?
    @OptionGroup var input: FormatOptions
    @Option(help: "Each training pair's time: a user,item,...,timestamp CSV (MovieLens ratings.csv works as is).") var times: String?
    @Option(help: "Two-tower: content features, item<TAB>token|token|... per line.") var features: String?
    @Option(name: .customLong("grid"), help: "KEY=V1,V2,... (repeatable; not with --model all).") var grids: [String] = []
    @Option(name: .customLong("set"), help: "KEY=VALUE fixed for every trial (repeatable), e.g. iters=15.") var sets: [String] = []
    @Option(help: "Try N configurations drawn at random from the grid instead of all of it.") var random: Int?
    @Option(help: "Seed of the validation carve, the random draw and the models.") var seed: UInt64 = 42
    @Option(help: "The validation carve: chrono, random, leave-k or auto (chrono when times are known).")
    var validation: ValidationCarve.Scheme = .auto
    @Option(name: .customLong("validation-fraction"), help: "chrono and random: share of each user's training items held out.")
    var validationFraction = 0.1
    @Option(name: .customLong("validation-k"), help: "leave-k: items held out per user.") var validationK = 1
    @Option(help: "Cutoff K of the tuning metric (NDCG@K).") var k = 10
    @Option(help: "Sweep directory (sweep.json); default models/sweep-<train file>-<grid digest>.") var out: String?
    @Option(help: "Where the chosen configuration's run goes.") var models = "models"
    @Flag(help: "Print the outcome as one JSON object on stdout.") var json = false
    @Flag(name: .customLong("test-all"), help: "With --test: also report every family's best (refit on all of train) on test, for benchmark tables; the choice is made before the test file is read.")
    var testAll = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        if model == .all {
            guard grids.isEmpty, sets.isEmpty, random == nil else { throw ValidationError("--model all uses each family's default grid: drop --grid, --set and --random") }
        } else {
            guard !grids.isEmpty else { throw ValidationError("give at least one --grid KEY=V1,V2,... (or --model all)") }
        }
        guard validationFraction > 0, validationFraction < 0.5 else { throw ValidationError("--validation-fraction must be in (0, 0.5)") }
        guard validationK >= 1 else { throw ValidationError("--validation-k must be at least 1") }
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

    /// One family's finished sweep.
    struct FamilyOutcome {
        var family: SweepFamily
        var record: SweepRecord
        var best: SweepTrial
        var seconds: Double
    }

    func run() throws {
        common.announce()
        var (data, _) = try input.read(train, verbose: common.verbose)
        var paths = [train]
        if let times {
            do { data = try PairTimes(path: times).attach(to: data, path: times) } catch let e as PairTimes.ReadError { throw CLIError("sweep: \(e)") }
            paths.append(times)
        }
        let fingerprint = try ModelStore.fingerprint(paths: paths)
        var featureSet: ItemFeatures?
        if let features {
            do { featureSet = try ItemFeatures.load(features, buckets: TwoTowerConfig().featureBuckets) } catch let e as ImportError {
                throw CLIError("features: \(e)")
            }
        }
        let families: [SweepFamily] = model == .all ? SweepFamily.allCases : [SweepFamily(rawValue: model.rawValue)!]
        let carve = ValidationCarve(scheme: validation, fraction: validationFraction, k: validationK, seed: seed)
        if carve.resolved(for: data) == .chrono && data.timestamps == nil { throw CLIError("sweep: \(ValidationCarve.CarveError.needsTimes)") }
        let carveText = carve.params(for: data).sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        Console.err("sweep: \(families.map(\.rawValue).joined(separator: ", ")) on \(data.users.count) users x \(data.items.count) items; "
                    + "validation carve: \(carveText)")
        let metric = "ndcg@\(k)"
        var outcomes: [FamilyOutcome] = []
        for family in families {
            let grid = model == .all ? family.defaultGrid : try Self.pairs(grids, flag: "--grid").map { ($0.0, $0.1.split(separator: ",").map(String.init)) }
            let base = Dictionary(try Self.pairs(sets, flag: "--set"), uniquingKeysWith: { $1 })
            let spec = SweepSpec(keys: grid.map(\.0), values: grid.map(\.1), base: base, random: random, seed: seed,
                                 validationFraction: validationFraction, k: k, model: family, validation: validation, validationK: validationK)
            let configs: [[String: String]]
            do { configs = try Sweep.configurations(spec) } catch let e as SweepError { throw CLIError("sweep: \(e)") }
            let name = ((train as NSString).lastPathComponent as NSString).deletingPathExtension
            let dir = model == .all || out == nil ? (out.map { $0 + "/" + family.rawValue } ?? "\(models)/sweep-\(name)-\(spec.digest)") : out!
            Console.err("sweep: \(family.rawValue): \(configs.count) configurations; trials in \(dir)/sweep.json")
            let t0 = Date()
            let (record, outcome): (SweepRecord, Sweep.Outcome)
            do {
                (record, outcome) = try Sweep.run(spec, data: data, dataPaths: paths, fingerprint: fingerprint, directory: dir,
                                                  threads: common.threads, features: featureSet, cancel: CLIContext.cancel) { Console.err($0) }
            } catch let e as SweepError { throw CLIError("sweep: \(e)") } catch let e as ValidationCarve.CarveError { throw CLIError("sweep: \(e)") }
            if outcome == .cancelled {
                throw CLIError("sweep: interrupted after \(record.trials.count) of \(configs.count) \(family.rawValue) trials; the same command resumes")
            }
            let sorted = record.trials.sorted { ($0.metrics[metric] ?? 0) > ($1.metrics[metric] ?? 0) }
            if !json && model != .all {
                var rows = [spec.keys + ["val " + metric, "val recall@\(k)", "seconds"]]
                for t in sorted {
                    rows.append(spec.keys.map { t.params[$0] ?? "-" }
                                + [String(format: "%.4f", t.metrics[metric] ?? 0), String(format: "%.4f", t.metrics["recall@\(k)"] ?? 0),
                                   String(format: "%.1f", t.seconds)])
                }
                print(Table.render(rows))
            }
            outcomes.append(FamilyOutcome(family: family, record: record, best: sorted[0], seconds: Date().timeIntervalSince(t0)))
        }
        func describe(_ p: [String: String]) -> String { p.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        // The second stage over the best ALS and EASE found above, scored on the same carve
        // (cross-fitted over the validation users), competes like a family.
        var second: (trained: TrainedModel, spec: TrainingSpec, params: [String: String], seconds: Double)?
        if model == .all, k == 10 {
            let t0 = Date()
            let alsBest = outcomes.first { $0.family == .als }!.best.params
            let easeBest = outcomes.first { $0.family == .ease }!.best.params
            var rs = try Sweep.trainingSpec(.als, alsBest, threads: common.threads, seed: seed)
            rs.model = .rerank
            rs.validation = carve
            rs.features = featureSet
            rs.featuresSource = features
            rs.ease = try Sweep.trainingSpec(.ease, easeBest, threads: common.threads).ease
            rs.rerank.sources = RerankConfig.defaultSources(items: data.items.count, hasTimes: data.timestamps != nil)
            Console.err("sweep: second stage over \(rs.rerank.sources.joined(separator: ", ")) (ALS \(describe(alsBest)), EASE \(describe(easeBest)))")
            do {
                let t = try TrainingPipeline.fit(data, rs, cancel: CLIContext.cancel) { Console.err($0) }
                if t.completed {
                    second = (t, rs, ["sources": rs.rerank.sources.joined(separator: ","), "trees": "\(t.rerank!.trees)",
                                      "per_source": "\(rs.rerank.perSource)"], Date().timeIntervalSince(t0))
                }
            } catch TrainingError.cancelled {
                throw CLIError("sweep: interrupted while fitting the second stage")
            }
        }
        let chosen = outcomes.max { ($0.best.metrics[metric] ?? 0) < ($1.best.metrics[metric] ?? 0) }!
        let secondWins = second.map { $0.trained.rerank!.validationNDCG > (chosen.best.metrics[metric] ?? 0) } ?? false
        if !json {
            if model == .all {
                var rows = [["family", "best on validation", "val " + metric, "val recall@\(k)", "trials", "seconds"]]
                for o in outcomes {
                    rows.append([o.family.rawValue, describe(o.best.params), String(format: "%.4f", o.best.metrics[metric] ?? 0),
                                 String(format: "%.4f", o.best.metrics["recall@\(k)"] ?? 0), "\(o.record.trials.count)", String(format: "%.1f", o.seconds)])
                }
                if let second {
                    rows.append(["rerank", describe(second.params), String(format: "%.4f", second.trained.rerank!.validationNDCG), "-", "1",
                                 String(format: "%.1f", second.seconds)])
                }
                print(Table.render(rows))
                print("")
            }
            if secondWins, let second {
                print("best on validation: rerank " + describe(second.params) + String(format: " (%@ %.4f, cross-fitted)", metric,
                                                                                       second.trained.rerank!.validationNDCG))
            } else {
                print("best on validation: " + (model == .all ? chosen.family.rawValue + " " : "") + describe(chosen.best.params)
                      + String(format: " (%@ %.4f)", metric, chosen.best.metrics[metric] ?? 0))
            }
        }
        // The chosen configuration, on all of train; the only model that sees the test file (the
        // second stage already refit its sources on all of train).
        var chosenName = chosen.family.rawValue
        var chosenParams = chosen.best.params
        var chosenValidation = chosen.best.metrics[metric] ?? 0
        if secondWins, let second {
            chosenName = "rerank"
            chosenParams = second.params
            chosenValidation = second.trained.rerank!.validationNDCG
        }
        var extra = chosenParams.merging(carve.params(for: data)) { $1 }
        if chosenName != "rerank" { extra["sweep"] = chosen.record.id }
        extra["validation_\(metric)"] = String(format: "%.5f", chosenValidation)
        extra["format"] = input.format.rawValue
        // A rerun of a finished sweep chooses the same configuration: reuse the run it recorded
        // (same model, parameters, sweep, data, code and test file) instead of a duplicate.
        let testFingerprint = try test.map { try ModelStore.fingerprint(paths: [$0]) }
        let previous = RunsRegistry(root: models).all().last { e in
            e.run.model == chosenName && e.run.data.fingerprint == fingerprint && e.run.codeVersion == CodeVersion.current
                && e.run.outcome == "completed" && e.run.evaluation?.testFingerprint == testFingerprint && (test == nil || e.run.evaluation?.k == k)
                && extra.allSatisfy { RunRecord.normalized($0.value) == e.run.params[$0.key] }
        }
        var runDir: String
        var spec: TrainingSpec?
        var trained: TrainedModel?
        var testSummary: [String: Double]?
        if let previous {
            runDir = previous.directory
            Console.err("sweep: the chosen configuration is already run \(previous.id) (same sweep, data, code and test); reusing it")
            if test != nil {
                let m = previous.run.metrics
                testSummary = ["ndcg": m["ndcg@\(k)"] ?? 0, "recall": m["recall@\(k)"] ?? 0, "precision": m["precision@\(k)"] ?? 0,
                               "map": m["map@\(k)"] ?? 0, "coverage": m["coverage@\(k)"] ?? 0]
            }
        } else {
            // The chosen configuration, on all of train; the only model that sees the test file (the
            // second stage already refit its sources on all of train).
            if secondWins, let second {
                (spec, trained) = (second.spec, second.trained)
            } else {
                var fs = try Sweep.trainingSpec(chosen.family, chosen.best.params, threads: common.threads, seed: seed, features: featureSet,
                                                carve: carve)
                fs.refit = true
                fs.featuresSource = features
                spec = fs
                do { trained = try TrainingPipeline.fit(data, fs, cancel: CLIContext.cancel) { Console.err($0) } } catch TrainingError.cancelled {
                    throw CLIError("sweep: interrupted while training the chosen configuration")
                }
            }
            guard let spec, let trained, trained.completed else { throw CLIError("sweep: interrupted while training the chosen configuration") }
            let runId = ModelStore.newRunId(model: chosenName)
            runDir = models + "/" + runId
            let cui = data.confidenceMatrix(spec.confidence)
            let run = TrainingPipeline.record(
                id: runId, spec: spec, trained: trained,
                source: .init(paths: paths, format: input.format.rawValue, fingerprint: fingerprint, rows: data.count, users: data.users.count,
                              items: data.items.count, nnz: cui.nnz),
                importSeconds: 0, extraParams: extra)
            try ModelStore.save(trained.ranker, users: data.users, items: data.items, seen: cui, run: run, to: runDir)
            if let test {
                let (testData, _) = try input.read(test, verbose: common.verbose)
                let report = Evaluator(k: k, threads: common.threads).evaluate(trained.ranker, users: data.users, items: data.items, seen: cui,
                                                                               test: testData)
                try EvaluationRecord.attach(report, test: [test], to: runDir)
                let s = report.summary
                testSummary = ["ndcg": s.ndcg, "recall": s.recall, "precision": s.precision, "map": s.map, "coverage": s.coverage]
            }
        }
        if let s = testSummary, !json {
            print(String(format: "test (chosen on validation): ndcg@%d %.4f  recall@%d %.4f  precision@%d %.4f  map@%d %.4f", k, s["ndcg"]!, k,
                         s["recall"]!, k, s["precision"]!, k, s["map"]!))
        }
        // Reported only (the choice above never saw the test file): every other family's best on test.
        var familyTests: [String: [String: Double]] = [:]
        if testAll, let test, let testSummary {
            let (testData, _) = try input.read(test, verbose: common.verbose)
            familyTests[chosenName] = testSummary
            func evaluate(_ r: Ranker, _ conf: Confidence) -> [String: Double] {
                let s = Evaluator(k: k, threads: common.threads).evaluate(r, users: data.users, items: data.items,
                                                                          seen: data.confidenceMatrix(conf), test: testData).summary
                return ["ndcg": s.ndcg, "recall": s.recall, "precision": s.precision, "map": s.map, "coverage": s.coverage]
            }
            for o in outcomes where o.family.rawValue != chosenName {
                var fs = try Sweep.trainingSpec(o.family, o.best.params, threads: common.threads, seed: seed, features: featureSet, carve: carve)
                fs.refit = true
                let t = try TrainingPipeline.fit(data, fs, cancel: CLIContext.cancel)
                familyTests[o.family.rawValue] = evaluate(t.ranker, fs.confidence)
            }
            if let second, chosenName != "rerank" { familyTests["rerank"] = evaluate(second.trained.ranker, second.spec.confidence) }
            if !json {
                for (name, m) in familyTests.sorted(by: { $0.key < $1.key }) where name != chosenName {
                    print(String(format: "test (reported, not chosen): %@ ndcg@%d %.4f  recall@%d %.4f  map@%d %.4f", name, k, m["ndcg"]!, k,
                                 m["recall"]!, k, m["map"]!))
                }
            }
        }
        if json {
            var obj: [String: Any] = [
                "validation": carve.params(for: data),
                "families": outcomes.map { o in
                    ["family": o.family.rawValue, "params": o.best.params, "trials": o.record.trials.count, "seconds": o.seconds,
                     "validation": o.best.metrics, "sweep": o.record.id, "test": familyTests[o.family.rawValue] ?? [:]] as [String: Any]
                },
                "chosen": ["family": chosenName, "params": chosenParams, "validation": [metric: chosenValidation]] as [String: Any],
                "run": runDir,
            ]
            if let testSummary { obj["test"] = testSummary }
            if let second, let r = second.trained.rerank {
                obj["rerank"] = ["params": second.params, "validation": [metric: r.validationNDCG], "seconds": second.seconds,
                                 "test": familyTests["rerank"] ?? [:],
                                 "source_validation": r.sourceValidation, "importance": r.importance,
                                 "candidate_recall": r.candidateRecall] as [String: Any]
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print("best run: \(runDir)")
        }
    }
}
