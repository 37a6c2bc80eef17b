import Foundation
import Checksum
import CandidateStore
import EventLog

/// What the server keeps in memory, rebuilt from the event log and the store at start-up:
/// each user's seen videos, trending scores, event counts per video and idempotency keys. Paging
/// sessions keep no state here: their cursor carries it (`FeedCursor`).
/// One lock guards it; every operation under it is short.
final class FeedState: @unchecked Sendable {
    let config: FeedServerConfig
    /// Catalog, seen sets, trending, event counts. Rate buckets and idempotency keys
    /// have locks of their own so concurrent requests rarely wait on each other.
    private let lock = NSLock()
    private let rateLock = NSLock()
    private let keyLock = NSLock()

    // Catalog (reloaded when the store's catalog version changes).
    private var catalog: [String: Video] = [:]
    private var catalogVersion: Int64 = -1
    private var videoIndex: [String: Int32] = [:]
    private var videoIds: [String] = []
    /// Catalog entries by global video index (nil: not in the catalog).
    private var byIndex: [VideoBox?] = []
    /// What a page's filters read, by global video index, in one compact array (the candidate
    /// loop touches it for every candidate it skips; `byIndex` only for the ones it serves).
    private var meta: [VideoMeta] = []
    private var topicIds: [String: Int32] = [:]
    private var creatorIds: [String: Int32] = [:]
    /// Per generation: its item-table position -> global video index.
    private var generationMaps: [Int64: [Int32]] = [:]
    private var generationModels: [Int64: String] = [:]

    // Per user: videos already watched or skipped (any event counts).
    private var seen: [String: Set<Int32>] = [:]
    // Trending: exponentially decayed event weight per video index.
    private var trendScore: [Float] = []
    private var trendStamp: [Double] = []
    private var trendingList: [Int32] = []
    private var freshList: [Int32] = []
    /// Events per video index, from the log every server reads (so every server agrees on which
    /// uploads are still fresh).
    private var eventCounts: [Int32: Int] = [:]
    // Idempotency: (user, key) -> event id, or nil while the first request is in flight.
    /// Per (user, key): the event's id once stored (nil while in flight) and its request's fingerprint.
    private var idempotency: [String: (id: UInt64?, fingerprint: UInt64)] = [:]
    /// (event time ms, key) in arrival order, for expiring keys after `idempotencyWindowSeconds`.
    private var keyTimes: [(Int64, String)] = []
    private var keyTimesHead = 0
    // Rate limiting: token buckets per user.
    private var buckets: [String: (tokens: Double, at: Double)] = [:]

    private var liveGeneration: GenerationInfo?
    private var runningExperiment: Experiment?
    /// Events applied (replayed, appended here, or followed from a shared log).
    private(set) var eventsApplied: UInt64 = 0

    /// The running experiment as of the last refresh.
    var experiment: Experiment? {
        lock.lock(); defer { lock.unlock() }
        return runningExperiment
    }

    /// The live generation as of the last refresh.
    var live: GenerationInfo? {
        lock.lock(); defer { lock.unlock() }
        return liveGeneration
    }

    func model(ofGeneration g: Int64) -> String? {
        lock.lock(); defer { lock.unlock() }
        return generationModels[g]
    }

    init(config: FeedServerConfig) { self.config = config }

    static func weight(_ t: EventType) -> Float {
        switch t {
        case .view: 1; case .complete: 2; case .like: 3; case .share: 4; case .skip, .hide: 0
        }
    }

    // MARK: loading

    func refresh(store: FeedStore) throws {
        let version = try store.catalogVersion()
        let liveNow = try store.liveGeneration()
        let models = Dictionary(try store.generations().map { ($0.id, $0.model) }, uniquingKeysWith: { $1 })
        let running = try store.runningExperiment()
        lock.lock()
        let needCatalog = version != catalogVersion
        liveGeneration = liveNow
        runningExperiment = running
        generationModels = models
        lock.unlock()
        if needCatalog {
            let vs = try store.videos()
            lock.lock()
            catalog = Dictionary(vs.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
            for v in vs { setLocked(Int(indexLocked(v.id)), v) }
            catalogVersion = version
            lock.unlock()
        }
        rebuildTrending()
    }

    /// Applies events appended by this or an earlier run (start-up replay, then each append).
    func apply(_ events: [Event]) {
        lock.lock()
        defer { lock.unlock() }
        for e in events { applyLocked(e) }
    }

    private func applyLocked(_ e: Event) {
        let v = indexLocked(e.video)
        seen[e.user, default: []].insert(v)
        eventCounts[v, default: 0] += 1
        let w = FeedState.weight(e.type)
        if w > 0 {
            let t = Double(e.timeMs) / 1000
            let i = Int(v)
            let decay = Float(Foundation.exp2(-(t - trendStamp[i]) / config.trendingHalfLifeSeconds))
            if t >= trendStamp[i] {
                trendScore[i] = trendScore[i] * decay + w
                trendStamp[i] = t
            } else {
                trendScore[i] += w * Float(Foundation.exp2(-(trendStamp[i] - t) / config.trendingHalfLifeSeconds))
            }
        }
        if !e.draft.idempotencyKey.isEmpty {
            let k = e.user + "\u{0}" + e.draft.idempotencyKey
            keyLock.lock()
            idempotency[k] = (e.id, FeedState.fingerprint(e.draft))
            keyTimes.append((e.timeMs, k))
            keyLock.unlock()
        }
        eventsApplied += 1
    }

    private func indexLocked(_ id: String) -> Int32 {
        if let i = videoIndex[id] { return i }
        let i = Int32(videoIds.count)
        videoIndex[id] = i
        videoIds.append(id)
        byIndex.append(nil)
        meta.append(VideoMeta())
        if let v = catalog[id] { setLocked(Int(i), v) }
        trendScore.append(0)
        trendStamp.append(0)
        return i
    }

    private func setLocked(_ i: Int, _ v: Video) {
        byIndex[i] = VideoBox(v, baseURL: config.publicBaseURL)
        func intern(_ s: String, _ table: inout [String: Int32]) -> Int32 {
            if s.isEmpty { return -1 }
            if let k = table[s] { return k }
            let k = Int32(table.count)
            table[s] = k
            return k
        }
        meta[i] = VideoMeta(ready: v.status == .ready, topic: intern(v.topic, &topicIds), creator: intern(v.creator, &creatorIds))
    }

    /// Recomputes the trending order and the fresh-upload pool from copies taken under the lock
    /// (copy-on-write makes that O(1)), so requests are not held up while it sorts.
    func rebuildTrending(now: Double = Date().timeIntervalSince1970) {
        lock.lock()
        let ids = videoIds, scores = trendScore, stamps = trendStamp, boxes = byIndex, counts = eventCounts
        lock.unlock()
        var scored: [(Int32, Float, Int64, String)] = []
        scored.reserveCapacity(ids.count)
        let freshCut = (now - config.freshSeconds) * 1000
        var fresh: [(Int32, String)] = []
        for i in 0..<ids.count {
            guard i < boxes.count, let v = boxes[i]?.v, v.status == .ready else { continue }
            let s = scores[i] * Float(Foundation.exp2(-(now - stamps[i]) / config.trendingHalfLifeSeconds))
            scored.append((Int32(i), s, v.createdAt, v.id))
            if Double(v.createdAt) >= freshCut && (counts[Int32(i)] ?? 0) < config.freshMaxEvents { fresh.append((Int32(i), v.id)) }
        }
        // Ties (e.g. no events yet) go to the newest videos, then by id: the same order on every
        // server that has seen the same events (indices differ between servers, ids do not).
        scored.sort { a, b in a.1 != b.1 ? a.1 > b.1 : a.2 != b.2 ? a.2 > b.2 : a.3 < b.3 }
        // The feed orders the fresh pool per session (`FeedBuilder`); here by id.
        fresh.sort { $0.1 < $1.1 }
        let list = scored.map(\.0), freshIds = fresh.map(\.0)
        lock.lock()
        trendingList = list
        freshList = freshIds
        lock.unlock()
    }

    // MARK: reading for a page

    struct Snapshot {
        var videos: [VideoBox?]
        var meta: [VideoMeta]
        var seen: Set<Int32>
        var trending: [Int32]
        var fresh: [Int32]
    }

    /// The fresh list is recomputed with trending (every refresh).
    func snapshot(user: String) -> Snapshot {
        lock.lock(); defer { lock.unlock() }
        return Snapshot(videos: byIndex, meta: meta, seen: seen[user] ?? [], trending: trendingList, fresh: freshList)
    }

    /// Global video indices of a generation's item table (computed once per generation).
    func mapping(for packed: PackedCandidates) -> [Int32] {
        lock.lock(); defer { lock.unlock() }
        if let m = generationMaps[packed.generation], m.count == packed.itemTable.count { return m }
        if generationMaps.count > 8 { generationMaps.removeAll() }
        let m = packed.itemTable.map { indexLocked($0) }
        generationMaps[packed.generation] = m
        return m
    }

    func index(of video: String) -> Int32? {
        lock.lock(); defer { lock.unlock() }
        return videoIndex[video]
    }

    func video(at i: Int32) -> Video? {
        lock.lock(); defer { lock.unlock() }
        return Int(i) < videoIds.count ? catalog[videoIds[Int(i)]] : nil
    }

    func video(id: String) -> Video? {
        lock.lock(); defer { lock.unlock() }
        return catalog[id]
    }

    func addVideo(_ v: Video) {
        lock.lock()
        catalog[v.id] = v
        setLocked(Int(indexLocked(v.id)), v)
        lock.unlock()
    }

    // MARK: idempotency and rate limits

    enum KeyState: Equatable { case new, done(UInt64), inFlight, mismatch }

    /// What identifies a request under one Idempotency-Key: its video, type and watch time.
    static func fingerprint(_ d: EventDraft) -> UInt64 {
        Array("\(d.video)\u{0}\(d.type.name)\u{0}\(d.watchMs)".utf8).withUnsafeBytes { FNV64.digest($0) }
    }

    /// A key already used for a different request is `.mismatch` (the IETF idempotency-key
    /// draft's 422), never a replay of the first one's answer.
    func claim(user: String, key: String, fingerprint: UInt64) -> KeyState {
        let k = user + "\u{0}" + key
        keyLock.lock(); defer { keyLock.unlock() }
        guard let entry = idempotency[k] else {
            idempotency[k] = (nil, fingerprint)
            return .new
        }
        guard entry.fingerprint == fingerprint else { return .mismatch }
        return entry.id.map { .done($0) } ?? .inFlight
    }

    func release(user: String, key: String) {
        keyLock.lock(); idempotency[user + "\u{0}" + key] = nil; keyLock.unlock()
    }

    /// Forgets idempotency keys older than the window and rate buckets idle long enough to be
    /// full again, so memory stays bounded on a long-running server.
    func expire(now: Double = Date().timeIntervalSince1970) {
        let cutoff = Int64((now - config.idempotencyWindowSeconds) * 1000)
        keyLock.lock()
        while keyTimesHead < keyTimes.count && keyTimes[keyTimesHead].0 < cutoff {
            let k = keyTimes[keyTimesHead].1
            if idempotency[k]?.id != nil { idempotency[k] = nil }
            keyTimesHead += 1
        }
        if keyTimesHead > 4096 && keyTimesHead * 2 > keyTimes.count {
            keyTimes.removeFirst(keyTimesHead)
            keyTimesHead = 0
        }
        keyLock.unlock()
        let idle = config.rateBurst / config.ratePerSecond
        rateLock.lock()
        buckets = buckets.filter { now - $0.value.at < idle }
        rateLock.unlock()
    }

    var idempotencyKeyCount: Int {
        keyLock.lock(); defer { keyLock.unlock() }
        return idempotency.count
    }

    /// Takes one token from the user's bucket; returns seconds to wait when empty.
    func rateLimit(user: String, now: Double = Date().timeIntervalSince1970) -> Double? {
        rateLock.lock(); defer { rateLock.unlock() }
        var b = buckets[user] ?? (config.rateBurst, now)
        b.tokens = min(config.rateBurst, b.tokens + (now - b.at) * config.ratePerSecond)
        b.at = now
        if b.tokens < 1 {
            buckets[user] = b
            return (1 - b.tokens) / config.ratePerSecond
        }
        b.tokens -= 1
        buckets[user] = b
        return nil
    }

    var eventsAppliedCount: UInt64 {
        lock.lock(); defer { lock.unlock() }
        return eventsApplied
    }

    var counts: (users: Int, videos: Int) {
        lock.lock(); defer { lock.unlock() }
        return (seen.count, catalog.count)
    }
}

/// A catalog entry shared by reference on the hot path (one retain instead of one per field),
/// with its feed JSON fields rendered once: `"id":...,"creator":...,` (ranker and generation,
/// which depend on the request, are appended per response).
/// A video's fields the page filters need: ready to serve, and its topic and creator as small
/// integers (-1: none), so diversity checks compare numbers.
struct VideoMeta {
    var ready = false
    var topic: Int32 = -1
    var creator: Int32 = -1
}

final class VideoBox: @unchecked Sendable {
    let v: Video
    let jsonFields: [UInt8]
    /// The id's hash, as paging cursors' served filters take it.
    let idHash: UInt64

    init(_ v: Video, baseURL: String = "") {
        self.v = v
        idHash = ServedFilter.hash(v.id)
        let w = JSONWriter()
        w.object {
            w.field("id", v.id)
            w.field("caption", v.caption)
            w.field("stream_url", VideoBox.url(v.streamURL, baseURL))
            w.field("thumbnail_url", VideoBox.url(v.thumbnailURL, baseURL))
            w.field("duration_ms", v.durationMs)
            w.field("topic", v.topic)
            w.field("creator", v.creator)
        }
        // Drop the closing brace and add a separator for the fields that follow.
        jsonFields = Array(w.bytes.dropFirst().dropLast()) + [44]
    }

    static func url(_ u: String?, _ base: String) -> String? {
        guard let u else { return nil }
        return u.hasPrefix("/") && !base.isEmpty ? base + u : u
    }
}
