import Foundation
import NIOCore
import NIOPosix
import PostgresNIO
import CandidateStore

extension PostgresFeedStore {
    /// Keeps the lists the feed reads in memory (`capacity` lists, each for at most `ttl`
    /// seconds), invalidated by the `replaceLists` of any process on the same database. For
    /// `foryou serve`; batch tools read through.
    public func enableListCache(capacity: Int = 50_000, ttl: Double = 300) throws {
        let cache = ListCache(capacity: capacity, ttl: ttl)
        listCache = cache
        try listen(cache)
    }

    /// Lists served from memory and read from PostgreSQL since the cache was enabled.
    public var listCacheStats: (hits: Int, misses: Int, lists: Int)? { listCache?.stats }

    /// Opens the cache's own connection, subscribes to the channel, and arranges to forget
    /// everything (and reconnect on a later read) when that connection closes.
    func listen(_ cache: ListCache) throws {
        let conn: PostgresConnection
        do {
            conn = try PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
                                                  id: 0, logger: logger).wait()
        } catch {
            throw PostgresStoreError("cannot connect to \(redacted): \(PostgresStoreError(error).description)")
        }
        conn.addListener(channel: ListCache.channel) { _, note in cache.invalidate(payload: note.payload) }
        do { _ = try conn.query("LISTEN \(unescaped: ListCache.channel)", logger: logger).wait() } catch {
            try? conn.close().wait()
            throw PostgresStoreError(error)
        }
        listenerLock.lock()
        let old = listener
        listener = conn
        listenerLock.unlock()
        if let old, !old.isClosed { try? old.close().wait() }
        cache.setListening(true)
        // Only the current listener's loss turns the cache off (not a replaced one's close).
        conn.closeFuture.whenComplete { [weak self] _ in
            guard let self else { return cache.setListening(false) }
            self.listenerLock.lock()
            let current = self.listener === conn
            self.listenerLock.unlock()
            if current { cache.setListening(false) }
        }
    }

    /// Reads one list through the cache (when enabled).
    func cachedList(generation: Int64, user: String, read: () throws -> PackedCandidates?) throws -> PackedCandidates? {
        guard let cache = listCache else { return try read() }
        return try cache.list(ListCache.Key(generation: generation, user: user), whileBypassed: {
            guard cache.shouldConnect() else { return }
            DispatchQueue.global().async { [weak self] in
                defer { cache.connectFinished() }
                try? self?.listen(cache)
            }
        }, read: read)
    }
}
