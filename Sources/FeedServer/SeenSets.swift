import Foundation
import EventLog

/// Per user: the videos (global indices, `CatalogView`) already watched or skipped; any event
/// counts. A page leaves them out. One lock; every operation under it is short.
final class SeenSets: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [String: Set<Int32>] = [:]

    /// Marks each event's video seen by its user, `videos[k]` being the global index of
    /// `events[k]`'s video, under one lock (a page sees all of a batch or none of it).
    func insert(_ events: [Event], videos: [Int32]) {
        lock.lock(); defer { lock.unlock() }
        for (e, v) in zip(events, videos) { seen[e.user, default: []].insert(v) }
    }

    /// The user's seen set (a copy-on-write copy: O(1)).
    func seen(by user: String) -> Set<Int32> {
        lock.lock(); defer { lock.unlock() }
        return seen[user] ?? []
    }

    /// Every user's set (a copy-on-write copy), for a snapshot.
    func export() -> [String: Set<Int32>] {
        lock.lock(); defer { lock.unlock() }
        return seen
    }

    /// Replaces the sets (a snapshot being restored before anything else is applied).
    func load(_ sets: [String: Set<Int32>]) {
        lock.lock(); defer { lock.unlock() }
        seen = sets
    }

    /// Users with at least one event.
    var userCount: Int {
        lock.lock(); defer { lock.unlock() }
        return seen.count
    }
}
