import Foundation
import LinearAlgebra
import Interactions
import EventLog
import Rankers
import Scoring
import Artifacts
import CandidateStore

/// One full refresh of the offline side: events -> interactions -> ALS -> full-catalog top-N for
/// every user -> a new candidate generation, switched live in the same transaction that writes
/// it, older generations pruned to the newest `keep`. The model is recorded in `models/` like any
/// training run. A failure at any step leaves the live generation as it was.
public struct RescoreConfig: Sendable {
    public var dataDir: String
    public var modelsDir = "models"
    public var als = ALSConfig(factors: 64, regularization: 0.05, iterations: 15, solver: .cg)
    public var confidence = Confidence(scheme: .log, alpha: 4)
    public var mapping = EventMapping()
    public var top = 200
    /// Generations kept after the switch (the live one always is).
    public var keep = 3

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
        let log = try EventLog(directory: dir.events)
        defer { log.close() }
        let store = try dir.openStore()
        let durations = Dictionary(try store.videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        let data = try EventMapping.fromLog(log, durations: durations, mapping: c.mapping)
        guard data.weights.contains(where: { $0 > 0 }) else {
            throw RescoreError.noData("\(dir.events) holds no positive interactions (\(log.endId) events); nothing to train on")
        }
        let cui = data.confidenceMatrix(c.confidence)
        let readSeconds = Date().timeIntervalSince(t0)
        progress("events: \(log.endId) events -> \(cui.nnz) interactions, \(data.users.count) users, \(data.items.count) videos")

        let t1 = Date()
        let model = ALSModel(config: c.als, users: cui.rows, items: cui.cols)
        let outcome = try model.train(cui, cancel: cancel) { progress($0.line) }
        if case .cancelled = outcome { throw RescoreError.cancelled }
        let fitSeconds = Date().timeIntervalSince(t1)

        let t2 = Date()
        let recs = BatchScorer(top: c.top, threads: c.als.threads).recommend(model, exclude: cui, cancel: cancel)
        if cancel?.isCancelled == true { throw RescoreError.cancelled }
        let scoreSeconds = Date().timeIntervalSince(t2)
        progress(String(format: "scored %d users x %d videos, top %d, in %.1fs", recs.users.count, model.itemCount, c.top, scoreSeconds))

        let runId = ModelStore.newRunId(model: "als")
        let modelDir = c.modelsDir + "/" + runId
        let run = RunRecord(
            id: runId, model: "als", createdAt: ISO8601DateFormatter().string(from: Date()), codeVersion: CodeVersion.current,
            params: ["factors": "\(c.als.factors)", "reg": "\(c.als.regularization)", "iters": "\(c.als.iterations)",
                     "solver": c.als.solver.rawValue, "confidence": c.confidence.scheme.rawValue, "alpha": "\(c.confidence.alpha)",
                     "top": "\(c.top)", "job": "rescore"].merging(c.mapping.params) { $1 },
            data: .init(paths: ["events:" + dir.events], format: "events", fingerprint: "events-\(log.endId)", rows: data.count,
                        users: data.users.count, items: data.items.count, nnz: cui.nnz),
            losses: model.losses,
            timings: .init(importSeconds: readSeconds, fitSeconds: fitSeconds, iterationSeconds: model.iterationSeconds,
                           lossSeconds: nil),
            outcome: "completed", environment: ["blas_core": BLASRuntime.coreName, "cores": "\(BLASRuntime.availableCores)"],
            metrics: [:], files: [:])
        try ModelStore.save(model, users: data.users, items: data.items, seen: cui, run: run, to: modelDir)

        let t3 = Date()
        let lists = (0..<recs.users.count).map { row in
            (user: data.users.raw[Int(recs.users[row])], items: Array(recs.list(row)), scores: Array(recs.scoreList(row)))
        }
        let gen = try store.writeGeneration(model: "als", runId: runId, items: data.items.raw, lists: lists, activate: true,
                                            modelDir: URL(fileURLWithPath: modelDir).standardizedFileURL.path,
                                            eventsThrough: log.endId)
        progress(String(format: "generation %lld written and live in %.1fs", gen, Date().timeIntervalSince(t3)))
        let pruned = try store.prune(keep: c.keep)
        let storeSeconds = Date().timeIntervalSince(t3)
        return RescoreResult(runId: runId, modelDirectory: modelDir, generation: gen, events: log.endId,
                             users: data.users.count, videos: data.items.count, interactions: cui.nnz, pruned: pruned,
                             seconds: (readSeconds, fitSeconds, scoreSeconds, storeSeconds))
    }
}
