import Foundation
import EventLog

/// How events become ALS interactions. Per (user, video) the signed weights of its events are
/// summed (optionally decayed by age), then the training confidence scheme applies
/// (`Confidence`): a positive sum is an observed positive with confidence `1 + alpha f(sum)`; a
/// negative sum, under `.penalize`, an explicit negative (preference 0 with that confidence).
///
/// Positive weights (`EventWeights.training` by default): a view counts its watched fraction (0-1),
/// a completion 1, a like 2, a share 3. Skips and hides are negative evidence; `negatives` says how
/// they enter (see `Negatives`). The choice of default is measured by `foryou study-mapping`
/// (scripts/study-mapping).
public struct EventMapping: Sendable, Equatable {
    public enum Negatives: String, Sendable, CaseIterable, Codable {
        /// A skip or hide subtracts `skip`/`hide` from the pair; a net negative pair is trained
        /// towards preference 0 with a confidence above an unobserved pair's (what `implicit`
        /// does with negative values).
        case penalize
        /// A pair with any skip or hide is left out of the positives (but still counts as seen).
        case drop
        /// Skips count as views of the watched fraction; hides are ignored.
        case ignore
    }

    /// Weight per event type; defaults: `EventWeights.training` (EventLog), the one table.
    public var weights: EventWeights = .training
    public var negatives: Negatives = .penalize
    public var view: Float { get { weights.view } set { weights.view = newValue } }
    public var complete: Float { get { weights.complete } set { weights.complete = newValue } }
    public var like: Float { get { weights.like } set { weights.like = newValue } }
    public var share: Float { get { weights.share } set { weights.share = newValue } }
    /// Strength of one skip / one hide under `.penalize`.
    public var skip: Float { get { weights.skip } set { weights.skip = newValue } }
    public var hide: Float { get { weights.hide } set { weights.hide = newValue } }
    /// Each event's weight halves every `halfLifeDays` before the newest event in the log
    /// (nil: no decay).
    public var halfLifeDays: Double?

    public init() {}

    /// The signed weight one event adds to its (user, video) pair, before decay.
    public func weight(of e: Event, duration: Int) -> Float {
        let fraction = duration > 0 ? min(1, Float(e.watchMs) / Float(duration)) : 0.5
        switch e.type {
        case .view: return view * fraction
        case .complete: return complete
        case .like: return like
        case .share: return share
        case .skip:
            switch negatives {
            case .penalize: return -skip
            case .drop: return 0
            case .ignore: return view * fraction
            }
        case .hide: return negatives == .penalize ? -hide : 0
        }
    }

    /// Interactions from the whole log: positives, and explicit negatives as negative weights.
    public static func fromLog(_ log: EventSource, durations: [String: Int], mapping: EventMapping = EventMapping(),
                               until timeMs: Int64? = nil) throws -> Interactions {
        try counted(log, durations: durations, mapping: mapping, until: timeMs).interactions
    }

    /// The same, with how many events were read.
    public static func counted(_ log: EventSource, durations: [String: Int], mapping: EventMapping = EventMapping(),
                               until timeMs: Int64? = nil) throws -> (interactions: Interactions, events: UInt64) {
        var history = EventHistory(mapping: mapping)
        let n = try log.forEachEvent { e in
            if let t = timeMs, e.timeMs >= t { return }
            history.add(e, duration: durations[e.video] ?? 0)
        }
        return (history.interactions(), n)
    }
}

/// Per (user, video): the summed signed event weight (decayed to the pair's newest event), the
/// latest event time and whether a skip or hide was seen. Built by the trainer from the whole log
/// and kept up to date by the ranking worker, so both read events the same way.
///
/// Held by index, not by id: users and videos are interned once (`users`, `videos`), and each
/// user's row is two parallel arrays (video index, pair) in the order first seen, with a small
/// index once a row grows long (about 28 bytes a pair). A history read from an interaction table
/// leaves the table's rows where they lie in the mapped file (`StoredRows`) and copies a row out
/// only when an event is added to it: a day's tail touches a few of a million users, and the
/// rest are read in place by `interactions()` and copied byte for byte into the next table.
public struct EventHistory: Sendable {
    public struct Pair: Sendable, Equatable {
        /// Sum of the pair's event weights, each decayed to `lastTimeMs`.
        public var weight: Double
        public var lastTimeMs: Int64
        public var negative: Bool
        public init(weight: Double, lastTimeMs: Int64, negative: Bool) {
            self.weight = weight; self.lastTimeMs = lastTimeMs; self.negative = negative
        }
    }

    /// One user's pairs: `videos[k]` (an index into `EventHistory.videos`) has `pairs[k]`; or,
    /// `stored`, the user's row in the table the history was read from (`EventHistory.stored`).
    struct Row: Sendable {
        var videos: [Int32] = []
        var pairs: [Pair] = []
        /// video -> position, built when an event is added to a row longer than `Row.scan` (a
        /// linear scan is quicker below that).
        var lookup: [Int32: Int32]?
        var stored = false
        static let scan = 48

        init() {}
        init(videos: [Int32], pairs: [Pair]) { self.videos = videos; self.pairs = pairs }
        static let inTable: Row = { var r = Row(); r.stored = true; return r }()

        func position(of v: Int32) -> Int? {
            if let lookup { return lookup[v].map(Int.init) }
            return videos.firstIndex(of: v)
        }

        mutating func buildLookup() {
            var d = [Int32: Int32](minimumCapacity: videos.count * 2)
            for (k, v) in videos.enumerated() { d[v] = Int32(k) }
            lookup = d
        }

        mutating func append(_ v: Int32, _ p: Pair) {
            lookup?[v] = Int32(videos.count)
            videos.append(v); pairs.append(p)
        }
    }

    public let mapping: EventMapping
    /// Every user with at least one pair, in the order first seen (`rows` is parallel to it).
    public private(set) var users = IdMap()
    /// Every video in some pair.
    public private(set) var videos = IdMap()
    private(set) var rows: [Row] = []
    /// The rows of the table this history was read from (users `0..<stored.counts.count`).
    let stored: StoredRows?
    /// The newest event time added: the reference time decay is measured from.
    public private(set) var newestTimeMs: Int64 = .min
    /// Pairs in all rows.
    public private(set) var pairCount = 0

    public init(mapping: EventMapping = EventMapping()) { self.mapping = mapping; stored = nil }

    /// A history as stored (`InteractionTable`): users and videos in the table's order, every
    /// user's row in `stored` (checked: video indices in range, no video twice in a row).
    init(mapping: EventMapping, users: IdMap, videos: IdMap, stored: StoredRows, newestTimeMs: Int64) {
        self.mapping = mapping
        self.users = users
        self.videos = videos
        self.stored = stored
        rows = Array(repeating: .inTable, count: stored.counts.count)
        self.newestTimeMs = newestTimeMs
        pairCount = stored.counts.reduce(0) { $0 + Int($1) }
    }

    private func decay(_ ms: Int64) -> Double {
        guard let h = mapping.halfLifeDays, h > 0, ms > 0 else { return 1 }
        return Foundation.exp2(-Double(ms) / (h * 86_400_000))
    }

    public mutating func add(_ e: Event, duration: Int) {
        let w = Double(mapping.weight(of: e, duration: duration))
        newestTimeMs = max(newestTimeMs, e.timeMs)
        let negative = e.type == .skip || e.type == .hide
        let u = Int(users.index(inserting: e.user))
        let v = videos.index(inserting: e.video)
        if u == rows.count { rows.append(Row()) }
        if rows[u].stored { rows[u] = stored!.row(u) }
        if rows[u].lookup == nil && rows[u].videos.count > Row.scan { rows[u].buildLookup() }
        if let k = rows[u].position(of: v) {
            var p = rows[u].pairs[k]
            if e.timeMs >= p.lastTimeMs {
                p.weight = p.weight * decay(e.timeMs - p.lastTimeMs) + w
                p.lastTimeMs = e.timeMs
            } else {
                p.weight += w * decay(p.lastTimeMs - e.timeMs)
            }
            p.negative = p.negative || negative
            rows[u].pairs[k] = p
        } else {
            rows[u].append(v, Pair(weight: w, lastTimeMs: e.timeMs, negative: negative))
            pairCount += 1
        }
    }

    /// Pairs in user `u`'s row (an index into `users`).
    @inline(__always) func count(ofRow u: Int) -> Int { rows[u].stored ? Int(stored!.counts[u]) : rows[u].videos.count }
    /// The video of pair `k` in user `u`'s row.
    @inline(__always) func video(row u: Int, _ k: Int) -> Int32 { rows[u].stored ? stored!.video(u, k) : rows[u].videos[k] }
    /// Pair `k` in user `u`'s row.
    @inline(__always) func pair(row u: Int, _ k: Int) -> Pair { rows[u].stored ? stored!.pair(u, k) : rows[u].pairs[k] }

    /// The pair of `user` and `video`, if either ever had an event together.
    public func pair(user: String, video: String) -> Pair? {
        guard let u = users.index(of: user).map(Int.init), let v = videos.index(of: video) else { return nil }
        if rows[u].stored {
            for k in 0..<count(ofRow: u) where stored!.video(u, k) == v { return stored!.pair(u, k) }
            return nil
        }
        return rows[u].position(of: v).map { rows[u].pairs[$0] }
    }

    /// `user`'s pairs (video id, pair), in the order first seen.
    public func forEachPair(of user: String, _ body: (_ video: String, _ pair: Pair) throws -> Void) rethrows {
        guard let u = users.index(of: user).map(Int.init) else { return }
        for k in 0..<count(ofRow: u) { try body(videos.raw[Int(video(row: u, k))], pair(row: u, k)) }
    }

    /// Every (user, video) pair by index into `users` and `videos`, user by user.
    public func forEachUserVideo(_ body: (_ user: Int, _ video: Int) throws -> Void) rethrows {
        for u in rows.indices { for k in 0..<count(ofRow: u) { try body(u, Int(video(row: u, k))) } }
    }

    /// Every user's pairs as nested dictionaries (tests, and studies over small logs).
    public var dictionary: [String: [String: Pair]] {
        var out: [String: [String: Pair]] = [:]
        for u in rows.indices {
            var d: [String: Pair] = [:]
            for k in 0..<count(ofRow: u) { d[videos.raw[Int(video(row: u, k))]] = pair(row: u, k) }
            out[users.raw[u]] = d
        }
        return out
    }

    /// The pair's training weight now (decayed to `newestTimeMs`): positive for a positive,
    /// negative for an explicit negative, nil when the pair does not train.
    public func trainingWeight(_ p: Pair) -> Float? {
        if mapping.negatives == .drop && p.negative { return nil }
        let w = Float(p.weight * decay(newestTimeMs - p.lastTimeMs))
        if w > 0 { return w }
        if w < 0 && mapping.negatives == .penalize { return w }
        return nil
    }

    /// Every training pair: users indexed in sorted id order (each one, trained or not), videos in
    /// the order they first appear walking users in that order and each user's videos in sorted id
    /// order, and each user's pairs by video index (a CSR built from them needs no sort).
    /// Deterministic: the same history gives the same interactions however it was built.
    ///
    /// Both walks run on every core, each over its own range of users: the first finds each
    /// range's first pair per video and each user's count of training pairs, the second writes
    /// each user's pairs at its place in the output (the counts' running sum).
    public func interactions() -> Interactions {
        let userOrder = users.raw.indices.sorted { users.raw[$0] < users.raw[$1] }
        var videoRank = [UInt64](repeating: 0, count: videos.count)
        for (rank, v) in videos.raw.indices.sorted(by: { videos.raw[$0] < videos.raw[$1] }).enumerated() { videoRank[v] = UInt64(rank) }
        let n = userOrder.count
        let parts = Cores.parts(of: n, minimum: 1024)
        // Each video's first training pair in that walk: (user position, video rank); and each
        // user's (by position) count of training pairs.
        var trained = [Int](repeating: 0, count: n + 1)
        var firsts = [[UInt64]](repeating: [], count: parts)
        trained.withUnsafeMutableBufferPointer { trained in
            firsts.withUnsafeMutableBufferPointer { firsts in
                Cores.forEachPart(of: n, minimum: 1024) { part, positions in
                    var first = [UInt64](repeating: .max, count: videos.count)
                    var scratch = RowScratch()
                    for position in positions {
                        var count = 0
                        withRow(userOrder[position], &scratch) { videos, pairs in
                            for k in videos.indices where trainingWeight(pairs[k]) != nil {
                                let v = Int(videos[k])
                                first[v] = min(first[v], UInt64(position) << 32 | videoRank[v])
                                count += 1
                            }
                        }
                        trained[position + 1] = count
                    }
                    firsts[part] = first
                }
            }
        }
        var first = firsts[0]
        for other in firsts.dropFirst() { for v in first.indices { first[v] = min(first[v], other[v]) } }
        // Where each user's pairs start in the output.
        for position in 0..<n { trained[position + 1] += trained[position] }
        let total = trained[n]
        let itemOrder = videos.raw.indices.filter { first[$0] != .max }.sorted { first[$0] < first[$1] }
        var itemOf = [UInt64](repeating: 0, count: videos.count)
        for (i, v) in itemOrder.enumerated() { itemOf[v] = UInt64(i) }
        var userIndex: [Int32] = [], itemIndex: [Int32] = [], weights: [Float] = [], times: [Int64] = []
        // Every slot below `total` is written by exactly one user's walk.
        userIndex = [Int32](unsafeUninitializedCapacity: total) { userOut, userCount in
            itemIndex = [Int32](unsafeUninitializedCapacity: total) { itemOut, itemCount in
                weights = [Float](unsafeUninitializedCapacity: total) { weightOut, weightCount in
                    times = [Int64](unsafeUninitializedCapacity: total) { timeOut, timeCount in
                        Cores.forEachPart(of: n, minimum: 1024) { _, positions in
                            var scratch = RowScratch()
                            var keys: [UInt64] = []  // item << 32 | position in the row
                            var rowWeights: [Float] = []  // per position in the row: its training weight, 0 when it does not train
                            for position in positions {
                                withRow(userOrder[position], &scratch) { videos, pairs in
                                    keys.removeAll(keepingCapacity: true)
                                    rowWeights.removeAll(keepingCapacity: true)
                                    for k in videos.indices {
                                        let w = trainingWeight(pairs[k])
                                        rowWeights.append(w ?? 0)
                                        if w != nil { keys.append(itemOf[Int(videos[k])] << 32 | UInt64(k)) }
                                    }
                                    keys.sort()
                                    var o = trained[position]
                                    for key in keys {
                                        let k = Int(key & 0xFFFF_FFFF)
                                        userOut[o] = Int32(position)
                                        itemOut[o] = Int32(truncatingIfNeeded: key >> 32)
                                        weightOut[o] = rowWeights[k]
                                        timeOut[o] = pairs[k].lastTimeMs
                                        o += 1
                                    }
                                    // The first walk counted the same pairs: every slot is written once.
                                    precondition(o == trained[position + 1])
                                }
                            }
                        }
                        timeCount = total
                    }
                    weightCount = total
                }
                itemCount = total
            }
            userCount = total
        }
        return Interactions(users: IdMap(raw: userOrder.map { users.raw[$0] }), items: IdMap(raw: itemOrder.map { videos.raw[$0] }),
                            userIndex: userIndex, itemIndex: itemIndex, weights: weights, timestamps: times)
    }

    /// Where a row read from the table is decoded to be walked (reused from row to row).
    struct RowScratch {
        var videos: [Int32] = []
        var pairs: [Pair] = []
    }

    /// `body` with user `u`'s row: its own arrays, or the stored row decoded into `scratch`.
    @inline(__always)
    func withRow(_ u: Int, _ scratch: inout RowScratch, _ body: (UnsafeBufferPointer<Int32>, UnsafeBufferPointer<Pair>) -> Void) {
        if rows[u].stored {
            stored!.decode(u, into: &scratch)
            scratch.videos.withUnsafeBufferPointer { v in scratch.pairs.withUnsafeBufferPointer { p in body(v, p) } }
        } else {
            rows[u].videos.withUnsafeBufferPointer { v in rows[u].pairs.withUnsafeBufferPointer { p in body(v, p) } }
        }
    }
}

/// The rows of an interaction table, where they lie in its mapped file: per stored user the
/// offset of its first 21-byte pair record (`InteractionTable.pairBytes`: u32 video, f64 weight,
/// i64 time, u8 negative) and the record count. Checked whole when the table was opened. The file
/// stays mapped as long as a history reads from it (tables are only ever replaced by rename and
/// removed by unlink, which leave a mapping intact): a ranking worker's history holds the table
/// it started from, and its disk space once newer tables unlink it, until the worker rebuilds its
/// history or stops.
final class StoredRows: Sendable {
    let file: MappedBytes
    let starts: [Int]
    let counts: [Int32]

    init(file: MappedBytes, starts: [Int], counts: [Int32]) {
        self.file = file; self.starts = starts; self.counts = counts
    }

    @inline(__always) func video(_ u: Int, _ k: Int) -> Int32 {
        InteractionTable.recordVideo(file.bytes, at: starts[u] + k * InteractionTable.pairBytes)
    }

    @inline(__always) func pair(_ u: Int, _ k: Int) -> EventHistory.Pair {
        InteractionTable.recordPair(file.bytes, at: starts[u] + k * InteractionTable.pairBytes)
    }

    /// User `u`'s records as they are in the file.
    func records(_ u: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[starts[u]..<(starts[u] + Int(counts[u]) * InteractionTable.pairBytes)])
    }

    /// User `u`'s row decoded into `scratch` (replacing what it held).
    func decode(_ u: Int, into scratch: inout EventHistory.RowScratch) {
        let n = Int(counts[u])
        scratch.videos.removeAll(keepingCapacity: true)
        scratch.pairs.removeAll(keepingCapacity: true)
        for k in 0..<n {
            scratch.videos.append(video(u, k))
            scratch.pairs.append(pair(u, k))
        }
    }

    /// User `u`'s row copied out (an event is being added to it).
    func row(_ u: Int) -> EventHistory.Row {
        var scratch = EventHistory.RowScratch()
        decode(u, into: &scratch)
        return EventHistory.Row(videos: scratch.videos, pairs: scratch.pairs)
    }
}

extension EventMapping {
    /// The mapping as run-record parameters, so whoever folds users into a model (the ranking
    /// worker) reads events exactly as its training did.
    public var params: [String: String] {
        var p = ["negatives": negatives.rawValue, "w_view": "\(view)", "w_complete": "\(complete)", "w_like": "\(like)",
                 "w_share": "\(share)", "w_skip": "\(skip)", "w_hide": "\(hide)"]
        if let h = halfLifeDays { p["half_life_days"] = "\(h)" }
        return p
    }

    /// The mapping recorded in `params`; defaults for what is absent (models trained before
    /// the mapping was recorded used `.drop`).
    public init(params: [String: String]) {
        self.init()
        negatives = params["negatives"].flatMap(Negatives.init(rawValue:)) ?? .drop
        func f(_ key: String, _ into: inout Float) { if let v = params[key].flatMap(Float.init) { into = v } }
        f("w_view", &view); f("w_complete", &complete); f("w_like", &like); f("w_share", &share)
        f("w_skip", &skip); f("w_hide", &hide)
        halfLifeDays = params["half_life_days"].flatMap(Double.init)
    }
}

extension Confidence {
    /// The confidence recorded in a run's parameters (`confidence`, `alpha`), if any.
    public init?(params: [String: String]) {
        guard let s = params["confidence"].flatMap(Scheme.init(rawValue:)), let a = params["alpha"].flatMap(Float.init) else {
            return nil
        }
        self.init(scheme: s, alpha: a)
    }
}
