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
final class FeedState: Sendable {
    let catalog: CatalogView
    let generations: GenerationView
    let seen = SeenSets()
    let trending: Trending
    let keys: IdempotencyKeys
    let rateLimiter: RateLimiter
    /// Events applied (replayed, appended here, or followed from a shared log).
    private let applied = Atomic<UInt64>(0)

    init(config: FeedServerConfig) {
        catalog = CatalogView(publicBaseURL: config.publicBaseURL)
        generations = GenerationView()
        trending = Trending(halfLifeSeconds: config.trendingHalfLifeSeconds, freshSeconds: config.freshSeconds,
                            freshMaxEvents: config.freshMaxEvents)
        keys = IdempotencyKeys(windowSeconds: config.idempotencyWindowSeconds)
        rateLimiter = RateLimiter(perSecond: config.ratePerSecond, burst: config.rateBurst)
    }

    // MARK: loading

    /// Reloads the live generation, the experiment and (when its version changed) the catalog
    /// from the store, then rebuilds trending.
    func refresh(store: FeedStore) throws {
        let version = try store.catalogVersion()
        let liveNow = try store.liveGeneration()
        let models = Dictionary(try store.generations().map { ($0.id, $0.model) }, uniquingKeysWith: { $1 })
        let running = try store.runningExperiment()
        generations.set(live: liveNow, experiment: running, models: models)
        if version != catalog.version {
            catalog.reload(try store.videos(), version: version)
        }
        rebuildTrending()
    }

    /// Applies events appended by this or an earlier run (start-up replay, then each append).
    func apply(_ events: [Event]) {
        guard !events.isEmpty else { return }
        let videos = catalog.indices(of: events.lazy.map(\.video))
        seen.insert(events, videos: videos)
        trending.record(events, videos: videos)
        // Last: a key reads `.done` only once its event is in the seen sets and trending.
        keys.record(events)
        applied.add(UInt64(events.count), ordering: .relaxed)
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
