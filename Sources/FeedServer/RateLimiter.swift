import Foundation

/// Per-user request rate limit: a token bucket per user, refilled at `perSecond` up to `burst`.
/// One lock of its own, so requests rarely wait on the rest of the state.
final class RateLimiter: @unchecked Sendable {
    let perSecond: Double
    let burst: Double
    private let lock = NSLock()
    private var buckets: [String: (tokens: Double, at: Double)] = [:]

    init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// Takes one token from the user's bucket; returns seconds to wait when empty.
    func take(user: String, now: Double = Date().timeIntervalSince1970) -> Double? {
        lock.lock(); defer { lock.unlock() }
        var b = buckets[user] ?? (burst, now)
        b.tokens = min(burst, b.tokens + (now - b.at) * perSecond)
        b.at = now
        if b.tokens < 1 {
            buckets[user] = b
            return (1 - b.tokens) / perSecond
        }
        b.tokens -= 1
        buckets[user] = b
        return nil
    }

    /// Forgets buckets idle long enough to be full again, so memory stays bounded.
    func expire(now: Double) {
        let idle = burst / perSecond
        lock.lock(); defer { lock.unlock() }
        buckets = buckets.filter { now - $0.value.at < idle }
    }
}
