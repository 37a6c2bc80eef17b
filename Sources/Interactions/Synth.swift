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
        let nI = max(1, c.items), nU = max(1, c.users)
        let taste = PlantedTaste(items: nI, topics: c.topics, zipf: c.zipf, using: &g)

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
            let liked = taste.likedTopics(c.topicsPerUser, using: &g)
            let shares = PlantedTaste.cumulative(liked.indices.map { 1.0 / Double($0 + 1) })
            userTopics.append(liked)
            var seen = Set<Int>()
            let n = min(Int(act[u]), nI / 2)
            var clock = t0 + Int64(g.next() % 86_400)
            var attempts = 0
            while seen.count < n && attempts < n * 20 {
                attempts += 1
                let item = taste.draw(liked: liked, topicShares: shares, noise: c.noise, using: &g)
                guard seen.insert(item).inserted else { continue }
                clock += 30 + Int64(g.next() % 3_600)
                // Repeat plays: more in the user's main topic.
                var plays = 1
                let p = taste.itemTopic[item] == liked[0] ? 0.6 : 0.3
                while g.unit() < p && plays < 50 { plays += 1 }
                out.userIndex.append(Int32(u))
                out.itemIndex.append(Int32(item))
                out.weights.append(Float(plays))
                times.append(clock)
            }
        }
        out.timestamps = times
        return World(data: out, itemTopic: taste.itemTopic, userTopics: userTopics)
    }
}
