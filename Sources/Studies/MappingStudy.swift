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

/// Measures how the events -> interactions mapping changes accuracy: a temporal split of a data
/// directory's event log (events before the cut train, events after it test), one ALS per mapping
/// variant and seed, then on the test period:
/// - NDCG@K / recall@K against the videos each user went on to engage with (a like, share,
///   completion or a view of at least half the clip);
/// - skip@K: the share of the top-K slots taken by videos the user went on to skip or hide.
public struct MappingStudy {
    public struct Variant: Sendable {
        public var name: String
        public var mapping: EventMapping
        public init(name: String, mapping: EventMapping) { self.name = name; self.mapping = mapping }
    }

    public struct Row: Sendable {
        public var variant: String
        public var seeds: Int
        public var ndcg: Double, ndcgMin: Double, ndcgMax: Double
        public var recall: Double
        public var skipRate: Double
        public var interactions: Int
        public var negatives: Int
    }

    public var dataDir: String
    public var testFraction = 0.2
    public var k = 10
    public var seeds: [UInt64] = [42, 1, 2]
    public var als = ALSConfig(factors: 32, regularization: 0.05, iterations: 15, solver: .cg)
    public var confidence = Confidence(scheme: .log, alpha: 4)

    public init(dataDir: String) { self.dataDir = dataDir }

    public static func standardVariants() -> [Variant] {
        var out: [Variant] = []
        for n in EventMapping.Negatives.allCases {
            var m = EventMapping()
            m.negatives = n
            out.append(Variant(name: n.rawValue, mapping: m))
        }
        for days in [3.0, 7.0] {
            var m = EventMapping()
            m.halfLifeDays = days
            out.append(Variant(name: "penalize, half-life \(Int(days))d", mapping: m))
        }
        return out
    }

    public struct Split: Sendable {
        public var cutMs: Int64
        public var trainEvents: Int
        public var testUsers: Int
    }

    public func run(_ variants: [Variant], progress: (String) -> Void = { _ in }) throws -> (Split, [Row]) {
        let dir = DataDirectory(dataDir)
        let log = try EventLog(directory: dir.events)
        defer { log.close() }
        let store = try dir.openStore()
        let durations = Dictionary(try store.videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        var events: [Event] = []
        try log.forEach(from: 0) { events.append($0) }
        guard events.count >= 10 else { throw TrainingError.noData("\(dir.events) holds \(events.count) events; too few to split") }
        let times = events.map(\.timeMs).sorted()
        let cut = times[min(times.count - 1, Int(Double(times.count) * (1 - testFraction)))]
        // The test period: what each user did with videos new to them after the cut.
        var trainPairs = Set<String>()
        for e in events where e.timeMs < cut { trainPairs.insert(e.user + "\u{1}" + e.video) }
        var engaged: [String: Set<String>] = [:], skipped: [String: Set<String>] = [:]
        for e in events where e.timeMs >= cut && !trainPairs.contains(e.user + "\u{1}" + e.video) {
            if Self.isEngagement(e, duration: durations[e.video] ?? 0) {
                engaged[e.user, default: []].insert(e.video)
            } else if e.type == .skip || e.type == .hide {
                skipped[e.user, default: []].insert(e.video)
            }
        }
        let testUsers = engaged.keys.sorted()
        let split = Split(cutMs: cut, trainEvents: events.count { $0.timeMs < cut }, testUsers: testUsers.count)
        var rows: [Row] = []
        for v in variants {
            var history = EventHistory(mapping: v.mapping)
            for e in events where e.timeMs < cut { history.add(e, duration: durations[e.video] ?? 0) }
            let data = history.interactions()
            let cui = data.confidenceMatrix(confidence)
            var ndcgs: [Double] = [], recalls: [Double] = [], skips: [Double] = []
            for seed in seeds {
                var cfg = als
                cfg.seed = seed
                cfg.computeLoss = false
                let (model, _) = try ALSModel.fit(cui, config: cfg)
                var users: [Int32] = [], truth: [Set<Int32>] = [], bad: [Set<Int32>] = [], names: [String] = []
                for name in testUsers {
                    guard let u = data.users.index(of: name) else { continue }
                    users.append(u)
                    names.append(name)
                    truth.append(Set(engaged[name]!.compactMap { data.items.index(of: $0) }))
                    bad.append(Set((skipped[name] ?? []).compactMap { data.items.index(of: $0) }))
                }
                // Everything the user touched before the cut is excluded, trained on or not.
                let seen = Self.seenMatrix(history, users: data.users, items: data.items)
                let recs = BatchScorer(top: k, threads: als.threads).recommend(model, users: users, exclude: seen)
                let lists = (0..<users.count).map { recs.list($0) }
                let (summary, _) = Metrics.atK(k, lists: lists, truth: truth, catalogSize: model.itemCount, userNames: names)
                // Users the model never saw count with empty lists, as in the evaluator.
                let missing = Double(testUsers.count - users.count)
                let scale = Double(users.count) / (Double(users.count) + missing)
                ndcgs.append(summary.ndcg * scale)
                recalls.append(summary.recall * scale)
                var skipSlots = 0
                for (l, b) in zip(lists, bad) { skipSlots += l.prefix(k).count { b.contains($0) } }
                skips.append(Double(skipSlots) / Double(max(1, users.count * k)))
                progress(String(format: "%@ seed %llu: NDCG@%d %.4f, recall %.4f, skip@%d %.4f", v.name, seed, k, ndcgs.last!,
                                recalls.last!, k, skips.last!))
            }
            rows.append(Row(variant: v.name, seeds: seeds.count, ndcg: mean(ndcgs), ndcgMin: ndcgs.min()!, ndcgMax: ndcgs.max()!,
                            recall: mean(recalls), skipRate: mean(skips), interactions: cui.nnz,
                            negatives: cui.values.count { $0 < 0 }))
        }
        return (split, rows)
    }

    /// What the studies count as a user engaging with a video after the cut: a like, share or
    /// completion, or a view of at least half the clip.
    static func isEngagement(_ e: Event, duration d: Int) -> Bool {
        switch e.type {
        case .like, .share, .complete: return true
        case .view: return d > 0 && Double(e.watchMs) >= 0.5 * Double(d)
        case .skip, .hide: return false
        }
    }

    private func mean(_ a: [Double]) -> Double { a.reduce(0, +) / Double(max(1, a.count)) }

    /// Every (user, video) pair of the history over the given id maps (pairs outside them dropped).
    static func seenMatrix(_ h: EventHistory, users: IdMap, items: IdMap) -> CSR {
        var r: [Int32] = [], c: [Int32] = []
        let videoIndex = h.videos.raw.map { items.index(of: $0) }
        let userIndex = h.users.raw.map { users.index(of: $0) }
        h.forEachUserVideo { k, v in
            guard let u = userIndex[k], let i = videoIndex[v] else { return }
            r.append(u); c.append(i)
        }
        return CSR(rows: users.count, cols: items.count, rowIndex: r, colIndex: c, values: [Float](repeating: 1, count: r.count))
    }
}
