import Foundation
import Interactions
import EventLog
import CandidateStore

/// A world to run the feed on: a catalog of videos with topics, creators and captions; users
/// with hidden topic tastes; and an event log of their past sessions in which watch time,
/// completions, likes, shares and skips follow those tastes. Seeded, so runs are comparable.
public struct WorldConfig: Sendable, Codable, Equatable {
    public var users = 2_000
    public var videos = 1_000
    public var topics = 16
    public var creators = 200
    public var sessionsPerUser = 4.0
    public var viewsPerSession = 12.0
    /// Share of views that ignore taste (what a person stumbles on).
    public var noise = 0.25
    public var days = 14
    public var seed: UInt64 = 42
    public init() {}
}

public enum WorldGenerator {
    static let topicWords = ["cooking", "dance", "comedy", "pets", "travel", "fitness", "gaming", "music", "diy", "fashion",
                             "science", "sports", "art", "cars", "books", "nature", "tech", "beauty", "history", "magic",
                             "skate", "garden", "film", "math"]
    static let adjectives = ["quick", "late-night", "weekend", "tiny", "epic", "cozy", "chaotic", "calm", "first", "perfect",
                             "budget", "one-minute", "secret", "classic", "wild"]

    public struct Summary: Sendable {
        public var videos: Int
        public var users: Int
        public var events: Int
    }

    public static func topicName(_ t: Int) -> String {
        t < topicWords.count ? topicWords[t] : "topic\(t)"
    }

    /// Writes the catalog into `store` and the past sessions into `log`.
    public static func generate(_ c: WorldConfig, store: any CatalogStore, log: EventLog,
                                now: Date = Date()) throws -> Summary {
        var events = 0
        var batch: [EventDraft] = []
        let (videos, _) = try build(c, now: now, catalog: { try store.upsertVideos($0) }) { draft in
            batch.append(draft)
            if batch.count >= 20_000 {
                events += try log.appendSync(batch).count
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { events += try log.appendSync(batch).count }
        return Summary(videos: videos.count, users: max(1, c.users), events: events)
    }

    /// The hidden tastes of a world's users: the topics each likes (first = main), by user id,
    /// and every video's topic. The same draws as `generate`, without writing anything.
    public static func tastes(_ c: WorldConfig) throws -> (liked: [String: [String]], catalog: [Video]) {
        let (videos, liked) = try build(c, now: Date(timeIntervalSince1970: 0), catalog: { _ in }, emit: { _ in })
        return (liked, videos)
    }

    static func build(_ c: WorldConfig, now: Date, catalog: ([Video]) throws -> Void,
                      emit: (EventDraft) throws -> Void) throws -> ([Video], [String: [String]]) {
        var g = SeededGenerator(seed: c.seed)
        let nV = max(2, c.videos), nU = max(1, c.users)
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        let spanMs = Int64(c.days) * 86_400_000
        // Catalog: planted topics and popularity, creators, captions, durations 5-90 s.
        let taste = PlantedTaste(items: nV, topics: c.topics, zipf: 0.8, using: &g)
        let topicOf = taste.itemTopic
        var videos: [Video] = []
        var created = [Int64](repeating: 0, count: nV)
        for v in 0..<nV {
            let t = topicOf[v]
            let creator = "creator\(Int(g.next() % UInt64(max(1, c.creators))))"
            let adj = adjectives[Int(g.next() % UInt64(adjectives.count))]
            let dur = 5_000 + Int(g.next() % 85_000)
            created[v] = nowMs - spanMs - Int64(g.next() % UInt64(max(1, spanMs)))
            let id = "v\(v)"
            videos.append(Video(id: id, caption: "\(adj) \(topicName(t)) #\(topicName(t))", tags: [topicName(t), adj],
                                topic: topicName(t), creator: creator, durationMs: dur, status: .ready,
                                streamURL: "/media/\(id)/master.m3u8", thumbnailURL: "/media/\(id)/poster.jpg",
                                createdAt: created[v]))
        }
        try catalog(videos)

        // The first liked topic gets 70 % of in-taste views.
        let shares = [0.7, 1.0]
        var likedByUser: [String: [String]] = [:]
        for u in 0..<nU {
            let user = "\(u)"
            let liked = taste.likedTopics(2, using: &g)
            likedByUser[user] = liked.map(topicName)
            let sessions = max(1, Int((c.sessionsPerUser * Foundation.exp(0.6 * g.normal() - 0.18)).rounded()))
            var seen = Set<Int>()
            for s in 0..<sessions {
                var clock = nowMs - spanMs + Int64(s) * spanMs / Int64(sessions) + Int64(g.next() % 3_600_000)
                let views = max(1, Int(c.viewsPerSession * (0.5 + g.unit())))
                for _ in 0..<views {
                    let v = taste.draw(liked: liked, topicShares: liked.count > 1 ? shares : [1], noise: c.noise, using: &g)
                    guard seen.insert(v).inserted else { continue }
                    let match = liked.contains(topicOf[v])
                    let dur = videos[v].durationMs
                    let frac = match ? min(1, 0.55 + 0.5 * g.unit()) : 0.05 + 0.3 * g.unit()
                    let watch = UInt32(Double(dur) * frac)
                    clock += Int64(watch) + 500
                    func add(_ t: EventType, _ w: UInt32) throws {
                        try emit(EventDraft(user: user, video: videos[v].id, type: t, watchMs: w, timeMs: clock))
                    }
                    if !match && g.unit() < 0.6 {
                        try add(.skip, watch)
                    } else {
                        try add(.view, watch)
                        if frac >= 0.95 { try add(.complete, UInt32(dur)) }
                        if match && g.unit() < 0.25 { try add(.like, 0) }
                        if match && g.unit() < 0.05 { try add(.share, 0) }
                        if !match && g.unit() < 0.05 { try add(.hide, 0) }
                    }
                }
            }
        }
        return (videos, likedByUser)
    }
}
