import Foundation

/// The taste structure both generators plant (`Synth` for interaction files, the world
/// generator for the feed): each item has one topic (round-robin over a shuffle) and a Zipf
/// popularity (over a shuffled rank order); each user likes a few topics, the first most.
/// A draw takes, with probability `1 - noise`, one of the user's topics and then an item of it by
/// popularity, otherwise any item by popularity.
public struct PlantedTaste: Sendable {
    public let itemTopic: [Int]
    public let topics: Int
    let byTopic: [[Int]]
    let topicCum: [[Double]]
    let allCum: [Double]

    public init(items: Int, topics: Int, zipf: Double, using g: inout SeededGenerator) {
        let nI = max(1, items), nT = max(1, min(topics, nI))
        var ranks = Array(1...nI)
        ranks.shuffle(using: &g)
        let pop = ranks.map { 1.0 / Foundation.pow(Double($0), zipf) }
        var order = Array(0..<nI)
        order.shuffle(using: &g)
        var itemTopic = [Int](repeating: 0, count: nI)
        for (k, i) in order.enumerated() { itemTopic[i] = k % nT }
        var byTopic = [[Int]](repeating: [], count: nT)
        for i in 0..<nI { byTopic[itemTopic[i]].append(i) }
        self.itemTopic = itemTopic
        self.topics = nT
        self.byTopic = byTopic
        topicCum = byTopic.map { PlantedTaste.cumulative($0.map { pop[$0] }) }
        allCum = PlantedTaste.cumulative(pop)
    }

    /// `count` distinct topics a user likes, most liked first.
    public func likedTopics(_ count: Int, using g: inout SeededGenerator) -> [Int] {
        var liked: [Int] = []
        while liked.count < min(count, topics) {
            let t = Int(g.next() % UInt64(topics))
            if !liked.contains(t) { liked.append(t) }
        }
        return liked
    }

    /// One item for a user; `topicShares` are cumulative weights over `liked`.
    public func draw(liked: [Int], topicShares: [Double], noise: Double, using g: inout SeededGenerator) -> Int {
        if g.unit() < noise { return PlantedTaste.pick(allCum, g.unit()) }
        let t = liked[PlantedTaste.pick(topicShares, g.unit())]
        return byTopic[t][PlantedTaste.pick(topicCum[t], g.unit())]
    }

    public static func cumulative(_ w: [Double]) -> [Double] {
        var s = 0.0
        var out = w.map { s += $0; return s }
        if s > 0 { out = out.map { $0 / s } }
        if !out.isEmpty { out[out.count - 1] = 1 }
        return out
    }

    /// Index of the first cumulative weight above r.
    public static func pick(_ cum: [Double], _ r: Double) -> Int {
        var lo = 0, hi = cum.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cum[mid] > r { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}
