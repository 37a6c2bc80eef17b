import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Artifacts

/// What to train: one model family and its settings. `foryou train`, `foryou rescore` and the
/// ranking worker's retrains all describe their model with this and train it through
/// `TrainingPipeline`, so a model trained by any of them records the same parameters.
public struct TrainingSpec: Sendable {
    public enum Model: String, Sendable, CaseIterable { case als, popularity, ease, twoTower = "two-tower", blend, rerank }

    public var model: Model
    public var als: ALSConfig
    public var confidence: Confidence
    public var twoTower = TwoTowerConfig()
    public var ease = EASEConfig()
    /// The second stage: sources, candidates per source, trees (its sources' ALS, EASE and
    /// two-tower settings are `als`, `ease` and `twoTower`).
    public var rerank = RerankConfig()
    /// Two-tower and blend: the validation carve of the training data (early stopping, blend weight).
    public var validation = ValidationCarve()
    /// Two-tower and blend: share of each user's training items held out for early stopping.
    public var validationFraction: Double {
        get { validation.fraction }
        set { validation.fraction = newValue }
    }
    /// Two-tower and blend: train again on every interaction for the chosen number of epochs.
    public var refit = false
    /// Two-tower and blend: content features of the items, and where they came from (recorded).
    public var features: ItemFeatures?
    public var featuresSource: String?

    public init(model: Model, als: ALSConfig = ALSConfig(factors: 64, regularization: 0.05, iterations: 15, solver: .cg),
                confidence: Confidence = Confidence(scheme: .linear, alpha: 1)) {
        self.model = model
        self.als = als
        self.confidence = confidence
    }
}

/// A trained model and everything its run record needs.
public struct TrainedModel {
    public var ranker: Ranker
    /// The parameters, in the one form every command records.
    public var params: [String: String]
    public var losses: [Double] = []
    public var iterationSeconds: [Double] = []
    public var curves: [String: [Double]]?
    /// What training measured or decided (validation figures, throughput, chosen trees or weight).
    public var results: [String: String] = [:]
    /// "completed", or why training stopped early and what was kept.
    public var outcome = "completed"
    /// False when training was interrupted: `ranker` holds what was trained so far.
    public var completed = true
    public var fitSeconds = 0.0
    /// Two-tower and blend: the two-tower job's result (epochs, validation users).
    public var twoTower: TwoTowerJob.Result?
    /// Blend: the fitted weight and its validation figures.
    public var blend: BlendJob.Result?
    /// Second stage: trees, validation figures, feature importances.
    public var rerank: RerankJob.Result?

    public init(ranker: Ranker, params: [String: String], losses: [Double] = [], iterationSeconds: [Double] = []) {
        self.ranker = ranker
        self.params = params
        self.losses = losses
        self.iterationSeconds = iterationSeconds
    }
}

public enum TrainingPipeline {
    /// Trains `spec.model` on `data`. An interrupted ALS or two-tower run returns what was
    /// trained with `completed == false` (the caller decides whether to keep it); an
    /// interrupted blend throws `TrainingError.cancelled` (no half blend exists).
    /// `confidence`: `data`'s confidence matrix under `spec.confidence` when the caller already
    /// built it (used by ALS, EASE and popularity instead of building a second; for ALS the caller
    /// may then have dropped `data`'s rows to save their memory, as ALS needs only the matrix).
    public static func fit(_ data: Interactions, _ spec: TrainingSpec, confidence given: CSR? = nil, cancel: CancellationToken? = nil,
                           progress: @escaping (String) -> Void = { _ in }) throws -> TrainedModel {
        let t0 = Date()
        var params = ["confidence": spec.confidence.scheme.rawValue, "alpha": "\(spec.confidence.alpha)"]
        var trained: TrainedModel
        // The two-tower's carve follows its seed, as it always has.
        var carve = spec.validation
        carve.seed = spec.twoTower.seed
        switch spec.model {
        case .popularity:
            trained = TrainedModel(ranker: PopularityModel(fit: given ?? data.confidenceMatrix(spec.confidence)), params: params)
        case .ease:
            var config = spec.ease
            config.threads = spec.als.threads
            params["lambda"] = "\(config.lambda)"
            params["gram"] = config.gram.rawValue
            let model = try EASEModel.fit(given ?? data.confidenceMatrix(spec.confidence), config: config, progress: progress)
            trained = TrainedModel(ranker: model, params: params)
        case .rerank:
            var c = spec.rerank
            c.als = spec.als; c.confidence = spec.confidence; c.ease = spec.ease; c.twoTower = spec.twoTower
            c.features = spec.features; c.threads = spec.als.threads; c.seed = spec.als.seed
            let r = try RerankJob.fit(data, config: c, validation: spec.validation, cancel: cancel, progress: progress)
            params.merge(alsParams(spec.als)) { $1 }
            params.merge(spec.validation.params(for: data)) { $1 }
            params.merge([
                "sources": c.sources.joined(separator: ","), "per_source": "\(c.perSource)",
                "max_trees": "\(c.maxTrees)", "learning_rate": "\(c.learningRate)", "max_depth": "\(c.maxDepth)",
                "bag": "\(c.bag)", "label_carves": "\(c.labelCarves)",
            ]) { $1 }
            if c.sources.contains("ease") { params["lambda"] = "\(spec.ease.lambda)" }
            if let f = spec.featuresSource { params["features"] = f }
            trained = TrainedModel(ranker: r.ranker, params: params)
            trained.results = [
                "trees": "\(r.trees)", "bag": "\(r.bag)", "training_groups": "\(r.trainingGroups)",
                "validation_ndcg": String(format: "%.5f", r.validationNDCG), "validation_users": "\(r.validationUsers)",
                "candidate_recall": String(format: "%.4f", r.candidateRecall),
                "source_validation_ndcg": r.sourceValidation.sorted { $0.key < $1.key }.map { String(format: "%@:%.5f", $0.key, $0.value) }
                    .joined(separator: ","),
            ]
            trained.curves = ["validation_ndcg@10_by_trees": r.curve.map(\.ndcg)]
            trained.rerank = r
        case .als:
            let cui = given ?? data.confidenceMatrix(spec.confidence)
            params.merge(alsParams(spec.als)) { $1 }
            let m = ALSModel(config: spec.als, users: cui.rows, items: cui.cols)
            let result = try m.train(cui, cancel: cancel) { progress($0.line) }
            trained = TrainedModel(ranker: m, params: params, losses: m.losses, iterationSeconds: m.iterationSeconds)
            if case .cancelled(let n) = result {
                trained.outcome = "interrupted after \(n) of \(spec.als.iterations) iterations"
                trained.completed = false
            }
        case .twoTower:
            let r = try TwoTowerJob.fit(data, features: spec.features, config: spec.twoTower, validation: carve,
                                        refit: spec.refit, cancel: cancel) { progress($0.line) }
            params.merge(twoTowerParams(spec, data: data)) { $1 }
            trained = TrainedModel(ranker: r.ranker, params: params, losses: r.reports.map(\.loss))
            trained.results = twoTowerResults(r)
            // Without a validation split no epoch has a value (and JSON has no NaN): no curve.
            let ndcgs = r.reports.compactMap(\.validationNDCG)
            trained.curves = ndcgs.isEmpty ? nil : ["validation_ndcg@10": ndcgs]
            // Stopping early is a normal end (recorded in the parameters); only an interruption is not.
            if case .cancelled = r.outcome {
                trained.outcome = trained.results["outcome"]!
                trained.completed = false
            }
            trained.twoTower = r
        case .blend:
            let r = try BlendJob.fit(data, features: spec.features, twoTower: spec.twoTower, als: spec.als,
                                     confidence: spec.confidence, validation: carve, refit: spec.refit,
                                     cancel: cancel, progress: progress)
            params.merge(alsParams(spec.als)) { $1 }
            params.merge(twoTowerParams(spec, data: data)) { a, _ in a }
            trained = TrainedModel(ranker: r.ranker, params: params)
            trained.results = twoTowerResults(r.twoTower).merging([
                "lambda": "\(r.lambda)", "als_validation_ndcg": String(format: "%.5f", r.alsValidation),
                "two_tower_validation_ndcg": String(format: "%.5f", r.twoTowerValidation),
                "blend_grid": r.grid.map { String(format: "%.1f:%.5f", $0.lambda, $0.ndcg) }.joined(separator: ",")]) { $1 }
            trained.twoTower = r.twoTower
            trained.blend = r
        }
        trained.fitSeconds = Date().timeIntervalSince(t0)
        return trained
    }

    static func alsParams(_ c: ALSConfig) -> [String: String] {
        ["factors": "\(c.factors)", "reg": "\(c.regularization)", "iters": "\(c.iterations)", "solver": c.solver.rawValue,
         "cg_steps": "\(c.cgSteps)", "seed": "\(c.seed)", "threads": "\(c.threads)"]
    }

    static func twoTowerParams(_ spec: TrainingSpec, data: Interactions) -> [String: String] {
        let t = spec.twoTower
        var params: [String: String] = [
            "dim": "\(t.dim)", "hidden": "\(t.hidden)", "epochs": "\(t.epochs)", "batch": "\(t.batch)", "lr": "\(t.learningRate)",
            "weight_decay": "\(t.weightDecay)", "temperature": "\(t.temperature)", "feature_buckets": "\(t.featureBuckets)",
            "uniform_negatives": "\(t.uniformNegatives)", "log_q": "\(t.logQ)", "history": "\(t.history)",
            "history_gradient": "\(t.historyGradient)", "patience": "\(t.patience)",
            "seed": "\(t.seed)",
        ]
        if let f = spec.featuresSource { params["features"] = f }
        params.merge(spec.validation.params(for: data)) { $1 }
        return params
    }

    /// What a two-tower fit measured and decided: validation NDCG per epoch, throughput, the
    /// epochs of the refit on all of train, and how it ended.
    static func twoTowerResults(_ r: TwoTowerJob.Result) -> [String: String] {
        var out = [
            "refit_epochs": "\(r.refitEpochs)",
            "validation_ndcg": r.reports.map { $0.validationNDCG.map { String(format: "%.5f", $0) } ?? "-" }.joined(separator: ","),
            "examples_per_s": String(format: "%.0f", r.reports.map(\.examplesPerSecond).reduce(0, +) / Double(max(1, r.reports.count))),
        ]
        switch r.outcome {
        case .completed: out["outcome"] = "completed"
        case .stoppedEarly(let e): out["outcome"] = "stopped early; best epoch \(e)"
        case .cancelled(let e): out["outcome"] = "interrupted; best epoch \(e) kept"
        }
        return out
    }

    /// The run record of a trained model: one builder for every command that trains.
    public static func record(id: String, spec: TrainingSpec, trained: TrainedModel, source: RunRecord.DataInfo,
                              importSeconds: Double, extraParams: [String: String] = [:]) -> RunRecord {
        var run = RunRecord(
            id: id, model: spec.model.rawValue, createdAt: UTCStamp.iso8601(),
            codeVersion: CodeVersion.current, params: trained.params.merging(extraParams) { $1 },
            data: source, losses: trained.losses,
            timings: .init(importSeconds: importSeconds, fitSeconds: trained.fitSeconds, iterationSeconds: trained.iterationSeconds,
                           lossSeconds: nil),
            outcome: trained.outcome,
            environment: ["blas_core": BLASRuntime.coreName, "cores": "\(BLASRuntime.availableCores)"],
            metrics: [:], files: [:])
        if let c = trained.curves { run.curves = c }
        if !trained.results.isEmpty { run.results = trained.results }
        if let r = trained.rerank { run.featureImportance = r.importance }
        return run
    }
}
