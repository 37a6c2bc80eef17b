import Foundation
import LinearAlgebra
import Interactions
import EventLog
import Rankers
import Scoring
import Artifacts
import CandidateStore

/// Keeps the live generation fresh between retrains: reads the event log from its committed
/// cursor in micro-batches, recomputes each touched user's vector against the live model's
/// fixed item factors from the user's whole history (an exact solve, so re-applying is
/// harmless), rescores the full catalog for that user, and replaces the user's list in the live
/// generation in the same transaction that moves the cursor.
public final class RankingWorker {
    public struct Config: Sendable {
        public var dataDir: String
        public var consumer = "ranker"
        public var top = 200
        public var batch = 2_000
        /// Must match the confidence the live model was trained with (`RescoreConfig` default).
        public var confidence = Confidence(scheme: .log, alpha: 4)
        public var mapping = EventMapping()
        public init(dataDir: String) { self.dataDir = dataDir }
    }

    public struct Step: Sendable, Equatable {
        public var events: Int
        public var usersUpdated: Int
        public var nextEvent: UInt64
        /// Seconds from the newest applied event's server timestamp to its list being stored.
        public var freshnessSeconds: Double?
    }

    /// Events in the log not yet applied.
    public var lag: UInt64 {
        try? log.refresh()
        return log.endId > nextEvent ? log.endId - nextEvent : 0
    }

    public let config: Config
    let store: SQLiteFeedStore
    let log: EventLog
    private var durations: [String: Int] = [:]
    private var history: EventHistory
    public private(set) var nextEvent: UInt64 = 0
    private var model: StoredModel?
    private var modelGeneration: Int64?

    public init(config: Config) throws {
        self.config = config
        history = EventHistory(mapping: config.mapping)
        let dir = DataDirectory(config.dataDir)
        store = try dir.openStore()
        log = try EventLog(directory: dir.events)
        durations = Dictionary(try store.videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        nextEvent = try store.consumerCursor(config.consumer)?.nextEvent ?? 0
        // Rebuild the histories the committed cursor already covers.
        try log.forEach(from: 0, limit: Int(nextEvent)) { add($0) }
    }

    deinit { log.close() }

    private func add(_ e: Event) { history.add(e, duration: durations[e.video] ?? 0) }

    /// Loads the live generation's model when the live generation changed.
    private func liveModel() throws -> (Int64, StoredModel)? {
        guard let live = try store.liveGeneration() else { return nil }
        if modelGeneration != live.id {
            guard let dir = try store.modelDirectory(generation: live.id) else { return nil }
            model = try ModelStore.load(dir)
            modelGeneration = live.id
        }
        guard let model, model.ranker is FactorRanker else { return nil }
        return (live.id, model)
    }

    /// Processes up to one batch of new events; returns what it did (0 events: nothing new, or
    /// no factor model is live yet).
    @discardableResult
    public func step() throws -> Step {
        guard let (generation, m) = try liveModel(), let ranker = m.ranker as? ALSModel else {
            return Step(events: 0, usersUpdated: 0, nextEvent: nextEvent, freshnessSeconds: nil)
        }
        try log.refresh()  // the server appends in another process
        let events = try log.read(from: nextEvent, limit: config.batch)
        guard let last = events.last else { return Step(events: 0, usersUpdated: 0, nextEvent: nextEvent, freshnessSeconds: nil) }
        // New videos may have been added to the catalog since start.
        if events.contains(where: { durations[$0.video] == nil }) {
            durations = Dictionary(try store.videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        }
        var touched: [String] = []
        var seenUsers = Set<String>()
        for e in events {
            add(e)
            if seenUsers.insert(e.user).inserted { touched.append(e.user) }
        }
        var lists: [(user: String, videos: [String], scores: [Float])] = []
        let nItems = ranker.itemCount
        var scores = [Float](repeating: 0, count: nItems)
        var heap = TopK(k: config.top)
        var outItems = [Int32](repeating: 0, count: config.top), outScores = [Float](repeating: 0, count: config.top)
        for user in touched {
            var items: [Int32] = [], conf: [Float] = [], seen: [Int32] = []
            for (video, pair) in history.pairs[user] ?? [:] {
                guard let i = m.items.index(of: video) else { continue }  // no factors yet: the feed's fallback places it
                seen.append(i)
                guard history.isPositive(pair) else { continue }
                items.append(i)
                conf.append(config.confidence.apply(pair.weight))
            }
            guard !items.isEmpty else { continue }
            let x = try ranker.foldIn(items: items, confidences: conf)
            BLAS.gemv(transpose: false, m: nItems, n: ranker.factors, a: ranker.itemFactors.storage, lda: ranker.factors,
                      x: x, y: &scores)
            for i in seen { scores[Int(i)] = -.infinity }
            let n = heap.select(scores, nItems, items: &outItems, outScores: &outScores)
            lists.append((user: user, videos: outItems.prefix(n).map { m.items.raw[Int($0)] }, scores: Array(outScores.prefix(n))))
        }
        try store.replaceLists(generation: generation, lists: lists, consumer: config.consumer, nextEvent: last.id + 1)
        nextEvent = last.id + 1
        let fresh = Date().timeIntervalSince1970 - Double(last.timeMs) / 1000
        return Step(events: events.count, usersUpdated: lists.count, nextEvent: nextEvent, freshnessSeconds: fresh)
    }
}
