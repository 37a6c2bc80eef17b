import XCTest
import EventLog
import Interactions

/// `EventHistory` (interned users and videos, rows of parallel arrays) against the plain
/// definition: nested dictionaries keyed by id, built event by event, and the interactions read
/// from them in sorted order.
final class EventHistoryTests: XCTestCase {
    typealias Pair = EventHistory.Pair

    /// The definition: per (user, video) the decayed sum of signed weights, the newest time, any skip or hide.
    struct Reference {
        var mapping: EventMapping
        var pairs: [String: [String: Pair]] = [:]
        var newest: Int64 = .min

        func decay(_ ms: Int64) -> Double {
            guard let h = mapping.halfLifeDays, h > 0, ms > 0 else { return 1 }
            return Foundation.exp2(-Double(ms) / (h * 86_400_000))
        }

        mutating func add(_ e: Event, duration: Int) {
            let w = Double(mapping.weight(of: e, duration: duration))
            newest = max(newest, e.timeMs)
            let neg = e.type == .skip || e.type == .hide
            guard var p = pairs[e.user]?[e.video] else {
                pairs[e.user, default: [:]][e.video] = Pair(weight: w, lastTimeMs: e.timeMs, negative: neg)
                return
            }
            if e.timeMs >= p.lastTimeMs {
                p.weight = p.weight * decay(e.timeMs - p.lastTimeMs) + w
                p.lastTimeMs = e.timeMs
            } else {
                p.weight += w * decay(p.lastTimeMs - e.timeMs)
            }
            p.negative = p.negative || neg
            pairs[e.user]![e.video] = p
        }

        /// (user, video, weight, time) rows: users sorted (each one given an index, trained or not),
        /// items indexed by first appearance walking each user's videos in sorted order, each
        /// user's rows by item index.
        func interactions() -> (users: [String], items: [String], rows: [(Int32, Int32, Float, Int64)]) {
            var users: [String] = [], items: [String] = [], itemIndex: [String: Int32] = [:], rows: [(Int32, Int32, Float, Int64)] = []
            for user in pairs.keys.sorted() {
                let u = Int32(users.count)
                users.append(user)
                for (video, p) in pairs[user]!.sorted(by: { $0.key < $1.key }) {
                    if mapping.negatives == .drop && p.negative { continue }
                    let w = Float(p.weight * decay(newest - p.lastTimeMs))
                    guard w > 0 || (w < 0 && mapping.negatives == .penalize) else { continue }
                    if itemIndex[video] == nil { itemIndex[video] = Int32(items.count); items.append(video) }
                    rows.append((u, itemIndex[video]!, w, p.lastTimeMs))
                }
            }
            return (users, items, rows.sorted { ($0.0, $0.1) < ($1.0, $1.1) })
        }
    }

    /// Random events over a few users, one of whom touches 300 videos (rows past the linear-scan
    /// length get their index), times out of order, every event type.
    func events(seed: UInt64, count: Int) -> [Event] {
        var g = SeededGenerator(seed: seed)
        let types = EventType.allCases
        return (0..<count).map { k in
            let heavy = Int.random(in: 0..<3, using: &g) == 0
            let user = heavy ? "heavy" : "u\(Int.random(in: 0..<12, using: &g))"
            let video = heavy ? "v\(Int.random(in: 0..<300, using: &g))" : "v\(Int.random(in: 0..<40, using: &g))"
            return Event(id: UInt64(k), draft: EventDraft(user: user, video: video, type: types.randomElement(using: &g)!,
                                                          watchMs: UInt32.random(in: 0..<20_000, using: &g),
                                                          timeMs: Int64.random(in: 0..<(30 * 86_400_000), using: &g)))
        }
    }

    func check(_ mapping: EventMapping, seed: UInt64) throws {
        let evs = events(seed: seed, count: 4_000)
        var h = EventHistory(mapping: mapping), ref = Reference(mapping: mapping)
        for e in evs {
            let d = e.video.hasSuffix("7") ? 0 : 10_000
            h.add(e, duration: d); ref.add(e, duration: d)
        }
        XCTAssertEqual(h.dictionary, ref.pairs)
        XCTAssertEqual(h.pairCount, ref.pairs.values.reduce(0) { $0 + $1.count })
        XCTAssertGreaterThan(ref.pairs["heavy"]!.count, 250)
        for (user, row) in ref.pairs { for (video, p) in row { XCTAssertEqual(h.pair(user: user, video: video), p) } }
        XCTAssertNil(h.pair(user: "heavy", video: "nope"))
        XCTAssertNil(h.pair(user: "nobody", video: "v1"))

        let want = ref.interactions()
        func same(_ got: Interactions, _ what: String) {
            XCTAssertEqual(got.users.raw, want.users, what)
            XCTAssertEqual(got.items.raw, want.items, what)
            XCTAssertEqual(got.count, want.rows.count, what)
            for (r, row) in want.rows.enumerated() where r < got.count {
                XCTAssertEqual(got.userIndex[r], row.0, what)
                XCTAssertEqual(got.itemIndex[r], row.1, what)
                XCTAssertEqual(got.weights[r], row.2, what)
                XCTAssertEqual(got.timestamps?[r], row.3, what)
            }
        }
        same(h.interactions(), "built")
        // Through the table: the same pairs and the same interactions, and adding more after the
        // decode (rows rebuilt from the table keep their index) matches the definition too.
        let bytes = InteractionTable.encode(h, position: 4_000, logFingerprint: 1, durations: [:])
        var back = try InteractionTable.decode(bytes, mapping: mapping).history
        XCTAssertEqual(back.dictionary, ref.pairs)
        same(back.interactions(), "decoded")
        for e in events(seed: seed + 1, count: 1_000) { back.add(e, duration: 10_000); ref.add(e, duration: 10_000) }
        XCTAssertEqual(back.dictionary, ref.pairs)
    }

    func testEveryMappingMatchesTheDefinition() throws {
        for (k, n) in EventMapping.Negatives.allCases.enumerated() {
            var m = EventMapping()
            m.negatives = n
            try check(m, seed: UInt64(10 + k))
            m.halfLifeDays = 3
            try check(m, seed: UInt64(20 + k))
        }
    }

    /// Enough users that `interactions()` splits them over the cores (at least 1,024 per part), from
    /// a table and with a tail: the same interactions as the definition.
    func testInteractionsSplitOverCoresMatchTheDefinition() throws {
        var m = EventMapping()
        m.halfLifeDays = 2
        var g = SeededGenerator(seed: 77)
        let types = EventType.allCases
        let evs = (0..<30_000).map { k in
            Event(id: UInt64(k), draft: EventDraft(user: "u\(Int.random(in: 0..<4_000, using: &g))", video: "v\(Int.random(in: 0..<500, using: &g))",
                                                   type: types.randomElement(using: &g)!, watchMs: UInt32.random(in: 0..<20_000, using: &g),
                                                   timeMs: Int64.random(in: 0..<(10 * 86_400_000), using: &g)))
        }
        var h = EventHistory(mapping: m), ref = Reference(mapping: m)
        for e in evs.prefix(25_000) { h.add(e, duration: 10_000); ref.add(e, duration: 10_000) }
        var back = try InteractionTable.decode(InteractionTable.encode(h, position: 25_000, logFingerprint: 1, durations: [:]), mapping: m).history
        for e in evs.dropFirst(25_000) { back.add(e, duration: 10_000); ref.add(e, duration: 10_000) }
        XCTAssertGreaterThan(back.users.count, 3_900)
        let got = back.interactions(), want = ref.interactions()
        XCTAssertEqual(got.users.raw, want.users)
        XCTAssertEqual(got.items.raw, want.items)
        XCTAssertEqual(got.count, want.rows.count)
        XCTAssertEqual(got.userIndex, want.rows.map(\.0))
        XCTAssertEqual(got.itemIndex, want.rows.map(\.1))
        XCTAssertEqual(got.weights, want.rows.map(\.2))
        XCTAssertEqual(got.timestamps, want.rows.map(\.3))
    }

    /// A history read from a table keeps the rows no event touched where they lie in the table,
    /// and copies out the ones a tail adds to: its pairs, its interactions and the next table it
    /// writes (untouched rows copied as they lie) are those of the same events read in one go.
    func testATableReadWithATailIsTheSameHistoryAsOneRead() throws {
        var m = EventMapping()
        m.halfLifeDays = 5
        let head = events(seed: 41, count: 3_000)
        // The tail touches two of the table's users (one with a long, indexed row) and two new ones,
        // and brings a new video.
        let tail = events(seed: 42, count: 600).filter { $0.user == "heavy" || $0.user == "u3" }.map { e in
            e.id % 5 == 0 ? Event(id: e.id, draft: EventDraft(user: "new\(e.id % 2)", video: e.id % 3 == 0 ? "fresh" : e.video,
                                                              type: e.type, watchMs: e.watchMs, timeMs: e.timeMs)) : e
        }
        var one = EventHistory(mapping: m), first = EventHistory(mapping: m)
        for e in head { one.add(e, duration: 10_000); first.add(e, duration: 10_000) }
        for e in tail { one.add(e, duration: 10_000) }
        var back = try InteractionTable.decode(InteractionTable.encode(first, position: 3_000, logFingerprint: 9, durations: [:]),
                                               mapping: m).history
        for e in tail { back.add(e, duration: 10_000) }
        XCTAssertEqual(back.pairCount, one.pairCount)
        XCTAssertEqual(back.dictionary, one.dictionary)
        XCTAssertEqual(back.pair(user: "u5", video: "v3"), one.pair(user: "u5", video: "v3"))
        XCTAssertNotNil(back.pair(user: "u5", video: one.dictionary["u5"]!.keys.sorted()[0]))
        XCTAssertNil(back.pair(user: "u5", video: "fresh"))
        var seen: [String: Set<String>] = [:]
        back.forEachUserVideo { u, v in seen[back.users.raw[u], default: []].insert(back.videos.raw[v]) }
        XCTAssertEqual(seen, one.dictionary.mapValues { Set($0.keys) })
        let a = back.interactions(), b = one.interactions()
        XCTAssertEqual(a.users.raw, b.users.raw); XCTAssertEqual(a.items.raw, b.items.raw)
        XCTAssertEqual(a.userIndex, b.userIndex); XCTAssertEqual(a.itemIndex, b.itemIndex)
        XCTAssertEqual(a.weights, b.weights); XCTAssertEqual(a.timestamps, b.timestamps)
        XCTAssertEqual(InteractionTable.encode(back, position: 3_600, logFingerprint: 3, durations: ["v1": 5]),
                       InteractionTable.encode(one, position: 3_600, logFingerprint: 3, durations: ["v1": 5]))
        // Through a file, as rescore reads it.
        let dir = NSTemporaryDirectory() + "/tables-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try InteractionTable.write(first, position: 3_000, logFingerprint: 9, durations: [:], to: dir)
        var mapped = try XCTUnwrap(InteractionTable.newest(in: dir, mapping: m, logEnd: 3_000, durations: [:], fingerprint: { _ in 9 }).table).history
        for e in tail { mapped.add(e, duration: 10_000) }
        try InteractionTable.write(mapped, position: 3_600, logFingerprint: 3, durations: [:], to: dir)
        let written = try XCTUnwrap(InteractionTable.files(dir, mapping: m).first)
        XCTAssertEqual(written.position, 3_600)
        XCTAssertEqual(AtomicFile.read(written.path), InteractionTable.encode(one, position: 3_600, logFingerprint: 3, durations: [:]))
    }

    /// The two newest tables are kept, and one written below them (`events compact --through`) too
    /// until the next write.
    func testWritingAnOlderTableKeepsIt() throws {
        let dir = NSTemporaryDirectory() + "/tables-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var h = EventHistory()
        for e in events(seed: 7, count: 50) { h.add(e, duration: 10_000) }
        for p: UInt64 in [10, 20, 5] { try InteractionTable.write(h, position: p, logFingerprint: 0, durations: [:], to: dir) }
        XCTAssertEqual(InteractionTable.files(dir, mapping: h.mapping).map(\.position), [20, 10, 5])
        try InteractionTable.write(h, position: 30, logFingerprint: 0, durations: [:], to: dir)
        XCTAssertEqual(InteractionTable.files(dir, mapping: h.mapping).map(\.position), [30, 20])
    }

    /// A table whose checksum is right but which names a user twice, a video twice, or one video
    /// twice in a row, is refused.
    func testADamagedTableIsRefused() throws {
        let mapping = EventMapping()
        func table(videos: [String], users: [(String, [UInt32])]) -> [UInt8] {
            var w = ByteWriter(magic: Array("FYITAB01".utf8))
            w.u32(1); w.u64(1); w.u64(0); w.u64(0); w.string(InteractionTable.key(mapping))
            w.u32(UInt32(videos.count)); for v in videos { w.string(v); w.u64(0) }
            w.u32(UInt32(users.count))
            for (u, vs) in users {
                w.string(u); w.u32(UInt32(vs.count))
                for v in vs { w.u32(v); w.u64(Double(1).bitPattern); w.u64(0); w.u8(0) }
            }
            return w.finished()
        }
        XCTAssertNoThrow(try InteractionTable.decode(table(videos: ["a", "b"], users: [("x", [0, 1]), ("y", [1])]), mapping: mapping))
        for (bytes, says) in [(table(videos: ["a", "a"], users: [("x", [0])]), "listed twice"),
                              (table(videos: ["a", "b"], users: [("x", [0]), ("x", [1])]), "listed twice"),
                              (table(videos: ["a", "b"], users: [("x", [1, 0, 1])]), "twice"),
                              (table(videos: ["a", "b"], users: [("x", [2])]), "out of range")] {
            XCTAssertThrowsError(try InteractionTable.decode(bytes, mapping: mapping)) { XCTAssertTrue("\($0)".contains(says), "\($0)") }
        }
    }
}
