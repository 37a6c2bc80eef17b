import Foundation
import LinearAlgebra
import Interactions
import EventLog
import Rankers
import Scoring
import Evaluation
import CandidateStore
import LiveModels
import Training

/// How far the ranking worker's fold-in lists drift from a full retrain on the same events.
/// The log is cut twice by time: a model trained on events before the first cut plays the live
/// generation; the users with events between the cuts are folded into it exactly as the worker
/// does (their whole history, videos new to the model placed from their first interactions); a
/// second model is retrained on everything before the second cut. Both lists, and the stale
/// lists of the first model, are scored on what those users went on to engage with after the
/// second cut, and compared with each other (overlap@K).
public struct FoldInStudy {
    public struct Result: Sendable {
        public var users: Int
        public var testUsers: Int
        public var overlap: Double
        public var ndcgStale: Double, ndcgFoldIn: Double, ndcgRetrain: Double
        public var recallFoldIn: Double, recallRetrain: Double
        public var foldInSeconds: Double
        public var placedVideos: Int
    }

    public var dataDir: String
    public var cuts = (0.7, 0.85)
    public var k = 10
    public var als = ALSConfig(factors: 64, regularization: 0.05, iterations: 15, solver: .cg)
    public var confidence = Confidence(scheme: .log, alpha: 4)
    public var mapping = EventMapping()

    public init(dataDir: String) { self.dataDir = dataDir }

    public func run(progress: (String) -> Void = { _ in }) throws -> Result {
        let dir = DataDirectory(dataDir)
        let log = try EventLog(directory: dir.events)
        defer { log.close() }
        let catalog = Dictionary(try dir.openStore().videos().map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        let durations = catalog.mapValues(\.durationMs)
        var events: [Event] = []
        try log.forEach(from: 0) { events.append($0) }
        guard events.count >= 100 else { throw TrainingError.noData("\(dir.events) holds \(events.count) events; too few to cut") }
        let times = events.map(\.timeMs).sorted()
        let t1 = times[Int(Double(times.count) * cuts.0)], t2 = times[Int(Double(times.count) * cuts.1)]
        var early = EventHistory(mapping: mapping), late = EventHistory(mapping: mapping)
        var between: [String] = [], inBetween = Set<String>()
        for e in events where e.timeMs < t2 {
            let d = durations[e.video] ?? 0
            if e.timeMs < t1 { early.add(e, duration: d) }
            late.add(e, duration: d)
            if e.timeMs >= t1 && inBetween.insert(e.user).inserted { between.append(e.user) }
        }
        var engaged: [String: Set<String>] = [:]
        for e in events where e.timeMs >= t2 && inBetween.contains(e.user) && late.pair(user: e.user, video: e.video) == nil {
            if MappingStudy.isEngagement(e, duration: durations[e.video] ?? 0) { engaged[e.user, default: []].insert(e.video) }
        }
        var cfg = als
        cfg.computeLoss = false
        let dataA = early.interactions(), dataB = late.interactions()
        progress("live model on \(dataA.count) pairs before the first cut; retrain on \(dataB.count) before the second")
        let (modelA, _) = try ALSModel.fit(dataA.confidenceMatrix(confidence), config: cfg)
        let (modelB, _) = try ALSModel.fit(dataB.confidenceMatrix(confidence), config: cfg)

        // Fold-in, as the worker does it.
        let t0 = Date()
        let fold = FoldInModel(generation: 0, als: modelA, users: dataA.users, items: dataA.items, confidence: confidence,
                               mapping: mapping)
        var usersOf: [String: Set<String>] = [:]
        for (user, pairs) in late.dictionary {
            for video in pairs.keys where dataA.items.index(of: video) == nil { usersOf[video, default: []].insert(user) }
        }
        try fold.place(Array(usersOf.keys), history: late, catalog: catalog, usersOf: usersOf)
        let folded = try fold.lists(for: between, history: late, top: k, threads: als.threads)
        let foldSeconds = Date().timeIntervalSince(t0)
        var foldLists: [String: [String]] = [:]
        for l in folded { foldLists[l.user] = l.videos }

        func lists(_ model: ALSModel, _ data: Interactions, _ h: EventHistory) -> [String: [String]] {
            let users = between.compactMap { data.users.index(of: $0) }
            let seen = MappingStudy.seenMatrix(h, users: data.users, items: data.items)
            let recs = BatchScorer(top: k, threads: als.threads).recommend(model, users: users, exclude: seen)
            var out: [String: [String]] = [:]
            for (row, u) in users.enumerated() { out[data.users.raw[Int(u)]] = recs.list(row).map { data.items.raw[Int($0)] } }
            return out
        }
        // Stale: the live model's lists had nothing been folded in (what a nightly batch serves).
        let stale = lists(modelA, dataA, late)
        let retrain = lists(modelB, dataB, late)

        var ids = IdMap()
        let testUsers = between.filter { engaged[$0] != nil }
        func score(_ l: [String: [String]]) -> MetricSummary {
            let truth = testUsers.map { Set(engaged[$0]!.map { ids.index(inserting: $0) }) }
            let ls = testUsers.map { ArraySlice((l[$0] ?? []).map { ids.index(inserting: $0) }) }
            return Metrics.atK(k, lists: ls, truth: truth, catalogSize: max(1, durations.count)).0
        }
        let sStale = score(stale), sFold = score(foldLists), sRetrain = score(retrain)
        var overlap = 0.0
        for u in between {
            let a = Set(foldLists[u] ?? []), b = Set(retrain[u] ?? [])
            overlap += Double(a.intersection(b).count) / Double(k)
        }
        return Result(users: between.count, testUsers: testUsers.count, overlap: overlap / Double(max(1, between.count)),
                      ndcgStale: sStale.ndcg, ndcgFoldIn: sFold.ndcg, ndcgRetrain: sRetrain.ndcg,
                      recallFoldIn: sFold.recall, recallRetrain: sRetrain.recall, foldInSeconds: foldSeconds,
                      placedVideos: fold.extraIds.count)
    }
}
