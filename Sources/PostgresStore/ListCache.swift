import Foundation
import NIOCore
import NIOPosix
import PostgresNIO
import CandidateStore

/// The feed server's copy of the candidate lists it read from PostgreSQL, so that paging through
/// a session, or a person's next visit, is not another round trip and another query plan.
///
/// A list changes in place only through `replaceLists` (the ranking worker); a new generation
/// has new keys. `replaceLists` sends `NOTIFY foryou_lists` in its transaction, delivered after
/// commit, and every store with a cache listens on its own connection and drops what changed.
/// While that connection is down (as far as the client can tell: a silently dead TCP connection
/// is noticed only when it errors) the cache is empty and bypassed; entries also expire after
/// `ttl`, which bounds how long a notification lost that way can leave a list stale. A read that
/// raced with a notification (it may have read the list before the change) is not cached: each
/// notification advances `epoch`, and an entry is stored only when the epoch did not move while
/// it was read.
final class ListCache: @unchecked Sendable {
    struct Key: Hashable {
        let generation: Int64
        let user: String
    }

    static let channel = "foryou_lists"
    let capacity: Int
    let ttl: Double
    private let lock = NSLock()
    private var entries: [Key: (packed: PackedCandidates?, at: Double)] = [:]
    /// Insertion order, for evicting the oldest when full.
    private var order: [Key] = []
    private var head = 0
    private var epoch: UInt64 = 0
    private var listening = false
    private var lastAttempt = 0.0
    private var connecting = false
    private var hits = 0
    private var misses = 0

    init(capacity: Int, ttl: Double) {
        self.capacity = capacity
        self.ttl = ttl
    }

    enum Lookup {
        case hit(PackedCandidates?)
        case miss(epoch: UInt64?)  // nil: not listening, do not store
    }

    func lookup(_ key: Key, now: Double = Date().timeIntervalSince1970) -> Lookup {
        lock.lock(); defer { lock.unlock() }
        guard listening else { return .miss(epoch: nil) }
        if let e = entries[key], now - e.at < ttl {
            hits += 1
            return .hit(e.packed)
        }
        misses += 1
        return .miss(epoch: epoch)
    }

    func store(_ key: Key, _ packed: PackedCandidates?, readAt epochThen: UInt64?, now: Double = Date().timeIntervalSince1970) {
        lock.lock(); defer { lock.unlock() }
        guard listening, let e = epochThen, e == epoch else { return }
        if entries.updateValue((packed, now), forKey: key) == nil {
            order.append(key)
            if entries.count > capacity { evictOldest() }
            // Keys invalidated and stored again leave stale places behind: compact now and then.
            if order.count - head > 2 * capacity + 64 {
                var kept = Set<Key>()
                order = order[head...].reversed().filter { entries[$0] != nil && kept.insert($0).inserted }.reversed()
                head = 0
            }
        }
    }

    private func evictOldest() {
        while entries.count > capacity && head < order.count {
            entries[order[head]] = nil
            head += 1
        }
        if head > order.count / 2 {
            order.removeFirst(head)
            head = 0
        }
    }

    /// A notification: `{"g":GEN,"u":[users]}`, or `{"g":GEN}` for every list of a generation.
    func invalidate(payload: String) {
        struct Change: Decodable { let g: Int64; let u: [String]? }
        let change = try? JSONDecoder().decode(Change.self, from: Data(payload.utf8))
        lock.lock(); defer { lock.unlock() }
        epoch &+= 1
        guard let change else { return dropAll() }
        if let users = change.u {
            for u in users { entries[Key(generation: change.g, user: u)] = nil }
        } else {
            entries = entries.filter { $0.key.generation != change.g }
        }
    }

    private func dropAll() {
        entries = [:]
        order = []
        head = 0
    }

    /// The listening connection is up (true) or lost (false: everything cached is dropped).
    func setListening(_ on: Bool) {
        lock.lock(); defer { lock.unlock() }
        epoch &+= 1
        listening = on
        if !on { dropAll() }
    }

    /// True when a (re)connect should be tried now: at most one attempt at a time, at most one
    /// a second; the caller calls `connectFinished` after it.
    func shouldConnect(now: Double = Date().timeIntervalSince1970) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard !listening, !connecting, now - lastAttempt >= 1 else { return false }
        lastAttempt = now
        connecting = true
        return true
    }

    func connectFinished() {
        lock.lock(); connecting = false; lock.unlock()
    }

    var stats: (hits: Int, misses: Int, lists: Int) {
        lock.lock(); defer { lock.unlock() }
        return (hits, misses, entries.count)
    }

    /// The payloads announcing that `users`' lists of `generation` changed, each under
    /// PostgreSQL's 8,000-byte limit (a user id too long for one becomes a whole-generation notice).
    static func payloads(generation: Int64, users: [String]) -> [String] {
        func json(_ users: [String]?) -> String {
            struct Change: Encodable { let g: Int64; let u: [String]? }
            return String(decoding: try! JSONEncoder().encode(Change(g: generation, u: users)), as: UTF8.self)
        }
        var out: [String] = [], chunk: [String] = [], bytes = 0
        for u in users {
            let size = u.utf8.count * 2 + 4  // escaped, quoted, comma
            if bytes + size > 7_000 && !chunk.isEmpty {
                out.append(json(chunk))
                chunk = []
                bytes = 0
            }
            if size > 7_000 { return [json(nil)] }
            chunk.append(u)
            bytes += size
        }
        if !chunk.isEmpty { out.append(json(chunk)) }
        return out
    }
}

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
        let key = ListCache.Key(generation: generation, user: user)
        switch cache.lookup(key) {
        case .hit(let p):
            return p
        case .miss(let epoch):
            if epoch == nil && cache.shouldConnect() {
                DispatchQueue.global().async { [weak self] in
                    defer { cache.connectFinished() }
                    try? self?.listen(cache)
                }
            }
            let p = try read()
            cache.store(key, p, readAt: epoch)
            return p
        }
    }
}
