import Foundation
import CandidateStore

/// Assembles one page of the feed for one user.
///
/// Order of sources: the user's list in the generation the cursor pins (the live one for a new
/// session), then trending (time-decayed popularity) once the list is missing or exhausted;
/// a share of slots goes to fresh uploads with few impressions. Seen videos (any event), videos
/// already served in this session and videos not `ready` are skipped; at most `maxPerTopic` of
/// one topic and `maxPerCreator` of one creator appear in any `diversityWindow` consecutive
/// slots (relaxed only when nothing else is left).
struct FeedBuilder {
    let config: FeedServerConfig
    let state: FeedState
    let store: FeedStore

    struct Item {
        var index: Int32
        var video: VideoBox
        var ranker: String
        var generation: Int64?
        var score: Float?
    }

    /// The experiment and variant a page was served under.
    struct Assignment {
        var experiment: String
        var variant: String
    }

    struct Page {
        var items: [Item]
        var next: FeedCursor?
        /// The user's list behind this page reflects every event with a smaller id.
        var eventsThrough: UInt64?
        var assignment: Assignment?
    }

    func page(user: String, cursor: FeedCursor?, limit: Int) throws -> Page {
        try page(user: user, cursor: cursor, limit: limit, memoryOnly: false)!
    }

    /// With `memoryOnly`, nil (and nothing recorded) when a list is not in memory: the caller
    /// then builds the page where a blocking read may wait.
    func page(user: String, cursor: FeedCursor?, limit: Int, memoryOnly: Bool) throws -> Page? {
        func list(_ generation: Int64) throws -> PackedCandidates?? {
            memoryOnly ? store.memoryCandidates(generation: generation, user: user)
                : .some(try store.packedCandidates(generation: generation, user: user))
        }
        let session = cursor?.session ?? SessionIds.next()
        let live = state.live
        // Under a running experiment a new session starts on the user's variant's generation.
        let experiment = state.experiment
        let variant = experiment?.variant(for: user)
        var generation = cursor?.generation ?? variant?.generation ?? live?.id ?? -1
        var position = Int(cursor?.position ?? 0)
        var packed: PackedCandidates? = nil
        if generation >= 0 {
            guard let p = try list(generation) else { return nil }
            packed = p
        }
        if let c = cursor, packed == nil, let live, live.id != c.generation {
            // The pinned generation was pruned: continue on the live list (the session's served
            // set keeps earlier pages from repeating).
            generation = live.id
            position = 0
            guard let p = try list(live.id) else { return nil }
            packed = p
        }
        let model = state.model(ofGeneration: generation) ?? live?.model ?? "model"
        let snap = state.snapshot(user: user, session: session)
        let videos = snap.videos
        // Seen (any event), already served this session, or picked for this page.
        struct Excluded {
            let seen: Set<Int32>, served: Set<Int32>
            var picked: Set<Int32>
            func contains(_ i: Int32) -> Bool { picked.contains(i) || (!seen.isEmpty && seen.contains(i)) || (!served.isEmpty && served.contains(i)) }
            mutating func insert(_ i: Int32) { picked.insert(i) }
        }
        var excluded = Excluded(seen: snap.seen, served: snap.served, picked: Set(minimumCapacity: limit * 2))
        var picked: [Item] = []
        var explore: [Item] = []

        let meta = snap.meta
        func ready(_ i: Int32) -> Bool { Int(i) < meta.count && meta[Int(i)].ready }
        func video(_ i: Int32) -> VideoBox { videos[Int(i)]! }
        // At most maxPerTopic / maxPerCreator in any diversityWindow consecutive slots.
        func diverse(_ i: Int32, _ extra: [Item] = []) -> Bool {
            let v = meta[Int(i)]
            let span = max(0, config.diversityWindow - 1)
            var topic = 0, creator = 0, seenCount = 0
            func count(_ list: [Item]) {
                var k = list.count - 1
                while k >= 0 && seenCount < span {
                    let other = meta[Int(list[k].index)]
                    seenCount += 1
                    if v.topic >= 0 && other.topic == v.topic { topic += 1 }
                    if v.creator >= 0 && other.creator == v.creator { creator += 1 }
                    k -= 1
                }
            }
            count(extra)
            count(picked)
            return topic < config.maxPerTopic && creator < config.maxPerCreator
        }

        let exploreSlots = min(limit - 1, Int(Double(limit) * config.explorationShare))
        let mainTarget = limit - max(0, exploreSlots)

        // 1. The precomputed list.
        var p = position
        var firstDeferred: Int?
        let entries = packed ?? PackedCandidates(generation: generation, itemTable: [], blob: Data())
        let map = packed.map { state.mapping(for: $0) } ?? []
        func global(_ e: (item: UInt32, score: Float)) -> Int32? { Int(e.item) < map.count ? map[Int(e.item)] : nil }
        while picked.count < mainTarget && p < entries.count {
            let e = entries[p]
            defer { p += 1 }
            guard let i = global(e), !excluded.contains(i), ready(i) else { continue }
            guard diverse(i) else { firstDeferred = firstDeferred ?? p; continue }
            picked.append(Item(index: i, video: video(i), ranker: model, generation: generation, score: e.score))
            excluded.insert(i)
        }
        let listExhausted = p >= entries.count
        let nextPosition = firstDeferred ?? p

        // 2. Fresh uploads in the exploration slots.
        if exploreSlots > 0 {
            for i in snap.fresh where explore.count < exploreSlots {
                guard !excluded.contains(i), ready(i), diverse(i, explore) else { continue }
                explore.append(Item(index: i, video: video(i), ranker: "fresh", generation: nil, score: nil))
                excluded.insert(i)
            }
        }

        // 3. Trending fills whatever the list could not.
        var tp = Int(cursor?.trendingPosition ?? 0)
        func fillFromTrending(relaxed: Bool) {
            var q = relaxed ? 0 : tp
            while picked.count + explore.count < limit && q < snap.trending.count {
                let i = snap.trending[q]
                q += 1
                guard !excluded.contains(i), ready(i) else { continue }
                if !relaxed && !diverse(i) { continue }
                picked.append(Item(index: i, video: video(i), ranker: "trending", generation: nil, score: nil))
                excluded.insert(i)
            }
            if !relaxed { tp = q }
        }
        if picked.count + explore.count < limit && listExhausted { fillFromTrending(relaxed: false) }

        // 4. Nothing diverse left: relax the diversity rule rather than return a short page.
        if picked.count + explore.count < limit {
            var q = nextPosition
            while picked.count + explore.count < limit && q < entries.count {
                let e = entries[q]
                q += 1
                guard let i = global(e), !excluded.contains(i), ready(i) else { continue }
                picked.append(Item(index: i, video: video(i), ranker: model, generation: generation, score: e.score))
                excluded.insert(i)
            }
        }
        if picked.count + explore.count < limit { fillFromTrending(relaxed: true) }

        // Exploration items at evenly spaced slots.
        var items = picked
        if !explore.isEmpty {
            let step = max(1, (items.count + explore.count) / (explore.count + 1))
            for (k, e) in explore.enumerated() { items.insert(e, at: min(items.count, (k + 1) * step + k)) }
        }
        state.recordServed(session: session, videos: items.map(\.index))
        let next: FeedCursor? = items.count < limit ? nil : FeedCursor(
            session: session, generation: generation, position: UInt32(nextPosition), trendingPosition: UInt32(tp),
            page: (cursor?.page ?? 0) + 1)
        return Page(items: items, next: next, eventsThrough: packed?.throughEvent,
                    assignment: experiment.map { Assignment(experiment: $0.name, variant: variant!.name) })
    }
}

import Synchronization

/// Session ids: a counter from a random start, scrambled (SplitMix64 finaliser). They travel
/// inside signed cursors, so they need to be unique, not secret; no syscall per request.
enum SessionIds {
    static let counter = Atomic<UInt64>(UInt64.random(in: 1...UInt64.max))
    static func next() -> UInt64 {
        var z = counter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return max(1, z ^ (z >> 31))
    }
}
