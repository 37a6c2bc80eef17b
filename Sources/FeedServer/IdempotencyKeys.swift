import Foundation
import Checksum
import EventLog

/// Idempotency-Key handling: per (user, key), the event's id once stored (nil while the first
/// request is in flight) and that request's fingerprint, remembered for `windowSeconds`. Keys
/// are claimed by a request and recorded as done when their event is applied (by this server's
/// append or, with a shared log, whichever server appended it). One lock of its own, so requests
/// rarely wait on the rest of the state.
final class IdempotencyKeys: @unchecked Sendable {
    enum State: Equatable { case new, done(UInt64), inFlight, mismatch }

    let windowSeconds: Double
    private let lock = NSLock()
    /// Per (user, key): the event id once stored, the request's fingerprint, and the event's time
    /// (what `keyTimes` holds for it; an older entry there for a key used again is stale).
    private var keys: [String: (id: UInt64?, fingerprint: UInt64, timeMs: Int64)] = [:]
    /// (event time ms, key) in arrival order, for expiring keys after `windowSeconds`.
    private var keyTimes: [(Int64, String)] = []
    private var keyTimesHead = 0

    init(windowSeconds: Double) { self.windowSeconds = windowSeconds }

    /// What identifies a request under one Idempotency-Key: its video, type and watch time.
    static func fingerprint(_ d: EventDraft) -> UInt64 {
        Array("\(d.video)\u{0}\(d.type.name)\u{0}\(d.watchMs)".utf8).withUnsafeBytes { FNV64.digest($0) }
    }

    private static func entry(_ user: String, _ key: String) -> String { user + "\u{0}" + key }

    /// A key already used for a different request is `.mismatch` (the IETF idempotency-key
    /// draft's 422), never a replay of the first one's answer.
    func claim(user: String, key: String, fingerprint: UInt64) -> State {
        let k = IdempotencyKeys.entry(user, key)
        lock.lock(); defer { lock.unlock() }
        guard let entry = keys[k] else {
            keys[k] = (nil, fingerprint, 0)
            return .new
        }
        guard entry.fingerprint == fingerprint else { return .mismatch }
        return entry.id.map { .done($0) } ?? .inFlight
    }

    /// Forgets a claim whose event was not stored.
    func release(user: String, key: String) {
        let k = IdempotencyKeys.entry(user, key)
        lock.lock(); keys[k] = nil; lock.unlock()
    }

    /// Records the keys of applied events as done, under one lock.
    func record(_ events: [Event]) {
        lock.lock(); defer { lock.unlock() }
        for e in events where !e.draft.idempotencyKey.isEmpty {
            let k = IdempotencyKeys.entry(e.user, e.draft.idempotencyKey)
            keys[k] = (e.id, IdempotencyKeys.fingerprint(e.draft), e.timeMs)
            keyTimes.append((e.timeMs, k))
        }
    }

    /// Forgets done keys whose event is older than the window (in-flight claims stay).
    func expire(now: Double) {
        let cutoff = Int64((now - windowSeconds) * 1000)
        lock.lock(); defer { lock.unlock() }
        while keyTimesHead < keyTimes.count && keyTimes[keyTimesHead].0 < cutoff {
            let k = keyTimes[keyTimesHead].1
            // Only the entry this time was recorded for (a key used again has a newer one).
            if let entry = keys[k], entry.id != nil, entry.timeMs == keyTimes[keyTimesHead].0 { keys[k] = nil }
            keyTimesHead += 1
        }
        if keyTimesHead > 4096 && keyTimesHead * 2 > keyTimes.count {
            keyTimes.removeFirst(keyTimesHead)
            keyTimesHead = 0
        }
    }

    /// The keys as they stand (copy-on-write copies: O(1)), for a snapshot; `done` lists them.
    struct Export {
        var keys: [String: (id: UInt64?, fingerprint: UInt64, timeMs: Int64)]
        var times: ArraySlice<(Int64, String)>

        /// The done keys in the order they were recorded: (user and key, event id, fingerprint,
        /// event time). In-flight claims belong to this process's requests and are left out.
        var done: [(entry: String, id: UInt64, fingerprint: UInt64, timeMs: Int64)] {
            times.compactMap { t, k in
                guard let e = keys[k], let id = e.id, e.timeMs == t else { return nil }
                return (k, id, e.fingerprint, t)
            }
        }
    }

    func export() -> Export {
        lock.lock(); defer { lock.unlock() }
        return Export(keys: keys, times: keyTimes[keyTimesHead...])
    }

    /// Replaces the keys (a snapshot being restored).
    func load(_ done: [(entry: String, id: UInt64, fingerprint: UInt64, timeMs: Int64)]) {
        lock.lock(); defer { lock.unlock() }
        keys = [:]
        keyTimes = []
        keyTimesHead = 0
        for d in done {
            keys[d.entry] = (d.id, d.fingerprint, d.timeMs)
            keyTimes.append((d.timeMs, d.entry))
        }
    }

    var count: Int {
        lock.lock(); defer { lock.unlock() }
        return keys.count
    }
}
