import Foundation

/// The feed server's copy of the candidate lists it read from its store, so that paging through
/// a session, or a person's next visit, is not another query (and, on PostgreSQL, another round
/// trip and query plan).
///
/// A list changes in place only through `replaceLists` (the ranking worker, another process); a
/// new generation has new keys. The store tells the cache what changed: PostgreSQL by `NOTIFY
/// foryou_lists`, sent in `replaceLists`' transaction and delivered after commit, with the users;
/// SQLite by `PRAGMA data_version`, polled every few milliseconds, which moves with any other
/// connection's commit (the whole cache is dropped then). While the store cannot tell (its
/// listening connection is down) the cache is empty and bypassed; entries also expire after
/// `ttl`. A read that raced with a change (it may have read the list before it) is not cached:
/// each change advances `epoch`, and an entry is stored only when the epoch did not move while it
/// was read.
public final class ListCache: @unchecked Sendable {
    public struct Key: Hashable {
        public let generation: Int64
        public let user: String
        public init(generation: Int64, user: String) { self.generation = generation; self.user = user }
    }

    public static let channel = "foryou_lists"
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

    public init(capacity: Int, ttl: Double) {
        self.capacity = capacity
        self.ttl = ttl
    }

    enum Lookup {
        case hit(PackedCandidates?)
        case miss(epoch: UInt64?)  // nil: not listening, do not store
    }

    /// Under the lock: the entry when listening and it is fresh (counted as a hit), else nil.
    private func hitLocked(_ key: Key, now: Double) -> PackedCandidates?? {
        guard listening, let e = entries[key], now - e.at < ttl else { return nil }
        hits += 1
        return .some(e.packed)
    }

    func lookup(_ key: Key, now: Double = Date().timeIntervalSince1970) -> Lookup {
        lock.lock(); defer { lock.unlock() }
        if let p = hitLocked(key, now: now) { return .hit(p) }
        guard listening else { return .miss(epoch: nil) }
        misses += 1
        return .miss(epoch: epoch)
    }

    /// The entry when it is cached and fresh (counted as a hit); nil otherwise (nothing counted:
    /// the read that follows counts its miss).
    public func peek(_ key: Key, now: Double = Date().timeIntervalSince1970) -> PackedCandidates?? {
        lock.lock(); defer { lock.unlock() }
        return hitLocked(key, now: now)
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

    /// The list for `key` from memory, or from `read` (kept when no change raced with it).
    /// `whileBypassed` runs first when the cache is off because the store cannot tell changes.
    public func list(_ key: Key, whileBypassed: () -> Void = {}, read: () throws -> PackedCandidates?) throws -> PackedCandidates? {
        switch lookup(key) {
        case .hit(let p):
            return p
        case .miss(let epoch):
            if epoch == nil { whileBypassed() }
            let p = try read()
            store(key, p, readAt: epoch)
            return p
        }
    }

    /// A notification: `{"g":GEN,"u":[users]}`, or `{"g":GEN}` for every list of a generation.
    public func invalidate(payload: String) {
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

    /// Every list may have changed (SQLite: another connection committed).
    public func invalidateAll() {
        lock.lock(); defer { lock.unlock() }
        epoch &+= 1
        dropAll()
    }

    /// The listening connection is up (true) or lost (false: everything cached is dropped).
    public func setListening(_ on: Bool) {
        lock.lock(); defer { lock.unlock() }
        guard on != listening else { return }
        epoch &+= 1
        listening = on
        if !on { dropAll() }
    }

    /// True when a (re)connect should be tried now: at most one attempt at a time, at most one
    /// a second; the caller calls `connectFinished` after it.
    public func shouldConnect(now: Double = Date().timeIntervalSince1970) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard !listening, !connecting, now - lastAttempt >= 1 else { return false }
        lastAttempt = now
        connecting = true
        return true
    }

    public func connectFinished() {
        lock.lock(); connecting = false; lock.unlock()
    }

    public var stats: (hits: Int, misses: Int, lists: Int) {
        lock.lock(); defer { lock.unlock() }
        return (hits, misses, entries.count)
    }

    /// The payloads announcing that `users`' lists of `generation` changed, each under
    /// PostgreSQL's 8,000-byte limit (a user id too long for one becomes a whole-generation notice).
    public static func payloads(generation: Int64, users: [String]) -> [String] {
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

