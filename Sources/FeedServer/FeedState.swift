import Foundation
import Synchronization
import CandidateStore
import EventLog

/// What the server keeps in memory, rebuilt from the event log and the store at start-up: one
/// part per concern, each behind a lock of its own (`CatalogView`, `GenerationView`, `SeenSets`,
/// `Trending`, `IdempotencyKeys`, `RateLimiter`). Paging sessions keep no state here: their cursor
/// carries it (`FeedCursor`). Requests that touch one concern use that part directly; what spans
/// several (applying events, refreshing from the store, a page's snapshot) is here.
///
/// Locking: no part's lock is held while another is taken, so there is no lock order to keep.
/// Every part is keyed by `CatalogView`'s global video indices, which are assigned before any
/// other part sees them and never reused, and its arrays only grow. What crosses parts:
/// - `apply` updates the seen sets and trending before it records the events' idempotency keys
///   as done, so a retry answered from its key (`.done`) and any request after it find the event
///   applied, as when one lock covered them all. Each part takes a whole batch under one lock.
/// - `snapshot` reads trending, then the seen set, then the catalog: every index in the first
///   two is then within the catalog arrays it returns.
/// - `rebuildTrending` reads the catalog and then trending's scores, not at one instant: an event
///   or upload racing a rebuild is counted by it or by the next one (every refresh rebuilds).
/// - `counts` (metrics) reads two parts one after the other.
/// - `capture` (a snapshot) excludes every `apply` while it copies the parts (`gate`: applies
///   share it, a capture takes it alone), so the copies hold exactly the applied events.
final class FeedState: Sendable {
    let catalog: CatalogView
    let generations: GenerationView
    let seen: SeenSets
    let trending: Trending
    let keys: IdempotencyKeys
    let rateLimiter: RateLimiter
    /// Events applied (replayed, appended here, or followed from a shared log).
    private let applied = Atomic<UInt64>(0)
    /// Applies share it; a snapshot's capture takes it alone.
    private let gate = SharedGate()
    /// Which log positions are applied (a file log's ids; meaningless with a shared log).
    private let positions = AppliedPositions()
    /// Positions are tracked (and snapshots possible) with a file log only.
    private let tracksPositions: Bool

    init(config: FeedServerConfig) {
        catalog = CatalogView(publicBaseURL: config.publicBaseURL)
        seen = SeenSets(perUser: config.seenPerUser)
        generations = GenerationView()
        trending = Trending(halfLifeSeconds: config.trendingHalfLifeSeconds, freshSeconds: config.freshSeconds,
                            freshMaxEvents: config.freshMaxEvents)
        keys = IdempotencyKeys(windowSeconds: config.idempotencyWindowSeconds)
        rateLimiter = RateLimiter(perSecond: config.ratePerSecond, burst: config.rateBurst)
        tracksPositions = config.kafka == nil
    }

    // MARK: loading

    /// Reloads the live generation, the experiment and (when its version changed) the catalog
    /// from the store, then rebuilds trending. `beforeReload` runs between reading the catalog
    /// and taking it in (start-up: the catalog is numbered from a snapshot first).
    func refresh(store: FeedStore, beforeReload: (() -> Void)? = nil) throws {
        let version = try store.catalogVersion()
        let liveNow = try store.liveGeneration()
        let models = Dictionary(try store.generations().map { ($0.id, $0.model) }, uniquingKeysWith: { $1 })
        let running = try store.runningExperiment()
        generations.set(live: liveNow, experiment: running, models: models)
        if version != catalog.version {
            let videos = try store.videos()
            beforeReload?()
            catalog.reload(videos, version: version)
        }
        rebuildTrending()
    }

    /// Applies events appended by this or an earlier run (start-up replay, then each append).
    /// `admit` picks the events to apply and `then` runs after them, both inside the section a
    /// capture excludes (a shared log's follower records its positions there).
    func apply(_ batch: [Event], admit: ((Event) -> Bool)? = nil, then: (() -> Void)? = nil) {
        guard !batch.isEmpty else { return }
        gate.shared {
            defer { then?() }
            let events = admit.map { batch.filter($0) } ?? batch
            guard !events.isEmpty else { return }
            applyLocked(events, videos: catalog.indices(of: events.lazy.map(\.video)))
        }
    }

    /// The same for a replayed batch whose videos were indexed already by this state's catalog
    /// (`videos[k]`: the global index of `batch[k]`'s video), by the thread that decoded it.
    func apply(_ batch: [Event], videos: [Int32]) {
        precondition(videos.count == batch.count, "one video index per event")
        guard !batch.isEmpty else { return }
        gate.shared { applyLocked(batch, videos: videos) }
    }

    /// Inside the gate's shared section.
    private func applyLocked(_ events: [Event], videos: [Int32]) {
        seen.insert(events, videos: videos)
        trending.record(events, videos: videos)
        // Last: a key reads `.done` only once its event is in the seen sets and trending.
        keys.record(events)
        applied.add(UInt64(events.count), ordering: .relaxed)
        if tracksPositions { positions.add(events.lazy.map(\.id)) }
    }

    // MARK: snapshots

    /// Every event below this log position is applied (a file log, whose batches are contiguous).
    var appliedThrough: UInt64 { positions.contiguous }

    /// The state as a snapshot at `appliedThrough`; nil while a batch above it is applied out of
    /// order (appends complete concurrently; the next try will find the gap closed).
    /// With a shared log, `shared` gives the follower's positions and the ids applied above them
    /// (read inside the capture, so they match the copies exactly).
    func capture(halfLifeSeconds: Double,
                 shared: (() -> (partitions: [ServingSnapshot.Partition], pending: [UInt64]))? = nil) -> ServingSnapshot? {
        let parts: (position: UInt64, applied: UInt64, seen: (users: [String: SeenSets.User], base: SeenBase?), trend: [Trending.Slot],
                    keys: IdempotencyKeys.Export, ids: [String],
                    kafka: (partitions: [ServingSnapshot.Partition], pending: [UInt64])?)? = gate.exclusive {
            let kafka = shared?()
            guard kafka != nil || (tracksPositions && positions.isContiguous) else { return nil }
            let position = kafka.map { $0.partitions.reduce(UInt64(0)) { $0 + UInt64($1.next) } } ?? positions.contiguous
            return (position, applied.load(ordering: .relaxed), seen.export(), trending.export(), keys.export(),
                    catalog.idTable, kafka)
        }
        guard let p = parts else { return nil }
        // Videos by this process's global index: the seen sets go as they are (a copy-on-write copy).
        var trends: [ServingSnapshot.Trend] = []
        for (i, t) in p.trend.enumerated() where t.score != 0 || t.stamp != 0 || t.count != 0 {
            trends.append(.init(video: UInt32(i), score: t.score, stamp: t.stamp, count: t.count))
        }
        return ServingSnapshot(position: p.position, eventsApplied: p.applied, halfLifeSeconds: halfLifeSeconds,
                               seenPerUser: UInt32(min(seen.perUser, Int(UInt32.max))), videos: p.ids, seen: p.seen.users, trending: trends,
                               keys: p.keys.done.map { .init(entry: $0.entry, id: $0.id, fingerprint: $0.fingerprint, timeMs: $0.timeMs) },
                               partitions: p.kafka?.partitions ?? [], pending: p.kafka?.pending ?? [], base: p.seen.base)
    }

    /// Loads a snapshot into a state nothing has been applied to yet (start-up); the log's tail
    /// from `s.position` is applied after it. `seeded`: the catalog was numbered from this
    /// snapshot's video table (`CatalogView.seed`), so nothing needs renumbering. Returns whether
    /// the seen sets had to be renumbered (the catalog is indexed otherwise than when the
    /// snapshot was taken).
    @discardableResult
    func restore(_ s: ServingSnapshot, seeded: Bool = false) -> Bool {
        gate.exclusive {
            let index = seeded ? Array(0..<Int32(s.videos.count)) : catalog.indices(of: s.videos)
            // Usually the catalog is indexed as it was when the snapshot was taken.
            let same = seeded || index.indices.allSatisfy { index[$0] == Int32($0) }
            seen.load(s.seen, base: s.base, remap: same ? nil : index, bound: Int(s.seenPerUser))
            var slots = [Trending.Slot](repeating: .init(), count: Int((index.max() ?? -1) + 1))
            for t in s.trending {
                slots[Int(index[Int(t.video)])] = .init(stamp: t.stamp, score: t.score, count: t.count)
            }
            trending.load(slots)
            keys.load(s.keys.map { ($0.entry, $0.id, $0.fingerprint, $0.timeMs) })
            applied.store(s.eventsApplied, ordering: .relaxed)
            positions.reset(to: s.position)
            return !same
        }
    }

    /// The log's replay starts at `position` with nothing below it (a pruned log without a snapshot):
    /// applied positions count from there, so snapshots can be taken.
    func startPositions(at position: UInt64) {
        gate.exclusive { positions.reset(to: position) }
    }

    /// Recomputes the trending order and the fresh-upload pool (`Trending.rebuild`).
    func rebuildTrending(now: Double = Date().timeIntervalSince1970) {
        trending.rebuild(videos: catalog.entries.videos, now: now)
    }

    /// Forgets idempotency keys older than the window and rate buckets idle long enough to be
    /// full again, so memory stays bounded on a long-running server.
    func expire(now: Double = Date().timeIntervalSince1970) {
        keys.expire(now: now)
        rateLimiter.expire(now: now)
    }

    // MARK: reading for a page

    struct Snapshot {
        var videos: [VideoBox?]
        var meta: [VideoMeta]
        var seen: Set<Int32>
        var trending: [Int32]
        var fresh: [Int32]
    }

    /// What a page reads (copy-on-write copies: O(1)). The fresh list is recomputed with
    /// trending (every refresh).
    func snapshot(user: String) -> Snapshot {
        let lists = trending.lists
        let seenByUser = seen.seen(by: user)
        let entries = catalog.entries
        return Snapshot(videos: entries.videos, meta: entries.meta, seen: seenByUser,
                        trending: lists.trending, fresh: lists.fresh)
    }

    // MARK: metrics

    var eventsApplied: UInt64 { applied.load(ordering: .relaxed) }

    var counts: (users: Int, videos: Int) { (seen.userCount, catalog.count) }
}

/// A readers-writer gate: many `shared` sections at once, an `exclusive` one alone.
final class SharedGate: @unchecked Sendable {
    private var lock = pthread_rwlock_t()
    init() {
        // Writer-preferring: a capture waiting behind a steady stream of applies still gets in.
        var attr = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attr)
        pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(&lock, &attr)
        pthread_rwlockattr_destroy(&attr)
    }
    deinit { pthread_rwlock_destroy(&lock) }
    func shared<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(&lock); defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }
    func exclusive<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(&lock); defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }
}

/// The applied log positions: everything below `contiguous`, and batches applied ahead of a gap
/// (concurrent appends complete in any order).
final class AppliedPositions: @unchecked Sendable {
    private let lock = NSLock()
    private var next: UInt64 = 0
    /// Applied ranges above `next`: start -> end (exclusive).
    private var ahead: [UInt64: UInt64] = [:]

    func add<S: Sequence<UInt64>>(_ ids: S) {
        var lo = UInt64.max, hi: UInt64 = 0
        for id in ids { lo = min(lo, id); hi = max(hi, id + 1) }
        guard lo < hi else { return }
        lock.lock(); defer { lock.unlock() }
        if hi <= next { return }
        if lo <= next {
            next = hi
            while let end = ahead.removeValue(forKey: next) { next = max(next, end) }
        } else {
            ahead[lo] = max(ahead[lo] ?? 0, hi)
        }
    }

    var contiguous: UInt64 {
        lock.lock(); defer { lock.unlock() }
        return next
    }

    var isContiguous: Bool {
        lock.lock(); defer { lock.unlock() }
        return ahead.isEmpty
    }

    func reset(to position: UInt64) {
        lock.lock(); defer { lock.unlock() }
        next = position
        ahead = [:]
    }
}
