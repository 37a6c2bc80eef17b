import Foundation

/// A seeded generator of interactions with planted taste structure, so the engine can train
/// and evaluate with nothing but itself.
///
/// Each item has one topic and a Zipf popularity; each user likes a few topics (weights from a
/// random split). A draw picks, with probability `1 - noise`, a liked topic and then an item of
/// it by popularity; otherwise any item by popularity. Users' activity is log-normal. Each
/// interaction carries a time (users' histories advance) and a weight (1 plus a geometric
/// number of repeat plays, larger in the user's main topic), so every confidence scheme and
/// every splitter has something to work on. A model that learns the topics beats popularity.
public struct SynthConfig: Sendable, Codable, Equatable {
    public var users = 2_000
    public var items = 1_000
    public var interactions = 60_000
    public var topics = 16
    public var topicsPerUser = 2
    public var noise = 0.15
    public var zipf = 0.9
    public var seed: UInt64 = 42
    public init() {}
}

public enum Synth {
    public struct World: Sendable {
        public var data: Interactions
        public var itemTopic: [Int]
        public var userTopics: [[Int]]
    }

    public static func generate(_ c: SynthConfig) -> World {
        var g = SeededGenerator(seed: c.seed)
        let nI = max(1, c.items), nU = max(1, c.users), nT = max(1, min(c.topics, nI))
        // Item popularity: Zipf over a random permutation of ranks; topic round-robin over a shuffle.
        var ranks = Array(1...nI)
        ranks.shuffle(using: &g)
        let pop = ranks.map { 1.0 / Foundation.pow(Double($0), c.zipf) }
        var order = Array(0..<nI)
        order.shuffle(using: &g)
        var itemTopic = [Int](repeating: 0, count: nI)
        for (k, i) in order.enumerated() { itemTopic[i] = k % nT }
        // Cumulative popularity tables: overall and per topic.
        var byTopic = [[Int]](repeating: [], count: nT)
        for i in 0..<nI { byTopic[itemTopic[i]].append(i) }
        let topicCum = byTopic.map { cumulative($0.map { pop[$0] }) }
        let allCum = cumulative(pop)

        // Activity: log-normal, scaled to the interaction budget.
        var act = (0..<nU).map { _ in Foundation.exp(0.8 * g.normal()) }
        let total = act.reduce(0, +)
        act = act.map { max(3, ($0 / total * Double(c.interactions)).rounded()) }

        var users = IdMap(), items = IdMap()
        for u in 0..<nU { _ = users.index(insertingInt: Int64(u)) }
        for i in 0..<nI { _ = items.index(insertingInt: Int64(i)) }
        var out = Interactions(users: users, items: items)
        var times: [Int64] = []
        var userTopics: [[Int]] = []
        let t0: Int64 = 1_767_225_600  // 2026-01-01
        for u in 0..<nU {
            var liked: [Int] = []
            while liked.count < min(c.topicsPerUser, nT) {
                let t = Int(g.next() % UInt64(nT))
                if !liked.contains(t) { liked.append(t) }
            }
            let share = liked.indices.map { 1.0 / Double($0 + 1) }
            let shareCum = cumulative(share)
            userTopics.append(liked)
            var seen = Set<Int>()
            let n = min(Int(act[u]), nI / 2)
            var clock = t0 + Int64(g.next() % 86_400)
            var attempts = 0
            while seen.count < n && attempts < n * 20 {
                attempts += 1
                let item: Int
                var inMain = false
                if g.unit() < c.noise {
                    item = pick(allCum, g.unit())
                } else {
                    let k = pick(shareCum, g.unit())
                    let t = liked[k]
                    inMain = k == 0
                    item = byTopic[t][pick(topicCum[t], g.unit())]
                }
                guard seen.insert(item).inserted else { continue }
                clock += 30 + Int64(g.next() % 3_600)
                var plays = 1
                let p = inMain ? 0.6 : 0.3
                while g.unit() < p && plays < 50 { plays += 1 }
                out.userIndex.append(Int32(u))
                out.itemIndex.append(Int32(item))
                out.weights.append(Float(plays))
                times.append(clock)
            }
        }
        out.timestamps = times
        return World(data: out, itemTopic: itemTopic, userTopics: userTopics)
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
