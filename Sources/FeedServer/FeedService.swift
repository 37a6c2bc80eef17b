import Foundation
import Hummingbird
import CandidateStore
import EventLog

/// Request context: the authenticated user, set by the auth middleware from the token alone.
public struct FeedContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var user: String?

    public init(source: Source) {
        coreContext = .init(source: source)
        user = nil
    }
}

/// The feed service's parts: store, event log, in-memory state, signer, metrics.
public final class FeedService: @unchecked Sendable {
    public let config: FeedServerConfig
    public let store: any FeedStore
    public let log: EventLog
    public let signer: TokenSigner
    let tokens: TokenCache
    let state: FeedState
    let metrics: MetricsRegistry
    let mediaCache: MediaCache
    private var refresher: Task<Void, Never>?
    public let startupNotes: [String]

    /// `store`: the candidate store to serve from (default: the data directory's SQLite file);
    /// the event log, media and signing key are the data directory's either way.
    public init(config: FeedServerConfig, store: (any FeedStore)? = nil) throws {
        self.config = config
        mediaCache = MediaCache(capacity: config.mediaCacheBytes)
        let dir = DataDirectory(config.dataDir)
        self.store = try store ?? dir.openStore()
        signer = TokenSigner(key: try dir.signingKey())
        tokens = TokenCache(signer: signer)
        let metrics = MetricsRegistry()
        self.metrics = metrics
        var logConfig = EventLogConfig()
        logConfig.onCommit = { n in metrics.observeFsyncBatch(n) }
        log = try EventLog(directory: dir.events, config: logConfig)
        let state = FeedState(config: config)
        self.state = state
        var notes: [String] = []
        if let m = log.recovery.message { notes.append(m) }
        try state.refresh(store: self.store)
        let log = self.log
        // Replay the log into the in-memory indexes (seen sets, trending, idempotency keys).
        var batch: [Event] = []
        try log.forEach(from: 0) { e in
            batch.append(e)
            if batch.count == 10_000 { state.apply(batch); batch.removeAll(keepingCapacity: true) }
        }
        state.apply(batch)
        state.rebuildTrending()
        notes.append("replayed \(log.endId) events; live generation: \(state.live.map { "\($0.id) (\($0.model), \($0.users) users)" } ?? "none")")
        startupNotes = notes
    }

    /// Periodic refresh of the catalog, the live generation and trending.
    public func startBackgroundRefresh() {
        guard refresher == nil else { return }
        let interval = config.refreshSeconds
        refresher = Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
                guard let self else { return }
                let (state, store) = (self.state, self.store)
                _ = try? await self.storeCall { try state.refresh(store: store) }
                self.state.expire()
            }
        }
    }

    public func stop() {
        refresher?.cancel()
        log.close()
    }

    public func issueToken(user: String, ttlSeconds: Int64) -> String { signer.issue(user: user, ttlSeconds: ttlSeconds) }
}

extension FeedService {
    /// Runs store work from async code: inline for the embedded store, on the blocking queue for
    /// a networked one (its calls wait on round trips and must not hold a cooperative thread).
    func storeCall<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        store.waitsOnNetwork ? try await Blocking.run(body) : try body()
    }

    /// Reloads the catalog and the live generation now (tests, and after `score-all --into`).
    public func refreshNow() throws { try state.refresh(store: store) }
    /// Expires old idempotency keys and idle rate buckets now.
    public func expireNow(at now: Double = Date().timeIntervalSince1970) { state.expire(now: now) }
    public var idempotencyKeyCount: Int { state.idempotencyKeyCount }
    /// Recomputes the trending ranking now.
    public func rebuildTrendingNow() { state.rebuildTrending() }
}

/// Runs blocking work (a networked store's round trips) on a dispatch queue, so the cooperative
/// threads keep serving other requests meanwhile.
enum Blocking {
    static let queue = DispatchQueue(label: "foryou.blocking", attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            queue.async { c.resume(with: Result { try body() }) }
        }
    }
}
