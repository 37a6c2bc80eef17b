import Foundation
import EventLog

/// Per user: the videos (global indices, `CatalogView`) already watched or skipped; any event
/// counts. A page leaves them out. Bounded by policy: each user keeps the `perUser` videos they
/// touched most recently for the first time (first-in, first-out by the order events were
/// applied), so memory does not grow with a user's history. Videos the user hid are never
/// forgotten (hides are rare; they are kept apart, unbounded). A forgotten video may come back in
/// a feed (from a list, trending or the fresh pool); a retrained model's lists leave out
/// everything its training saw. One lock; every operation under it is short.
final class SeenSets: @unchecked Sendable {
    /// One user's videos in the order they were first touched (`order[head...]`, oldest first),
    /// and the hidden ones. Plain arrays of global indices, 4 bytes a video: membership is a scan
    /// of at most `perUser` entries (vectorised; cheaper in memory than a hash set per user, which
    /// cost about 5x as much), and a page builds its `Set` from them once.
    struct User {
        var order: [Int32] = []
        var head = 0
        /// Hidden videos: never forgotten.
        var hidden: [Int32] = []

        init() {}
        /// `videos` distinct, oldest first.
        init(videos: [Int32], hidden: [Int32]) { order = videos; self.hidden = hidden }

        /// What a page leaves out.
        var all: Set<Int32> {
            var s = Set(order[head...])
            s.formUnion(hidden)
            return s
        }

        /// Oldest first.
        var videos: ArraySlice<Int32> { order[head...] }

        var count: Int { order.count - head }

        mutating func touch(_ v: Int32, limit: Int) {
            guard !order[head...].contains(v) else { return }
            order.append(v)
            if order.count - head > limit { head += 1 }
            if head > 64 && head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }

        mutating func hide(_ v: Int32) {
            if !hidden.contains(v) { hidden.append(v) }
        }
    }

    let perUser: Int
    private let lock = NSLock()
    /// Users touched since the start (or the restored snapshot's own `seen`).
    private var seen: [String: User] = [:]
    /// The restored snapshot's other users, where its file holds them: a user is copied out of
    /// it into `seen` when first touched, and read in place until then.
    private var base: SeenBase?
    /// Users of `base` not in `seen`, and their videos.
    private var baseUsers = 0
    private var baseVideos = 0

    init(perUser: Int = FeedServerConfig().seenPerUser) { self.perUser = max(1, perUser) }

    /// Marks each event's video seen by its user, `videos[k]` being the global index of
    /// `events[k]`'s video, under one lock (a page sees all of a batch or none of it).
    func insert(_ events: [Event], videos: [Int32]) {
        lock.lock(); defer { lock.unlock() }
        for (e, v) in zip(events, videos) {
            if let i = seen.index(forKey: e.user) {
                seen.values[i].touch(v, limit: perUser)
                if e.type == .hide { seen.values[i].hide(v) }
            } else {
                var u = User()
                if let b = base, let k = b.find(e.user) {
                    u = b.user(k, keeping: perUser)
                    baseUsers -= 1
                    baseVideos -= u.count
                }
                u.touch(v, limit: perUser)
                if e.type == .hide { u.hide(v) }
                seen[e.user] = u
            }
        }
    }

    /// The user's seen set, built from a copy-on-write copy of their entry taken under the lock
    /// (O(1)); the set itself (O(videos remembered)) is built outside it.
    func seen(by user: String) -> Set<Int32> {
        lock.lock()
        let entry = seen[user]
        let base = entry == nil ? self.base : nil
        lock.unlock()
        if let entry { return entry.all }
        // Untouched since the snapshot: read where it lies (the base never changes).
        guard let base, let k = base.find(user) else { return [] }
        return base.user(k, keeping: perUser).all
    }

    /// Every user's entry (a copy-on-write copy: O(1)), with the snapshot's users not touched
    /// since (`base`; those in `users` are not read from it), for a snapshot (`User.videos`: oldest first).
    func export() -> (users: [String: User], base: SeenBase?) {
        lock.lock(); defer { lock.unlock() }
        return (seen, base)
    }

    /// Replaces the sets (a snapshot being restored before anything else is applied): each
    /// user's videos oldest first (as `export` gave them) and the hidden ones, bounded at `bound`
    /// per user when taken, with more users in `base` (those in `users` are not read from it);
    /// `remap[i]`: the global index of the snapshot's video `i` (nil: the snapshot's numbering is
    /// this process's). Without renumbering, `base` is kept as it is (O(1): its users are copied
    /// out when first touched, less the oldest beyond this server's bound); renumbering takes
    /// every user at once.
    func load(_ users: [String: User], base: SeenBase?, remap: [Int32]?, bound: Int) {
        var out = users
        var keep = base
        if remap != nil || bound > perUser {
            out = [:]
            out.reserveCapacity(users.count + (remap != nil ? base?.count ?? 0 : 0))
            func take(_ user: String, _ x: User) {
                var s = User()
                let vs = x.videos.suffix(perUser)
                s.order = remap.map { m in vs.map { m[Int($0)] } } ?? Array(vs)
                s.hidden = remap.map { m in x.hidden.map { m[Int($0)] } } ?? x.hidden
                out[user] = s
            }
            for (user, x) in users { take(user, x) }
            if remap != nil, let base {
                base.forEachUser { name, k in if users[name] == nil { take(name, base.user(k, keeping: perUser)) } }
                keep = nil
            }
        }
        var (inBase, videosInBase) = (keep?.count ?? 0, keep?.videoCount ?? 0)
        if let keep {
            if bound > perUser {
                // (Only the counts: each user is trimmed when copied out.)
                videosInBase = 0
                keep.forEachUser { _, k in videosInBase += keep.counts(k, keeping: perUser).videos }
            }
            for name in out.keys {
                if let k = keep.find(name) { inBase -= 1; videosInBase -= keep.counts(k, keeping: perUser).videos }
            }
        }
        lock.lock(); defer { lock.unlock() }
        seen = out
        self.base = keep
        baseUsers = inBase
        baseVideos = videosInBase
    }

    /// Users with at least one event.
    var userCount: Int {
        lock.lock(); defer { lock.unlock() }
        return seen.count + baseUsers
    }

    /// Videos remembered over all users.
    var entryCount: Int {
        lock.lock(); defer { lock.unlock() }
        return seen.values.reduce(0) { $0 + $1.count } + baseVideos
    }
}
