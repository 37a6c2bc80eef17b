import Foundation
import EventLog

/// Trending and the fresh-upload pool. Each event adds its `EventWeights.trending` weight to its
/// video's score, decayed exponentially with `halfLifeSeconds` (events may arrive out of order),
/// and one to the video's event count, read from the log every server reads (so every server
/// agrees on which uploads are still fresh). `rebuild` turns that into the two ordered lists a
/// page reads. One lock; the sort runs outside it.
final class Trending: @unchecked Sendable {
    let halfLifeSeconds: Double
    /// An upload is fresh for `freshSeconds` after its creation while it has fewer than
    /// `freshMaxEvents` events.
    let freshSeconds: Double
    let freshMaxEvents: Int
    private let lock = NSLock()

    /// Per global video index: the decayed event weight, the time (s) it is decayed to and the
    /// event count, side by side (applying an event touches one cache line, not three arrays at a
    /// random place each); shorter than the catalog's index space (past the end: score 0 at time
    /// 0, no events).
    struct Slot {
        var stamp: Double = 0
        var score: Float = 0
        /// Saturating (a snapshot stores it as a u32).
        var count: UInt32 = 0
    }
    private var slots: [Slot] = []
    private var trendingList: [Int32] = []
    private var freshList: [Int32] = []

    init(halfLifeSeconds: Double, freshSeconds: Double, freshMaxEvents: Int) {
        self.halfLifeSeconds = halfLifeSeconds
        self.freshSeconds = freshSeconds
        self.freshMaxEvents = freshMaxEvents
    }

    /// Counts `events`, `videos[k]` being the global index of `events[k]`'s video, under one lock.
    func record(_ events: [Event], videos: [Int32]) {
        lock.lock(); defer { lock.unlock() }
        if let top = videos.max(), Int(top) >= slots.count {
            slots.append(contentsOf: repeatElement(Slot(), count: Int(top) + 1 - slots.count))
        }
        slots.withUnsafeMutableBufferPointer { slots in
            for (e, v) in zip(events, videos) {
                let i = Int(v)
                slots[i].count &+= slots[i].count == .max ? 0 : 1
                let w = EventWeights.trending[e.type]
                guard w > 0 else { continue }
                let t = Double(e.timeMs) / 1000
                if t >= slots[i].stamp {
                    slots[i].score = slots[i].score * Float(Foundation.exp2(-(t - slots[i].stamp) / halfLifeSeconds)) + w
                    slots[i].stamp = t
                } else {
                    slots[i].score += w * Float(Foundation.exp2(-(slots[i].stamp - t) / halfLifeSeconds))
                }
            }
        }
    }

    /// Scores, their stamps and event counts by global index (copy-on-write copies), for a snapshot.
    func export() -> [Slot] {
        lock.lock(); defer { lock.unlock() }
        return slots
    }

    /// Replaces scores, stamps and counts (a snapshot being restored).
    func load(_ slots: [Slot]) {
        lock.lock(); defer { lock.unlock() }
        self.slots = slots
    }

    /// Recomputes the trending order and the fresh-upload pool of the catalog `videos` (by global
    /// index, `CatalogView.entries`) from copies taken under the lock (copy-on-write makes that
    /// O(1)), so requests are not held up while it sorts. Every index in the lists is below
    /// `videos.count`.
    func rebuild(videos boxes: [VideoBox?], now: Double) {
        lock.lock()
        let slots = self.slots
        lock.unlock()
        var scored: [(Int32, Float, Int64, String)] = []
        scored.reserveCapacity(boxes.count)
        let freshCut = (now - freshSeconds) * 1000
        var fresh: [(Int32, String)] = []
        for i in 0..<boxes.count {
            guard let v = boxes[i]?.v, v.status == .ready else { continue }
            let slot = i < slots.count ? slots[i] : Slot()
            let s = slot.score * Float(Foundation.exp2(-(now - slot.stamp) / halfLifeSeconds))
            scored.append((Int32(i), s, v.createdAt, v.id))
            if Double(v.createdAt) >= freshCut && Int(slot.count) < freshMaxEvents { fresh.append((Int32(i), v.id)) }
        }
        // Ties (e.g. no events yet) go to the newest videos, then by id: the same order on every
        // server that has seen the same events (indices differ between servers, ids do not).
        scored.sort { a, b in a.1 != b.1 ? a.1 > b.1 : a.2 != b.2 ? a.2 > b.2 : a.3 < b.3 }
        // The feed orders the fresh pool per session (`FeedBuilder`); here by id.
        fresh.sort { $0.1 < $1.1 }
        let list = scored.map(\.0), freshIds = fresh.map(\.0)
        lock.lock()
        trendingList = list
        freshList = freshIds
        lock.unlock()
    }

    /// The lists as of the last `rebuild`, copied together.
    var lists: (trending: [Int32], fresh: [Int32]) {
        lock.lock(); defer { lock.unlock() }
        return (trendingList, freshList)
    }
}
