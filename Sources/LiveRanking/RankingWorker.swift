import Foundation
import LinearAlgebra
import Interactions
import EventLog
import Rankers
import Reranking
import Artifacts
import CandidateStore
import KafkaLog
import Rescoring
import LiveModels

/// Keeps the live generation fresh between retrains: reads the event log from its committed
/// cursor in micro-batches, recomputes each touched user's vector from the user's whole
/// history (so re-applying is harmless), rescores the full catalog for those users in one
/// blocked GEMM, and replaces their lists in the live generation in the same transaction that
/// moves the cursor.
///
/// With an ALS generation live, a user's vector is an exact solve against the model's fixed
/// item factors, and a video the model has no factors for is placed from its first
/// interactions: a vector solved against the fixed user factors of the model's users who
/// touched it. With a two-tower generation live, a user's vector is the user tower applied to
/// their recent positives, and every catalog video the model never saw is embedded from its
/// caption and tags by the item tower as soon as it is in the catalog.
///
/// When the live generation changes (a retrain, an activate, a rollback), users with events the
/// new generation's training did not see are folded into it before anything else; the cursor
/// records which generation it belongs to, so a crash in between redoes that step.
public final class RankingWorker {
    public struct Config: Sendable {
        public var dataDir: String
        public var consumer = "ranker"
        public var top = 200
        public var batch = 2_000
        /// nil: read from the live model's run record (what its training used).
        public var confidence: Confidence?
        public var mapping: EventMapping?
        /// Place videos without factors from their first interactions.
        public var foldInVideos = true
        /// Scoring threads (0 = all cores).
        public var threads = 0
        /// Read events from this Kafka topic as a member of consumer group `consumer` instead of
        /// the data directory's file log.
        public var kafka: KafkaLocation?
        /// The file log's folder when not Kafka (nil: the data directory's events/).
        public var eventsDir: String?
        public init(dataDir: String) { self.dataDir = dataDir }
    }

    public struct Step: Sendable, Equatable {
        public var events: Int
        public var usersUpdated: Int
        public var nextEvent: UInt64
        /// Seconds from the newest applied event's server timestamp to its list being stored.
        public var freshnessSeconds: Double?
        /// Videos without model factors that have a folded-in vector after this step.
        public var foldedVideos: Int = 0
        /// Users refolded into a generation that went live since the last step.
        public var refolded: Int = 0
    }

    /// Events in the log not yet applied.
    public var lag: UInt64 { input.lag(next: next) }
    /// True when every event the log holds (for the partitions this worker owns) was applied.
    public var caughtUp: Bool { input.caughtUp(next: next) }

    public let config: Config
    let store: any FeedStore
    /// The event log read: the data directory's file log or a Kafka topic.
    let input: WorkerEvents
    private var catalog: [String: Video] = [:]
    private var catalogVersion: Int64 = -1
    private var history: EventHistory
    /// The next event to apply, per partition owned (the file log has one, partition 0).
    public private(set) var next: [Int32: UInt64] = [:]
    /// The file log: the next event id. Kafka: offsets applied over all partitions owned.
    public var nextEvent: UInt64 {
        input.fixedPartitions != nil ? next[0] ?? 0 : next.values.reduce(0) { $0 + UInt64(KafkaEventID.offset($1)) }
    }
    private var live: LiveModel?
    /// Set when a partition's stored cursor moved under this worker (see `step`).
    private var needsAdopt = false
    /// Batches dropped because another writer had moved a cursor (the compare-and-set failed).
    public private(set) var fenced = 0
    /// Per partition, the position the history already covers when it runs ahead of the cursor
    /// (built from an interaction table newer than the cursor): events below it are not added again.
    private var historyThrough: [Int32: UInt64] = [:]
    /// Users of each video the live model has no factors for (placing one reads only these).
    private var usersOfUnplaced: [String: Set<String>] = [:]
    /// Why the last step could not fold anything in (nil when it could).
    public private(set) var idleReason: String?

    /// `store`: the candidate store holding the live generation (default: the data directory's
    /// SQLite file); the event log is the data directory's unless `config.kafka` names a topic.
    public init(config: Config, store: (any FeedStore)? = nil) throws {
        self.config = config
        let dir = DataDirectory(config.dataDir)
        let store = try store ?? dir.openStore()
        self.store = store
        // The live model's mapping from the start (its interaction table is the one that covers a
        // pruned log), unless the configuration fixes one.
        history = EventHistory(mapping: config.mapping ?? EventTrainingData.liveMapping(store: store) ?? EventMapping())
        if let kafka = config.kafka {
            let k = try KafkaWorkerEvents(location: kafka, consumer: config.consumer)
            input = k
            let consumer = config.consumer
            k.position = { [unowned k] p in try Self.position(p, store: store, source: k, consumer: consumer) }
        } else {
            input = FileWorkerEvents(log: try EventLog(directory: config.eventsDir ?? dir.events),
                                     tables: dir.interactionTables(ofLog: config.eventsDir))
        }
        try reloadCatalog()
        if let fixed = input.fixedPartitions { try adopt(fixed) }
    }

    /// A partition's stored position; on a first start, where the live generation's training
    /// stopped (it already covers the log below that).
    static func position(_ p: Int32, store: any FeedStore, source: WorkerEvents, consumer: String) throws -> UInt64 {
        if let c = try store.consumerCursor(source.cursorName(consumer, p)) { return c.nextEvent }
        let through = try store.liveGeneration().flatMap { try store.source(generation: $0.id)?.eventsThrough }
        return source.initial(p, trainedThrough: through)
    }

    /// Takes `partitions` on (a start, or a consumer-group rebalance): their positions from the
    /// store and the histories below them; the live model is reloaded, which refolds users into
    /// it where a partition's cursor belongs to another generation.
    private func adopt(_ partitions: [Int32]) throws {
        next = [:]
        for p in partitions { next[p] = try Self.position(p, store: store, source: input, consumer: config.consumer) }
        try rebuildHistory()
        live = nil
    }

    /// Reloads the catalog when it changed; returns the ids that are new.
    @discardableResult
    private func reloadCatalog() throws -> [String] {
        let version = try store.catalogVersion()
        guard version != catalogVersion else { return [] }
        let before = catalog
        catalog = Dictionary(try store.videos().map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        catalogVersion = version
        return catalog.keys.filter { before[$0] == nil }
    }

    private func duration(_ video: String) -> Int { catalog[video]?.durationMs ?? 0 }

    /// Histories of everything below the cursors, read the way the live model's training did: for
    /// the file log from the newest interaction table and the log after it.
    private func rebuildHistory() throws {
        var h = EventHistory(mapping: history.mapping)
        historyThrough = [:]
        let durations = catalog.mapValues(\.durationMs)
        for (p, to) in next.sorted(by: { $0.key < $1.key }) {
            if let (table, position) = try input.history(p, to: to, mapping: h.mapping, durations: durations,
                                                         progress: { FileHandle.standardError.write(Data("foryou worker: \($0)\n".utf8)) }) {
                h = table  // the file log is the only partition
                historyThrough[p] = position
                continue
            }
            try input.scan(from: input.trained(p, through: nil), to: to) { h.add($0, duration: duration($0.video)) }
        }
        history = h
    }

    /// Loads the live generation's model when it changed; folds users the new generation's
    /// training did not see into it. Nil when no factor model is live.
    private func liveModel() throws -> (LiveModel, refolded: Int)? {
        guard let g = try store.liveGeneration() else {
            live = nil
            idleReason = "no generation is live yet"
            return nil
        }
        if let l = live, l.generation == g.id { return (l, 0) }
        guard let source = try store.source(generation: g.id), let dir = source.modelDir else {
            live = nil
            idleReason = "live generation \(g.id) has no recorded model directory"
            return nil
        }
        let m = try ModelStore.load(dir)
        let mapping = config.mapping ?? EventMapping(params: m.run.params)
        let l: LiveModel
        if let als = m.ranker as? ALSModel {
            let confidence = config.confidence ?? Confidence(params: m.run.params) ?? Confidence(scheme: .log, alpha: 4)
            l = FoldInModel(generation: g.id, als: als, users: m.users, items: m.items, confidence: confidence, mapping: mapping)
        } else if let rerank = m.ranker as? RerankModel {
            let confidence = config.confidence ?? Confidence(params: m.run.params) ?? Confidence(scheme: .log, alpha: 4)
            do {
                l = try LiveRerank(generation: g.id, model: rerank, users: m.users, items: m.items, confidence: confidence, mapping: mapping)
            } catch let e as LiveRerank.Unsupported {
                live = nil
                idleReason = "live generation \(g.id): \(e)"
                return nil
            }
        } else if let ease = m.ranker as? EASEModel {
            let confidence = config.confidence ?? Confidence(params: m.run.params) ?? Confidence(scheme: .log, alpha: 4)
            l = LiveEASE(generation: g.id, ease: ease, users: m.users, items: m.items, confidence: confidence, mapping: mapping)
        } else if let tt = m.ranker as? TwoTowerRanker, let model = tt.model {
            l = LiveTwoTower(generation: g.id, ranker: tt, model: model, users: m.users, items: m.items, mapping: mapping)
        } else {
            live = nil
            idleReason = "live generation \(g.id) is a \(m.run.model) model"
                + (m.run.model == "two-tower" ? " stored without its towers" : "") + "; the worker updates ALS, EASE, second-stage and two-tower generations"
            return nil
        }
        idleReason = nil
        if mapping != history.mapping {
            history = EventHistory(mapping: mapping)
            try rebuildHistory()
        }
        live = l
        usersOfUnplaced = [:]
        if config.foldInVideos {
            try reloadCatalog()
            if l.placesFromCatalog {
                try l.place(catalog.keys.filter { !l.isModelItem($0) }, history: history, catalog: catalog, usersOf: [:])
            } else {
                history.forEachUserVideo { u, v in
                    guard !l.isModelItem(history.videos.raw[v]) else { return }
                    usersOfUnplaced[history.videos.raw[v], default: []].insert(history.users.raw[u])
                }
                try l.place(usersOfUnplaced.keys.sorted(), history: history, catalog: catalog, usersOf: usersOfUnplaced)
            }
        }
        // Users with events past what this generation was trained on get their lists again,
        // partition by partition (each partition's cursor records the generation it was written for).
        var refolded = 0
        for (p, at) in next.sorted(by: { $0.key < $1.key }) {
            guard try store.consumerCursor(input.cursorName(config.consumer, p))?.generation != g.id else { continue }
            let from = min(input.trained(p, through: source.eventsThrough), at)
            var users: [String] = [], seen = Set<String>()
            try input.scan(from: from, to: at) { e in
                if seen.insert(e.user).inserted { users.append(e.user) }
            }
            var lists: [(user: String, videos: [String], scores: [Float])] = []
            let chunks = Array(stride(from: 0, to: max(users.count, 1), by: 4_096))
            for chunk in chunks {
                lists = try l.lists(for: Array(users[chunk..<min(users.count, chunk + 4_096)]), history: history, top: config.top,
                                    threads: config.threads)
                refolded += lists.count
                // Only the last chunk moves the partition's cursor to the new generation, so a crash
                // midway redoes the refold; earlier chunks commit under a scratch cursor name.
                let name = input.cursorName(config.consumer, p)
                // Every chunk is fenced on the real cursor (still at `at` while the refold runs).
                let wrote = try store.replaceLists(generation: g.id, lists: lists, consumer: chunk == chunks.last ? name : name + "#refold",
                                                   nextEvent: at, expecting: at, fence: name)
                if !wrote {  // another worker moved the cursor meanwhile: start over from the store
                    needsAdopt = true
                    live = nil
                    return nil
                }
            }
        }
        return (l, refolded)
    }

    /// Processes up to one batch of new events; returns what it did (0 events: nothing new, or
    /// no factor model is live yet).
    @discardableResult
    public func step() throws -> Step {
        if needsAdopt {  // another worker wrote one of our partitions: start over from the store
            needsAdopt = false
            try adopt(next.keys.sorted())
            try input.rewind(next)
        }
        var (events, reassigned) = try input.poll(next: next, max: config.batch)
        if let owned = reassigned { try adopt(owned) }  // the events start at the adopted positions
        guard let (l, refolded) = try liveModel() else {
            if !events.isEmpty { try input.rewind(next) }  // read again once a model is live
            return Step(events: 0, usersUpdated: 0, nextEvent: nextEvent, freshnessSeconds: nil)
        }
        // Only events at or past each partition's position (a group may redeliver after a seek).
        events = events.filter { e in next[input.partition(of: e.id)].map { e.id >= $0 } ?? false }
        guard let last = events.last else {
            return Step(events: 0, usersUpdated: 0, nextEvent: nextEvent, freshnessSeconds: nil,
                        foldedVideos: l.placed, refolded: refolded)
        }
        // New videos may have been added to the catalog since the last step.
        var newVideos = Set(try reloadCatalog())
        if !l.placesFromCatalog { newVideos = [] }
        var through: [Int32: UInt64] = [:]
        var touched: [Int32: [String]] = [:], seenUsers = Set<String>()
        for e in events {
            let p = input.partition(of: e.id)
            if e.id >= historyThrough[p] ?? 0 { history.add(e, duration: duration(e.video)) }
            through[p] = e.id + 1
            if seenUsers.insert(e.user).inserted { touched[p, default: []].append(e.user) }
            if config.foldInVideos && !l.placesFromCatalog && !l.isModelItem(e.video) {
                newVideos.insert(e.video)
                usersOfUnplaced[e.video, default: []].insert(e.user)
            }
        }
        if config.foldInVideos {
            try l.place(newVideos.sorted(), history: history, catalog: catalog, usersOf: usersOfUnplaced)
        }
        // One scoring pass for every touched user; then each partition's lists commit with that
        // partition's cursor (a user's events are all in one partition).
        let order = touched.keys.sorted()
        let lists = try l.lists(for: order.flatMap { touched[$0]! }, history: history, top: config.top, threads: config.threads)
        var byUser: [String: Int] = [:]
        for (i, x) in lists.enumerated() { byUser[x.user] = i }
        for p in through.keys.sorted() {
            // Fence: a compare-and-set on the partition's cursor, in the transaction that writes the
            // lists. If another worker (or a group member that took the partition over while this
            // one was evicted during a long retrain) moved it, nothing is written, this batch is
            // dropped and the partitions re-adopted from the store.
            let mine = (touched[p] ?? []).compactMap { byUser[$0].map { lists[$0] } }
            guard try store.replaceLists(generation: l.generation, lists: mine, consumer: input.cursorName(config.consumer, p),
                                         nextEvent: through[p]!, expecting: next[p]) else {
                needsAdopt = true
                fenced += 1
                continue
            }
            next[p] = through[p]!
        }
        input.stored(next)
        let fresh = Date().timeIntervalSince1970 - Double(last.timeMs) / 1000
        return Step(events: events.count, usersUpdated: lists.count, nextEvent: nextEvent, freshnessSeconds: fresh,
                    foldedVideos: l.placed, refolded: refolded)
    }
}
