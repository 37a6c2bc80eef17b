import Foundation
import KafkaLog
import LinearAlgebra
import Interactions
import EventLog
import Rankers
import Scoring
import Artifacts
import CandidateStore

/// One full refresh of the offline side: events -> interactions -> ALS or two-tower ->
/// full-catalog top-N for every user -> a new candidate generation, switched live in the same
/// transaction that writes it, older generations pruned to the newest `keep`. The model is
/// recorded in `models/` like any training run. A failure at any step leaves the live
/// generation as it was.
///
/// The two-tower reads the catalog's captions and tags as content features, and its lists also
/// cover catalog videos nobody has interacted with yet (embedded from those features).
public struct RescoreConfig: Sendable {
    public enum Model: String, Sendable, CaseIterable { case als, twoTower = "two-tower" }
    public var dataDir: String
    public var modelsDir = "models"
    public var model = Model.als
    public var als = ALSConfig(factors: 64, regularization: 0.05, iterations: 15, solver: .cg)
    public var twoTower = TwoTowerConfig()
    /// Two-tower: share of each user's items held out for early stopping.
    public var validationFraction = 0.1
    public var confidence = Confidence(scheme: .log, alpha: 4)
    public var mapping = EventMapping()
    public var top = 200
    /// Generations kept after the switch (the live one always is).
    public var keep = 3
    /// The candidate store to write into (default: the data directory's SQLite file).
    public var store: (any FeedStore)? = nil
    /// Train on this Kafka topic (to its end when the job starts) instead of the data directory's file log.
    public var kafka: KafkaLocation?
    /// The file log's folder otherwise (nil: the data directory's events/).
    public var eventsDir: String?

    public init(dataDir: String) { self.dataDir = dataDir }
}

public struct RescoreResult: Sendable {
    public var runId: String
    public var modelDirectory: String
    public var generation: Int64
    public var events: UInt64
    public var users: Int
    public var videos: Int
    public var interactions: Int
    public var pruned: [Int64]
    public var seconds: (read: Double, fit: Double, score: Double, store: Double)
}

public enum RescoreError: Error, CustomStringConvertible {
    case noData(String)
    case cancelled

    public var description: String {
        switch self {
        case .noData(let s): return s
        case .cancelled: return "interrupted before the new generation was stored; the live generation is unchanged"
        }
    }
}

public enum RescoreJob {
    public static func run(_ c: RescoreConfig, cancel: CancellationToken? = nil,
                           progress: @escaping (String) -> Void = { _ in }) throws -> RescoreResult {
        let dir = DataDirectory(c.dataDir)
        let t0 = Date()
        let source: EventSource
        var closeLog: (() -> Void)?
        if let k = c.kafka {
            source = KafkaTopicSource(location: k)
        } else {
            let log = try EventLog(directory: c.eventsDir ?? dir.events)
            source = log
            closeLog = log.close
        }
        defer { closeLog?() }
        let store = try c.store ?? dir.openStore()
        let videos = try store.videos()
        let durations = Dictionary(videos.map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        let (data, events) = try EventMapping.counted(source, durations: durations, mapping: c.mapping)
        guard data.weights.contains(where: { $0 > 0 }) else {
            throw RescoreError.noData("\(source.sourceName) holds no positive interactions (\(events) events); nothing to train on")
        }
        let cui = data.confidenceMatrix(c.confidence)
        let readSeconds = Date().timeIntervalSince(t0)
        progress("events: \(events) events -> \(cui.nnz) interactions, \(data.users.count) users, \(data.items.count) videos")

        let t1 = Date()
        let runId = ModelStore.newRunId(model: c.model.rawValue)
        let modelDir = c.modelsDir + "/" + runId
        var params = ["confidence": c.confidence.scheme.rawValue, "alpha": "\(c.confidence.alpha)", "top": "\(c.top)", "job": "rescore"]
            .merging(c.mapping.params) { $1 }
        let ranker: FactorRanker
        var itemIds = data.items.raw
        var itemVectors: Matrix
        var losses: [Double] = [], iterationSeconds: [Double] = []
        switch c.model {
        case .als:
            let model = ALSModel(config: c.als, users: cui.rows, items: cui.cols)
            let outcome = try model.train(cui, cancel: cancel) { progress($0.line) }
            if case .cancelled = outcome { throw RescoreError.cancelled }
            params.merge(["factors": "\(c.als.factors)", "reg": "\(c.als.regularization)", "iters": "\(c.als.iterations)",
                          "solver": c.als.solver.rawValue]) { $1 }
            ranker = model
            itemVectors = model.itemFactors
            losses = model.losses
            iterationSeconds = model.iterationSeconds
        case .twoTower:
            let features = TwoTowerCatalog.features(videos, buckets: c.twoTower.featureBuckets)
            let r = TwoTowerJob.fit(data, features: features, config: c.twoTower, validationFraction: c.validationFraction,
                                    cancel: cancel) { progress("two-tower " + $0.line) }
            if case .cancelled = r.outcome { throw RescoreError.cancelled }
            let t = c.twoTower
            params.merge(["dim": "\(t.dim)", "hidden": "\(t.hidden)", "epochs": "\(t.epochs)", "batch": "\(t.batch)",
                          "lr": "\(t.learningRate)", "weight_decay": "\(t.weightDecay)", "temperature": "\(t.temperature)",
                          "feature_buckets": "\(t.featureBuckets)", "history": "\(t.history)", "features": "catalog",
                          "seed": "\(t.seed)", "validation_fraction": "\(c.validationFraction)",
                          "validation_ndcg": r.reports.map { $0.validationNDCG.map { String(format: "%.5f", $0) } ?? "-" }
                              .joined(separator: ",")]) { $1 }
            ranker = r.ranker
            (itemIds, itemVectors) = TwoTowerCatalog.extend(r.ranker, items: data.items, videos: videos)
            losses = r.reports.map(\.loss)
            if itemIds.count > data.items.count {
                progress("two-tower: \(itemIds.count - data.items.count) catalog videos without interactions embedded from caption and tags")
            }
        }
        let fitSeconds = Date().timeIntervalSince(t1)

        let t2 = Date()
        // Seen pairs (negatives too) excluded; placed videos are unseen by everyone.
        let seen = CSR(rows: cui.rows, cols: itemVectors.rows, indptr: cui.indptr, indices: cui.indices, values: cui.values)
        let table = StoredFactors(kind: c.model.rawValue, userFactors: ranker.userFactors, itemFactors: itemVectors)
        let recs = BatchScorer(top: c.top, threads: c.als.threads).recommend(table, exclude: seen, cancel: cancel)
        if cancel?.isCancelled == true { throw RescoreError.cancelled }
        let scoreSeconds = Date().timeIntervalSince(t2)
        progress(String(format: "scored %d users x %d videos, top %d, in %.1fs", recs.users.count, itemVectors.rows, c.top, scoreSeconds))

        let run = RunRecord(
            id: runId, model: c.model.rawValue, createdAt: ISO8601DateFormatter().string(from: Date()), codeVersion: CodeVersion.current,
            params: params,
            data: .init(paths: ["events:" + source.sourceName], format: "events", fingerprint: "events-\(events)", rows: data.count,
                        users: data.users.count, items: data.items.count, nnz: cui.nnz),
            losses: losses,
            timings: .init(importSeconds: readSeconds, fitSeconds: fitSeconds, iterationSeconds: iterationSeconds,
                           lossSeconds: nil),
            outcome: "completed", environment: ["blas_core": BLASRuntime.coreName, "cores": "\(BLASRuntime.availableCores)"],
            metrics: [:], files: [:])
        try ModelStore.save(ranker, users: data.users, items: data.items, seen: cui, run: run, to: modelDir)

        let t3 = Date()
        let lists = (0..<recs.users.count).map { row in
            (user: data.users.raw[Int(recs.users[row])], items: Array(recs.list(row)), scores: Array(recs.scoreList(row)))
        }
        let gen = try store.writeGeneration(model: c.model.rawValue, runId: runId, items: itemIds, lists: lists, activate: true,
                                            modelDir: URL(fileURLWithPath: modelDir).standardizedFileURL.path,
                                            eventsThrough: source.logPosition)
        progress(String(format: "generation %lld written and live in %.1fs", gen, Date().timeIntervalSince(t3)))
        let pruned = try store.prune(keep: c.keep)
        let storeSeconds = Date().timeIntervalSince(t3)
        return RescoreResult(runId: runId, modelDirectory: modelDir, generation: gen, events: events,
                             users: data.users.count, videos: data.items.count, interactions: cui.nnz, pruned: pruned,
                             seconds: (readSeconds, fitSeconds, scoreSeconds, storeSeconds))
    }
}
