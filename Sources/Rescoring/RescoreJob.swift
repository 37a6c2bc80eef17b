import Foundation
import KafkaLog
import LinearAlgebra
import Interactions
import EventLog
import Rankers
import Scoring
import Artifacts
import CandidateStore
import LiveModels
import Training

/// One full refresh of the offline side: events -> interactions -> ALS, EASE or two-tower ->
/// full-catalog top-N for every user -> a new candidate generation, switched live in the same
/// transaction that writes it, older generations pruned to the newest `keep`. The model is
/// recorded in `models/` like any training run. A failure at any step leaves the live
/// generation as it was.
///
/// The two-tower reads the catalog's captions and tags as content features, and its lists also
/// cover catalog videos nobody has interacted with yet (embedded from those features).
public struct RescoreConfig: Sendable {
    public enum Model: String, Sendable, CaseIterable { case als, ease, twoTower = "two-tower", rerank }
    public var dataDir: String
    public var modelsDir = "models"
    public var model = Model.als
    public var als = ALSConfig(factors: 64, regularization: 0.05, iterations: 15, solver: .cg)
    public var twoTower = TwoTowerConfig()
    public var ease = EASEConfig()
    /// Rerank: the second stage as given, sources included.
    public var rerank: RerankConfig?
    /// Rerank without `rerank`: these settings, with the sources the catalog size allows.
    public var rerankDefaults = RerankConfig()
    /// Two-tower: share of each user's items held out for early stopping.
    public var validationFraction = 0.1
    public var confidence = Confidence(scheme: .log, alpha: 4)
    public var mapping = EventMapping()
    public var top = 200
    /// Generations kept after the switch (the live one always is).
    public var keep = 3
    /// Switch the new generation live (false: a challenger for an experiment, made live later
    /// with `generations activate`).
    public var activate = true
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
        // A file log is read from its newest compacted interaction table on (only the tail).
        let tables = c.kafka == nil ? dir.interactionTables(ofLog: c.eventsDir) : nil
        let read = try EventTrainingData.read(source, store: store, mapping: c.mapping, tables: tables, progress: progress)
        let data = read.interactions, events = read.events, videos = read.videos
        let cui = data.confidenceMatrix(c.confidence)
        let readSeconds = Date().timeIntervalSince(t0)
        progress("events: \(events) events -> \(cui.nnz) interactions, \(data.users.count) users, \(data.items.count) videos")

        let runId = ModelStore.newRunId(model: c.model.rawValue)
        let modelDir = c.modelsDir + "/" + runId
        var spec = TrainingSpec(model: TrainingSpec.Model(rawValue: c.model.rawValue)!, als: c.als, confidence: c.confidence)
        spec.twoTower = c.twoTower
        spec.ease = c.ease
        spec.validationFraction = c.validationFraction
        if c.model == .twoTower || c.model == .rerank {
            spec.features = TwoTowerCatalog.features(videos, buckets: c.twoTower.featureBuckets)
            spec.featuresSource = "catalog"
        }
        if c.model == .rerank {
            spec.rerank = c.rerank ?? {
                var r = c.rerankDefaults
                r.sources = RerankConfig.defaultSources(items: data.items.count, hasTimes: data.timestamps != nil)
                return r
            }()
        }
        // ALS trains on the confidence matrix built above (not a second one).
        let trained = try TrainingPipeline.fit(data, spec, confidence: cui, cancel: cancel) {
            progress((c.model == .twoTower ? "two-tower " : "") + $0)
        }
        if !trained.completed { throw TrainingError.cancelled }
        let ranker = trained.ranker
        var itemIds = data.items.raw
        var scored: Ranker = ranker
        if let tt = ranker as? TwoTowerRanker {
            let (ids, vectors) = TwoTowerCatalog.extend(tt, items: data.items, videos: videos)
            itemIds = ids
            scored = StoredFactors(kind: c.model.rawValue, userFactors: tt.userFactors, itemFactors: vectors)
            if itemIds.count > data.items.count {
                progress("two-tower: \(itemIds.count - data.items.count) catalog videos without interactions embedded from caption and tags")
            }
        }
        let fitSeconds = trained.fitSeconds

        let t2 = Date()
        // Seen pairs (negatives too) excluded; placed videos are unseen by everyone.
        let seen = CSR(rows: cui.rows, cols: scored.itemCount, indptr: cui.indptr, indices: cui.indices, values: cui.values)
        // Scoring a million users takes minutes: progress every 10 s.
        final class LastReport: @unchecked Sendable { var at = 0.0 }
        let last = LastReport()
        let recs = BatchScorer(top: c.top, threads: c.als.threads).recommend(scored, exclude: seen, cancel: cancel) { p in
            guard p.elapsed - last.at >= 10, p.done < p.total else { return }
            last.at = p.elapsed
            progress(String(format: "scoring: %d/%d users, %.0fs elapsed, ETA %.0fs", p.done, p.total, p.elapsed, p.eta))
        }
        if cancel?.isCancelled == true { throw TrainingError.cancelled }
        let scoreSeconds = Date().timeIntervalSince(t2)
        progress(String(format: "scored %d users x %d videos, top %d, in %.1fs", recs.users.count, scored.itemCount, c.top, scoreSeconds))

        let run = TrainingPipeline.record(
            id: runId, spec: spec, trained: trained,
            source: .init(paths: ["events:" + source.sourceName], format: "events", fingerprint: "events-\(events)", rows: data.count,
                          users: data.users.count, items: data.items.count, nnz: cui.nnz),
            importSeconds: readSeconds, extraParams: ["top": "\(c.top)", "job": "rescore"].merging(c.mapping.params) { $1 })
        try ModelStore.save(ranker, users: data.users, items: data.items, seen: cui, run: run, to: modelDir)

        let t3 = Date()
        let lists = recs.storeLists(users: data.users)
        let gen = try store.writeGeneration(model: c.model.rawValue, runId: runId, items: itemIds, lists: lists, activate: c.activate,
                                            modelDir: URL(fileURLWithPath: modelDir).standardizedFileURL.path,
                                            eventsThrough: source.logPosition)
        progress(String(format: c.activate ? "generation %lld written and live in %.1fs"
                                           : "generation %lld written in %.1fs, not live (a challenger: generations activate to switch)",
                        gen, Date().timeIntervalSince(t3)))
        let pruned = try store.prune(keep: c.keep)
        let storeSeconds = Date().timeIntervalSince(t3)
        return RescoreResult(runId: runId, modelDirectory: modelDir, generation: gen, events: events,
                             users: data.users.count, videos: data.items.count, interactions: cui.nnz, pruned: pruned,
                             seconds: (readSeconds, fitSeconds, scoreSeconds, storeSeconds))
    }
}
