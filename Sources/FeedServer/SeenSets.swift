import Foundation
import EventLog

/// Per user: the videos (global indices, `CatalogView`) already watched or skipped; any event
/// counts. A page leaves them out. Bounded by policy: each user keeps the `perUser` videos they
/// touched last (in the order events were applied; a video touched again moves to the newest
/// end), so memory does not grow with a user's history. Older ones may come back in a feed only
/// if a list ranks them, and a retrained model's lists leave out everything its training saw.
/// One lock; every operation under it is short.
final class SeenSets: @unchecked Sendable {
    /// One user's videos: membership, and the order to forget them in (oldest first from `head`;
    /// an entry is stale when the video was touched again later, `last[v]` naming its newest slot).
    struct User {
        var set = Set<Int32>()
        var order: [Int32] = []
        var last: [Int32: Int] = [:]
        var head = 0

        /// Oldest first.
        var videos: [Int32] { order.indices.dropFirst(head).compactMap { last[order[$0]] == $0 ? order[$0] : nil } }

        mutating func touch(_ v: Int32, limit: Int) {
            set.insert(v)
            last[v] = order.count
            order.append(v)
            while set.count > limit, head < order.count {
                let old = order[head]
                if last[old] == head { set.remove(old); last[old] = nil }
                head += 1
            }
            // Compact once the forgotten and stale slots outnumber the live ones.
            if order.count - head > 2 * set.count + 16 || head > 1024 && head * 2 > order.count {
                let live = videos
                order = live
                head = 0
                last = Dictionary(uniqueKeysWithValues: live.enumerated().map { ($1, $0) })
            }
        }
    }

    let perUser: Int
    private let lock = NSLock()
    private var seen: [String: User] = [:]

    init(perUser: Int = FeedServerConfig().seenPerUser) { self.perUser = max(1, perUser) }

    /// Marks each event's video seen by its user, `videos[k]` being the global index of
    /// `events[k]`'s video, under one lock (a page sees all of a batch or none of it).
    func insert(_ events: [Event], videos: [Int32]) {
        lock.lock(); defer { lock.unlock() }
        for (e, v) in zip(events, videos) { seen[e.user, default: User()].touch(v, limit: perUser) }
    }

    /// The user's seen set (a copy-on-write copy: O(1)).
    func seen(by user: String) -> Set<Int32> {
        lock.lock(); defer { lock.unlock() }
        return seen[user]?.set ?? []
    }

    /// Every user's entry (a copy-on-write copy: O(1)), for a snapshot (`User.videos`: oldest first).
    func export() -> [String: User] {
        lock.lock(); defer { lock.unlock() }
        return seen
    }

    /// Replaces the sets (a snapshot being restored before anything else is applied): each
    /// user's videos oldest first.
    func load(_ users: [String: [Int32]]) {
        var out: [String: User] = [:]
        out.reserveCapacity(users.count)
        for (u, vs) in users {
            var s = User()
            for v in vs { s.touch(v, limit: perUser) }
            out[u] = s
        }
        lock.lock(); defer { lock.unlock() }
        seen = out
    }

    /// Users with at least one event.
    var userCount: Int {
        lock.lock(); defer { lock.unlock() }
        return seen.count
    }

    /// Videos remembered over all users.
    var entryCount: Int {
        lock.lock(); defer { lock.unlock() }
        return seen.values.reduce(0) { $0 + $1.set.count }
    }
}
