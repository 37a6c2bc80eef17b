import Foundation
import CandidateStore

/// Assembles one page of the feed for one user.
///
/// Order of sources: the user's list in the generation the cursor pins (the live one for a new
/// session), then trending (time-decayed popularity) once the list is missing or exhausted;
/// a share of slots goes to fresh uploads with few events. Seen videos (any event), videos
/// already served in this session (the cursor's filter) and videos not `ready` are skipped; at most `maxPerTopic` of
/// one topic and `maxPerCreator` of one creator appear in any `diversityWindow` consecutive
/// slots (relaxed only when nothing else is left).
///
/// Under a running interleaving test a new session pages two lists at once (the variants'
/// generations, the second as the cursor's `partner`): the list slots of every page are drafted
/// from both by `TeamDraft` (coin seeded by session and page), each item labelled with its team.
/// The diversity rule is not applied to drafted items (it would reorder one side's picks), and
/// every drafted item enters the cursor's served filter, since either side may rank the other's
/// pick further down.
struct FeedBuilder {
    let config: FeedServerConfig
    let state: FeedState
    /// Only the lists are read from the store (the catalog comes from `state`).
    let store: any GenerationStore

    struct Item {
        var index: Int32
        var video: VideoBox
        var ranker: String
        var generation: Int64?
        var score: Float?
        /// Under an interleaving test: the variant (0 or 1) whose list supplied the item.
        var team: Int? = nil
    }

    /// The experiment and variant a page was served under.
    struct Assignment {
        var experiment: String
        var variant: String
        /// An interleaving test's two variant names (indexed by `Item.team`).
        var teams: [String]? = nil
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
        let live = state.generations.live
        // Under a running experiment a new session starts on the user's variant's generation.
        let experiment = state.generations.experiment
        let variant = experiment?.variant(for: user)
        var generation = cursor?.generation ?? variant?.generation ?? live?.id ?? -1
        var position = Int(cursor?.position ?? 0)
        var deferredIn = (cursor?.deferred ?? []).map(Int.init).sorted()
        // An interleaving test: a new session drafts from both variants' lists; a session begun
        // under it continues so while it runs (after a stop, on the first list alone).
        var partner: Int64 = -1
        if let e = experiment, e.kind == .interleave,
           cursor == nil || (cursor!.generation == e.variants[0].generation && cursor!.partner == e.variants[1].generation) {
            generation = e.variants[0].generation
            partner = e.variants[1].generation
        }
        var packed: PackedCandidates? = nil
        if generation >= 0 {
            guard let p = try list(generation) else { return nil }
            packed = p
        }
        var packedB: PackedCandidates? = nil
        if partner >= 0 {
            guard let p = try list(partner) else { return nil }
            packedB = p
        }
        var pB = Int(cursor?.partner == partner ? cursor?.partnerPosition ?? 0 : 0)
        // (Not under interleaving: there a missing list is an empty side, never the live list.)
        if let c = cursor, partner < 0, packed == nil, let live, live.id != c.generation {
            // The pinned generation was pruned: continue on the live list (the cursor's served
            // filter keeps earlier pages from repeating).
            generation = live.id
            position = 0
            deferredIn = []
            guard let p = try list(live.id) else { return nil }
            packed = p
        }
        let model = state.generations.model(ofGeneration: generation) ?? live?.model ?? "model"
        let modelB = partner >= 0 ? state.generations.model(ofGeneration: partner) ?? "model" : ""
        let snap = state.snapshot(user: user)
        let videos = snap.videos
        // Everything the session served, whichever server served it (carried by the cursor).
        var served = cursor?.served ?? ServedFilter()
        // Seen (any event), served earlier in the session, or picked for this page.
        var picked: [Item] = []
        var explore: [Item] = []
        var pickedSet = Set<Int32>(minimumCapacity: limit * 2)

        let meta = snap.meta
        func ready(_ i: Int32) -> Bool { Int(i) < meta.count && meta[Int(i)].ready }
        func video(_ i: Int32) -> VideoBox { videos[Int(i)]! }
        /// Call after `ready(i)`.
        func excluded(_ i: Int32) -> Bool {
            pickedSet.contains(i) || snap.seen.contains(i) || served.contains(hash: video(i).idHash)
        }
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

        // 1. The precomputed list: the deferred entries first, then onward from the position.
        // Entries before the position are never visited again but for the deferred ones (at most
        // FeedCursor.maxDeferred, the best ranked kept), so the list never repeats itself.
        let entries = packed ?? PackedCandidates(generation: generation, itemTable: [], blob: Data())
        // The list may have been rewritten shorter since the cursor was made (a worker's new list).
        var p = min(position, entries.count)
        deferredIn = deferredIn.filter { $0 < p }
        var deferredOut: [Int] = []
        let map = packed.map { state.catalog.mapping(for: $0) } ?? []
        func global(_ e: (item: UInt32, score: Float)) -> Int32? { Int(e.item) < map.count ? map[Int(e.item)] : nil }
        var revisit = deferredIn[...]
        func nextListPosition() -> Int? {
            if let q = revisit.first { revisit = revisit.dropFirst(); return q }
            guard p < entries.count else { return nil }
            defer { p += 1 }
            return p
        }
        func pickFromList(_ q: Int, _ i: Int32, _ score: Float) {
            picked.append(Item(index: i, video: video(i), ranker: model, generation: generation, score: score))
            pickedSet.insert(i)
        }
        // The partner's list under an interleaving test, and the draft over both.
        let entriesB = packedB ?? PackedCandidates(generation: partner, itemTable: [], blob: Data())
        pB = min(pB, entriesB.count)
        let mapB = packedB.map { state.catalog.mapping(for: $0) } ?? []
        var draft = TeamDraft(seed: SessionIds.mix(session ^ 0x5EED ^ (UInt64(cursor?.page ?? 0) &* 0xD1B5_4A32_D192_ED03)))
        func draftFromLists(until target: Int) {
            while picked.count < target, let (x, team) = draft.draft({ (team: Int) -> (Int32, Float)? in
                while true {
                    let e: (item: UInt32, score: Float)
                    let i: Int32?
                    if team == 0 {
                        guard p < entries.count else { return nil }
                        e = entries[p]; p += 1; i = global(e)
                    } else {
                        guard pB < entriesB.count else { return nil }
                        e = entriesB[pB]; pB += 1; i = Int(e.item) < mapB.count ? mapB[Int(e.item)] : nil
                    }
                    if let i, ready(i), !excluded(i) { return (i, e.score) }
                }
            }) {
                picked.append(Item(index: x.0, video: video(x.0), ranker: team == 0 ? model : modelB,
                                   generation: team == 0 ? generation : partner, score: x.1, team: team))
                pickedSet.insert(x.0)
            }
        }
        if partner >= 0 {
            draftFromLists(until: mainTarget)
        } else {
            while picked.count < mainTarget, let q = nextListPosition() {
                let e = entries[q]
                guard let i = global(e), ready(i), !excluded(i) else { continue }  // dropped for good
                guard diverse(i) else { deferredOut.append(q); continue }
                pickFromList(q, i, e.score)
            }
        }
        deferredOut += revisit
        revisit = []
        let listExhausted = p >= entries.count && pB >= entriesB.count

        // Entries the session has passed (served, or dropped) cannot come back as fresh or trending.
        var consumedCache: Set<Int32>?
        func consumed(_ i: Int32) -> Bool {
            if consumedCache == nil {
                let keep = Set(deferredOut)
                var c = Set<Int32>(minimumCapacity: min(p, entries.count))
                for q in 0..<min(p, entries.count) where !keep.contains(q) { if let g = global(entries[q]) { c.insert(g) } }
                for q in 0..<pB { let e = entriesB[q]; if Int(e.item) < mapB.count { c.insert(mapB[Int(e.item)]) } }
                consumedCache = c
            }
            return consumedCache!.contains(i)
        }

        // 2. Fresh uploads in the exploration slots: the pool (ordered by id, the same on every
        // server) read round from a point this session and page pick, so exposure spreads over
        // sessions and a page depends on its cursor only.
        let pool = snap.fresh
        if exploreSlots > 0 && !pool.isEmpty {
            let start = Int(SessionIds.mix(session ^ (UInt64(cursor?.page ?? 0) &* 0x9E37_79B9_7F4A_7C15)) % UInt64(pool.count))
            var k = 0
            while k < pool.count && explore.count < exploreSlots {
                let i = pool[(start + k) % pool.count]
                k += 1
                guard ready(i), !excluded(i), !consumed(i), diverse(i, explore) else { continue }
                explore.append(Item(index: i, video: video(i), ranker: "fresh", generation: nil, score: nil))
                pickedSet.insert(i)
            }
        }

        // 3. Trending fills whatever the list could not.
        var tp = Int(cursor?.trendingPosition ?? 0)
        func fillFromTrending(relaxed: Bool) {
            var q = relaxed ? 0 : tp
            while picked.count + explore.count < limit && q < snap.trending.count {
                let i = snap.trending[q]
                q += 1
                guard ready(i), !excluded(i), !consumed(i) else { continue }
                if !relaxed && !diverse(i) { continue }
                picked.append(Item(index: i, video: video(i), ranker: "trending", generation: nil, score: nil))
                pickedSet.insert(i)
            }
            if !relaxed { tp = q }
        }
        if picked.count + explore.count < limit && listExhausted { fillFromTrending(relaxed: false) }

        // 4. Nothing diverse left: relax the diversity rule rather than return a short page
        // (the deferred entries first, then onward).
        if partner >= 0 && picked.count + explore.count < limit {
            draftFromLists(until: limit - explore.count)
        } else if picked.count + explore.count < limit {
            revisit = deferredOut[...]
            deferredOut = []
            while picked.count + explore.count < limit, let q = nextListPosition() {
                let e = entries[q]
                guard let i = global(e), ready(i), !excluded(i) else { continue }
                pickFromList(q, i, e.score)
            }
            deferredOut += revisit
        }
        if picked.count + explore.count < limit { fillFromTrending(relaxed: true) }

        // Exploration items at evenly spaced slots.
        var items = picked
        if !explore.isEmpty {
            let step = max(1, (items.count + explore.count) / (explore.count + 1))
            for (k, e) in explore.enumerated() { items.insert(e, at: min(items.count, (k + 1) * step + k)) }
        }
        // List entries are kept from repeating by the position (and the deferred set); the filter
        // takes the rest, so it fills slowly (a couple of fresh uploads a page) and rarely errs.
        // Under interleaving, a drafted item goes in only when the other side's list holds it further
        // on (each list's position already keeps its own picks from coming back).
        var aheadIn: [Set<Int32>] = [[], []]
        if partner >= 0 {
            for q in p..<entries.count { if let g = global(entries[q]) { aheadIn[0].insert(g) } }
            for q in pB..<entriesB.count where Int(entriesB[q].item) < mapB.count { aheadIn[1].insert(mapB[Int(entriesB[q].item)]) }
        }
        for item in items where item.ranker == "fresh" || item.ranker == "trending"
            || item.team.map({ aheadIn[1 - $0].contains(item.index) }) == true {
            served.insert(hash: item.video.idHash)
        }
        let next: FeedCursor? = items.count < limit ? nil : FeedCursor(
            session: session, generation: generation, position: UInt32(p), trendingPosition: UInt32(tp),
            page: (cursor?.page ?? 0) + 1,
            deferred: Array(deferredOut.sorted().prefix(FeedCursor.maxDeferred)).map { UInt32($0) },
            served: served.isEmpty ? nil : served, partner: partner, partnerPosition: UInt32(pB))
        let assignment = experiment.map { e in
            partner >= 0 ? Assignment(experiment: e.name, variant: Experiment.interleaved, teams: e.variants.map(\.name))
                : Assignment(experiment: e.name, variant: e.kind == .interleave ? Experiment.interleaved : variant!.name)
        }
        return Page(items: items, next: next, eventsThrough: packed?.throughEvent, assignment: assignment)
    }
}

import Synchronization

/// Session ids: a counter from a random start, scrambled (SplitMix64 finaliser). They travel
/// inside signed cursors, so they need to be unique, not secret; no syscall per request.
enum SessionIds {
    static let counter = Atomic<UInt64>(UInt64.random(in: 1...UInt64.max))
    static func next() -> UInt64 {
        max(1, mix(counter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue))
    }

    /// The SplitMix64 finaliser: a well-spread 64-bit value from any input.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
