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

    /// Decayed event weight and the time (s) it is decayed to, by global video index; shorter
    /// than the catalog's index space (an index past the end has score 0 at time 0).
    private var score: [Float] = []
    private var stamp: [Double] = []
    /// Events per global video index (shorter than the index space: past the end, 0).
    private var eventCounts: [Int] = []
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
        for (e, v) in zip(events, videos) {
            if Int(v) >= eventCounts.count { eventCounts.append(contentsOf: repeatElement(0, count: Int(v) + 1 - eventCounts.count)) }
            eventCounts[Int(v)] += 1
            let w = EventWeights.trending[e.type]
            guard w > 0 else { continue }
            let t = Double(e.timeMs) / 1000
            let i = Int(v)
            if i >= score.count {
                score.append(contentsOf: repeatElement(0, count: i + 1 - score.count))
                stamp.append(contentsOf: repeatElement(0, count: i + 1 - stamp.count))
            }
            let decay = Float(Foundation.exp2(-(t - stamp[i]) / halfLifeSeconds))
            if t >= stamp[i] {
                score[i] = score[i] * decay + w
                stamp[i] = t
            } else {
                score[i] += w * Float(Foundation.exp2(-(stamp[i] - t) / halfLifeSeconds))
            }
        }
    }

    /// Scores, their stamps and event counts by global index (copy-on-write copies), for a snapshot.
    func export() -> (score: [Float], stamp: [Double], counts: [Int32: Int]) {
        lock.lock(); defer { lock.unlock() }
        var counts: [Int32: Int] = [:]
        for (i, c) in eventCounts.enumerated() where c > 0 { counts[Int32(i)] = c }
        return (score, stamp, counts)
    }

    /// Replaces scores, stamps and counts (a snapshot being restored).
    func load(score: [Float], stamp: [Double], counts: [Int32: Int]) {
        lock.lock(); defer { lock.unlock() }
        self.score = score
        self.stamp = stamp
        eventCounts = [Int](repeating: 0, count: Int((counts.keys.max() ?? -1) + 1))
        for (i, c) in counts { eventCounts[Int(i)] = c }
    }

    /// Recomputes the trending order and the fresh-upload pool of the catalog `videos` (by global
    /// index, `CatalogView.entries`) from copies taken under the lock (copy-on-write makes that
    /// O(1)), so requests are not held up while it sorts. Every index in the lists is below
    /// `videos.count`.
    func rebuild(videos boxes: [VideoBox?], now: Double) {
        lock.lock()
        let scores = score, stamps = stamp, counts = eventCounts
        lock.unlock()
        var scored: [(Int32, Float, Int64, String)] = []
        scored.reserveCapacity(boxes.count)
        let freshCut = (now - freshSeconds) * 1000
        var fresh: [(Int32, String)] = []
        for i in 0..<boxes.count {
            guard let v = boxes[i]?.v, v.status == .ready else { continue }
            let (sc, st): (Float, Double) = i < scores.count ? (scores[i], stamps[i]) : (0, 0)
            let s = sc * Float(Foundation.exp2(-(now - st) / halfLifeSeconds))
            scored.append((Int32(i), s, v.createdAt, v.id))
            if Double(v.createdAt) >= freshCut && (i < counts.count ? counts[i] : 0) < freshMaxEvents { fresh.append((Int32(i), v.id)) }
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
