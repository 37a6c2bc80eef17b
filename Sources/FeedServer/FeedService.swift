import Foundation
#if canImport(Glibc)
/// glibc's `malloc_trim` (declared in malloc.h, which the Glibc module leaves out).
@_silgen_name("malloc_trim") private func glibcMallocTrim(_ pad: Int) -> Int32
#endif
import NIOPosix
import Hummingbird
import CandidateStore
import EventLog
import KafkaLog

/// Request context: the authenticated user, set by the auth middleware from the token alone.
public struct FeedContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The verified token's subject (set by the auth middleware).
    public var user: String? {
        get { info.user }
        set { info.user = newValue }
    }
    /// Shared by every copy of this request's context, so that middleware earlier in the chain
    /// (the request log) sees what later middleware learned (the user).
    let info = RequestInfo()

    public init(source: Source) {
        coreContext = .init(source: source)
    }
}

final class RequestInfo: @unchecked Sendable {
    var user: String?
}

/// The feed service's parts: store, event log, in-memory state, signer, metrics.
public final class FeedService: @unchecked Sendable {
    public let config: FeedServerConfig
    public let store: any FeedStore
    /// Where events are appended: the data directory's file log, or `config.kafka`.
    public let log: any EventAppender
    /// Where what the server served under an experiment goes (`Exposure`): the data directory's
    /// `exposures/` log, or the topic `<topic>.exposures` with Kafka. Opened on the first
    /// exposure; nil after it failed to open (exposures are then counted as dropped).
    private var exposureLog: (any EventAppender)?
    private var exposureOpenFailed = false
    private let exposureLock = NSLock()
    /// With a shared (Kafka) log: the reader that applies every server's events to this one's state.
    private var follower: KafkaFollower?
    public let signer: TokenSigner
    let tokens: TokenCache
    let state: FeedState
    let metrics: MetricsRegistry
    let mediaCache: MediaCache
    private var refresher: Task<Void, Never>?
    /// The log position of the newest snapshot written or loaded, and whether one is being written.
    private let snapshotLock = NSLock()
    private var lastSnapshot: UInt64 = 0
    private var writingSnapshot = false
    /// After a failed write, none is tried before this time (s since 1970).
    private var snapshotRetryAt = 0.0
    public private(set) var startupNotes: [String]

    /// `store`: the candidate store to serve from (default: the data directory's SQLite file);
    /// the event log is the data directory's unless `config.kafka` names a topic; media and the
    /// signing key are the data directory's either way.
    public init(config: FeedServerConfig, store: (any FeedStore)? = nil) throws {
        let tStart = Date()
        self.config = config
        mediaCache = MediaCache(capacity: config.mediaCacheBytes)
        let dir = DataDirectory(config.dataDir)
        self.store = try store ?? dir.openStore()
        signer = TokenSigner(key: try dir.signingKey())
        tokens = TokenCache(signer: signer)
        let metrics = MetricsRegistry()
        self.metrics = metrics
        let state = FeedState(config: config)
        self.state = state
        var notes: [String] = []
        if let kafka = config.kafka {
            try state.refresh(store: self.store)
            // Several servers share the topic: each follows every partition, so seen sets and
            // trending cover what was posted to any of them.
            let producer = try KafkaProducer(location: kafka)
            log = producer
            let f = try KafkaFollower(location: kafka, state: state)
            follower = f
            // The newest snapshot that belongs to this topic, then each partition after it.
            var from: [Int32: Int64] = [:], pending: [UInt64] = []
            if config.snapshotEvery > 0 {
                let (snap, passed) = SnapshotStore(directory: Self.snapshotDirectory(config)).newest(
                    halfLifeSeconds: config.trendingHalfLifeSeconds, seenPerUser: config.seenPerUser, misfit: f.misfit)
                notes += passed
                if let snap {
                    if state.restore(snap) { notes.append("snapshot's seen sets renumbered: the catalog is in another order than when it was taken") }
                    from = Dictionary(uniqueKeysWithValues: snap.partitions.map { ($0.partition, $0.next) })
                    pending = snap.pending
                    lastSnapshot = snap.eventsApplied
                }
            }
            let replayed = try f.replay(from: from, pending: pending)
            notes.append("\(kafka): librdkafka \(librdkafkaVersion), \(f.partitions) partitions, replayed \(replayed) events"
                         + (from.isEmpty ? "" : " after the snapshot at offsets " + from.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")))
        } else {
            // Three things at once, each on a thread of its own: the catalog loads from the store;
            // the log opens and its newest snapshot is read and restored, numbering the catalog
            // first (so the tail needs no catalog); the log's tail is read, decoded and indexed
            // while this thread applies it.
            final class Loading: @unchecked Sendable { var error: Error?; var done = Date() }
            let loading = Loading(), loaded = DispatchGroup(), numbered = DispatchSemaphore(value: 0)
            let store = self.store
            loaded.enter()
            Thread.detachNewThread {
                do { try state.refresh(store: store, beforeReload: { numbered.wait() }) } catch { loading.error = error }
                loading.done = Date()
                loaded.leave()
            }
            var signalled = false
            func letTheCatalogIn() { if !signalled { signalled = true; numbered.signal() } }
            do {
                defer { letTheCatalogIn() }
                var logConfig = EventLogConfig()
                logConfig.onCommit = { n in metrics.observeFsyncBatch(n) }
                let t0 = Date()
                let log = try EventLog(directory: config.eventsDir ?? dir.events, config: logConfig, access: .append)
                let tOpened = Date()
                self.log = log
                if let m = log.recovery.message { notes.append(m) }
                // The newest valid snapshot, then the log's tail into the in-memory indexes (seen
                // sets, trending, idempotency keys); the whole log without one.
                var from: UInt64 = 0
                var restored = false
                if config.snapshotEvery > 0 {
                    let (snap, passed) = SnapshotStore(directory: Self.snapshotDirectory(config)).newest(
                        logEnd: log.endId, halfLifeSeconds: config.trendingHalfLifeSeconds, seenPerUser: config.seenPerUser,
                        fingerprint: log.fingerprint(of:))
                    notes += passed
                    if let snap {
                        let seeded = state.catalog.seed(ids: snap.videos, index: snap.videoIndex)
                        letTheCatalogIn()
                        if state.restore(snap, seeded: seeded) {
                            notes.append("snapshot's seen sets renumbered: the catalog is in another order than when it was taken")
                        }
                        from = snap.position
                        lastSnapshot = snap.position
                        restored = true
                    }
                }
                letTheCatalogIn()
                let tSnapshot = Date()
                if from < log.firstId {
                    // Pruned, and no snapshot covers the cut: what was removed is not in the state.
                    notes.append("the event log was pruned before event \(log.firstId) and no usable snapshot covers it: "
                                 + "seen sets and trending start from event \(log.firstId)")
                    from = log.firstId
                    state.startPositions(at: from)
                    lastSnapshot = from
                }
                let applying = try Self.replay(log, from: from, into: state)
                let tTail = Date()
                notes.append("replayed \(log.endId - from) events" + (restored ? " after the snapshot at event \(from)" : ""))
                loaded.wait()
                if let error = loading.error { throw error }
                notes.append(String(format: "start-up: log opened in %.2f s; snapshot restored by %.2f s; %llu events replayed by %.2f s "
                                    + "(%.2f s of it applying); catalog loaded by %.2f s (at once)",
                                    tOpened.timeIntervalSince(t0), tSnapshot.timeIntervalSince(tStart), log.endId - from,
                                    tTail.timeIntervalSince(tStart), applying, loading.done.timeIntervalSince(tStart)))
            } catch {
                loaded.wait()
                throw error
            }
        }
        state.rebuildTrending()
        notes.append("live generation: \(state.generations.live.map { "\($0.id) (\($0.model), \($0.users) users)" } ?? "none")")
        startupNotes = notes
        // A long tail replayed: checkpoint now, so the next start does not replay it again.
        do {
            if let m = try snapshotIfDue() { startupNotes.append(m) }
        } catch {
            startupNotes.append("snapshot not written: \(error)")
        }
        // The replay's and the snapshot decode's temporaries are freed; give their pages back.
        #if canImport(Glibc)
        _ = glibcMallocTrim(0)
        #endif
    }

    /// Applies `log`'s events from `from` to `state`, read and decoded on another thread while
    /// this one applies them (the two cores each take half of the work instead of one doing both
    /// in turn); returns the seconds spent applying.
    private static func replay(_ log: EventLog, from start: UInt64, into state: FeedState) throws -> Double {
        let tail = BatchHandoff<(events: [Event], videos: [Int32])>(capacity: 4)
        Thread.detachNewThread {
            var batch: [Event] = []
            batch.reserveCapacity(10_000)
            // Indexed here too: the catalog's lookups off the applying thread.
            func hand() -> Bool { tail.put((batch, state.catalog.indices(of: batch.lazy.map(\.video)))) }
            do {
                try log.forEach(from: start) { e in
                    batch.append(e)
                    if batch.count == 10_000 {
                        guard hand() else { throw CancellationError() }
                        batch = []
                        batch.reserveCapacity(10_000)
                    }
                }
                _ = hand()
                tail.finish(nil)
            } catch {
                tail.finish(error)
            }
        }
        var applying = 0.0
        // (Should anything here throw, the reader is let go instead of waiting forever.)
        defer { tail.cancel() }
        while let batch = try tail.take() {
            let t = Date()
            state.apply(batch.events, videos: batch.videos)
            applying += Date().timeIntervalSince(t)
        }
        return applying
    }

    /// Periodic refresh of the catalog, the live generation and trending.
    public func startBackgroundRefresh() {
        guard refresher == nil else { return }
        follower?.start()
        let interval = config.refreshSeconds
        refresher = Task.detached { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
                guard let self else { return }
                let (state, store) = (self.state, self.store)
                _ = try? await self.storeCall { try state.refresh(store: store) }
                self.state.expire()
                if self.snapshotDue {
                    // Encoding and fsync block: on the blocking pool, off the cooperative threads.
                    _ = try? await Blocking.run { [weak self] in
                        do { try self?.snapshotIfDue() } catch {
                            self?.metrics.add("foryou_snapshot_failures_total")
                            FileHandle.standardError.write(Data("foryou serve: snapshot not written (next try in 60 s): \(error)\n".utf8))
                        }
                    }
                }
                self.follower?.expire()
            }
        }
    }

    public func stop() {
        refresher?.cancel()
        follower?.stop()
        log.close()
        exposureLock.withLock { exposureLog?.close(); exposureLog = nil; exposureOpenFailed = true }
    }

    /// The exposure log, opened on first use (nil when it cannot be).
    private func exposures() -> (any EventAppender)? {
        exposureLock.withLock {
            if exposureLog == nil && !exposureOpenFailed {
                do {
                    if let k = config.kafka {
                        exposureLog = try KafkaProducer(location: KafkaLocation(brokers: k.brokers, topic: k.topic + ".exposures",
                                                                                properties: k.properties))
                    } else {
                        let dir = DataDirectory(config.dataDir)
                        exposureLog = try EventLog(directory: dir.exposureLog(ofLog: config.eventsDir),
                                                   access: .append)
                    }
                } catch {
                    exposureOpenFailed = true
                    FileHandle.standardError.write(Data("foryou serve: exposures are not recorded: \(error)\n".utf8))
                }
            }
            return exposureLog
        }
    }

    /// Records what a page served (after the response is built; not awaited by the request).
    func recordExposure(_ x: Exposure) {
        guard let log = exposures() else { return metrics.add("foryou_exposures_dropped_total") }
        let metrics = self.metrics
        Task.detached {
            do {
                _ = try await log.append([x.draft])
                metrics.add("foryou_exposures_total")
            } catch {
                metrics.add("foryou_exposures_dropped_total")
            }
        }
    }

    /// Where snapshots of this log's replayed state go: `DATA/snapshots` for the data directory's
    /// own log, `<events dir>-snapshots` beside another one, `DATA/snapshots/kafka-<topic>` for a
    /// topic (a snapshot belongs to one log).
    static func snapshotDirectory(_ config: FeedServerConfig) -> String {
        let dir = DataDirectory(config.dataDir)
        if let k = config.kafka {
            let safe = String(k.topic.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." ? $0 : "_" })
            return dir.snapshots + "/kafka-" + safe
        }
        return dir.snapshotDirectory(ofLog: config.eventsDir)
    }

    /// How far the state has come, in the unit snapshots are spaced in: the file log's applied
    /// position, or the events applied from a shared log.
    private var progress: UInt64 { follower == nil ? state.appliedThrough : state.eventsApplied }

    /// Whether enough events were applied since the last snapshot.
    var snapshotDue: Bool {
        guard fileLog != nil || follower != nil, config.snapshotEvery > 0 else { return false }
        return snapshotLock.withLock {
            !writingSnapshot && Date().timeIntervalSince1970 >= snapshotRetryAt
                && progress >= lastSnapshot && progress - lastSnapshot >= config.snapshotEvery
        }
    }

    /// Writes a snapshot of the replayed state when one is due; returns what it did.
    @discardableResult
    func snapshotIfDue(force: Bool = false) throws -> String? {
        guard fileLog != nil || follower != nil, config.snapshotEvery > 0 || force else { return nil }
        let go = snapshotLock.withLock { () -> Bool in
            let through = progress
            guard !writingSnapshot, force || (through >= lastSnapshot && through - lastSnapshot >= config.snapshotEvery) else { return false }
            writingSnapshot = true
            return true
        }
        guard go else { return nil }
        defer { snapshotLock.withLock { writingSnapshot = false } }
        guard var snap = state.capture(halfLifeSeconds: config.trendingHalfLifeSeconds, shared: follower?.snapshotPositions) else { return nil }
        let t = Date()
        do {
            if let log = fileLog, snap.position > 0 {
                guard let last = try log.read(from: snap.position - 1, limit: 1).first, last.id == snap.position - 1 else {
                    throw EventLogError.io("snapshot: event \(snap.position - 1) cannot be read back")
                }
                snap.logFingerprint = last.fingerprint
            }
            try SnapshotStore(directory: Self.snapshotDirectory(config)).write(snap)
        } catch {
            snapshotLock.withLock { snapshotRetryAt = Date().timeIntervalSince1970 + 60 }
            throw error
        }
        snapshotLock.withLock { lastSnapshot = follower == nil ? snap.position : snap.eventsApplied }
        metrics.add("foryou_snapshots_written_total")
        return String(format: "snapshot at event %llu written (%d users) in %.2f s", snap.position, state.seen.userCount,
                      Date().timeIntervalSince(t))
    }

    /// Writes a snapshot now, whatever `snapshotEvery` says (tests; an operator's tool could too).
    public func writeSnapshotNow() throws -> String? { try snapshotIfDue(force: true) }

    /// The in-memory state (tests).
    var stateForTests: FeedState { state }
    var followerForTests: KafkaFollower? { follower }

    /// The file log, when events go to one (nil with Kafka).
    public var fileLog: EventLog? { log as? EventLog }

    /// Why following the shared log stopped (nil while it works, and with a file log).
    public var followFailure: String? { follower?.failure }

    /// Applies events this server appended (once: the follower may have applied them already).
    func applyAppended(_ events: [Event]) {
        guard let f = follower else { return state.apply(events) }
        // Claimed inside the apply's section: a capture never sees an id claimed but not applied.
        state.apply(events, admit: { f.firstToApply($0.id) })
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
    public var idempotencyKeyCount: Int { state.keys.count }
    /// Recomputes the trending ranking now.
    public func rebuildTrendingNow() { state.rebuildTrending() }
}

/// Runs blocking work (a networked store's round trips, a list read that misses the page cache)
/// on threads of its own, so the event loops and the cooperative threads keep serving requests
/// that need no I/O meanwhile. Sixteen threads: enough disk reads or round trips in flight to
/// keep a device or a database busy, few enough to be cheap when idle.
enum Blocking {
    static let pool: NIOThreadPool = {
        let p = NIOThreadPool(numberOfThreads: 16)
        p.start()
        return p
    }()

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }
}

/// Hands batches from one producer thread to one consumer, at most `capacity` waiting (the
/// producer blocks beyond that), then the producer's outcome: `take` gives nil at a clean end
/// and rethrows the producer's error. A consumer that stops early cancels: `put` then returns
/// false at once and the producer should stop.
final class BatchHandoff<T>: @unchecked Sendable {
    private let cond = NSCondition()
    private var waiting: [T] = []
    private var ended = false
    private var cancelled = false
    private var failure: Error?
    private let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// False once the consumer cancelled (the item is dropped).
    @discardableResult
    func put(_ item: T) -> Bool {
        cond.lock(); defer { cond.unlock() }
        while waiting.count >= capacity && !cancelled { cond.wait() }
        if cancelled { return false }
        waiting.append(item)
        cond.broadcast()
        return true
    }

    func finish(_ error: Error?) {
        cond.lock(); defer { cond.unlock() }
        ended = true
        failure = error
        cond.broadcast()
    }

    /// The consumer is done: waiting items are dropped and the producer is let go.
    func cancel() {
        cond.lock(); defer { cond.unlock() }
        cancelled = true
        waiting.removeAll()
        cond.broadcast()
    }

    func take() throws -> T? {
        cond.lock(); defer { cond.unlock() }
        while waiting.isEmpty && !ended && !cancelled { cond.wait() }
        if !waiting.isEmpty {
            cond.broadcast()
            return waiting.removeFirst()
        }
        if let failure { throw failure }
        return nil
    }
}
