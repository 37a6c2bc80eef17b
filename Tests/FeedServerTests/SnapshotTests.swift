import XCTest
import Foundation
@testable import FeedServer
import CandidateStore
import EventLog
import Checksum
import GRDB
import KafkaLog
import TestSupport

/// Issue 21: a start loads the newest valid snapshot of the replayed state and replays the log's
/// tail; the result is the state a full replay builds, and a damaged snapshot is passed over.
final class SnapshotTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("snapshots") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// `n` events over 40 users and 70 videos (10 not in the catalog), every type, some with an
    /// idempotency key, times spread over two days and not in order.
    func appendEvents(_ n: Int, seed: UInt64, users: UInt64 = 40) throws {
        let log = try EventLog(directory: DataDirectory(dir).events, access: .append)
        defer { log.close() }
        var x = seed
        func next() -> UInt64 { x = x &* 6364136223846793005 &+ 1442695040888963407; return x >> 33 }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var drafts: [EventDraft] = []
        for k in 0..<n {
            let type = EventType.allCases[Int(next() % UInt64(EventType.allCases.count))]
            drafts.append(EventDraft(user: "u\(next() % users)", video: "v\(next() % 70)", type: type, watchMs: UInt32(next() % 20_000),
                                     timeMs: now - Int64(next() % 172_800_000), idempotencyKey: k % 7 == 0 ? "key-\(seed)-\(k)" : ""))
            if drafts.count == 500 { _ = try log.appendSync(drafts); drafts.removeAll() }
        }
        _ = try log.appendSync(drafts)
    }

    func config(every: UInt64) -> FeedServerConfig {
        var c = FeedServerConfig()
        c.dataDir = dir
        c.snapshotEvery = every
        // Bounded seen sets (about 160 events per user here): a snapshot keeps their order, so
        // after a restore the same videos are forgotten as in a full replay.
        c.seenPerUser = 30
        return c
    }

    /// The state in a form that does not depend on the process's video indices.
    struct Canonical: Equatable {
        var position: UInt64, applied: UInt64
        var seen: [String: Set<String>]
        var trending: [String: [Double]]
        var keys: [String]
        init(_ s: ServingSnapshot) {
            position = s.position; applied = s.eventsApplied
            seen = s.allSeen.mapValues { Set((Array($0.videos) + $0.hidden).map { s.videos[Int($0)] }) }
            trending = Dictionary(uniqueKeysWithValues: s.trending.map { (s.videos[Int($0.video)], [Double($0.score), $0.stamp, Double($0.count)]) })
            keys = s.keys.map { "\($0.entry) \($0.id) \($0.fingerprint) \($0.timeMs)" }.sorted()
        }
    }

    func state(every: UInt64) throws -> (Canonical, [String]) {
        let s = try FeedService(config: config(every: every))
        defer { s.stop() }
        let snap = try XCTUnwrap(s.stateForTests.capture(halfLifeSeconds: s.config.trendingHalfLifeSeconds))
        return (Canonical(snap), s.startupNotes)
    }

    func testASnapshotPlusTheTailIsWhatAFullReplayBuilds() throws {
        _ = try World.make(dir, lists: ["u1": Array(0..<30)])
        try appendEvents(5_000, seed: 1)
        // The first start replays everything and, 5,000 >= 1,000 events in, checkpoints.
        let (first, notes1) = try state(every: 1_000)
        XCTAssertTrue(notes1.contains("replayed 5000 events"), "\(notes1)")
        XCTAssertTrue(notes1.contains { $0.hasPrefix("snapshot at event 5000 written") }, "\(notes1)")
        XCTAssertEqual(first.position, 5_000)
        try appendEvents(1_500, seed: 2)
        // The next replays only the tail after it.
        let (fromSnapshot, notes2) = try state(every: 1_000)
        XCTAssertTrue(notes2.contains("replayed 1500 events after the snapshot at event 5000"), "\(notes2)")
        XCTAssertFalse(notes2.contains { $0.contains("renumbered") }, "same catalog, same numbering: \(notes2)")
        // Snapshots off: the whole log.
        let (full, notes3) = try state(every: 0)
        XCTAssertTrue(notes3.contains("replayed 6500 events"), "\(notes3)")
        XCTAssertEqual(fromSnapshot, full)
        XCTAssertEqual(full.position, 6_500)
        XCTAssertEqual(full.seen.count, 40)
        XCTAssertTrue(full.seen.values.allSatisfy { $0.count >= 30 }, "every user at the bound (plus what they hid)")
        XCTAssertTrue(full.seen.values.contains { $0.count > 30 }, "hidden videos kept past the bound")
        XCTAssertFalse(full.keys.isEmpty)
        XCTAssertTrue(full.trending.values.contains { $0[0] > 0 })

        // The second start checkpointed at 6,500 too. Damage it: the start passes it over, says
        // why, and takes the one at 5,000; a temporary file a crash left is ignored.
        let snaps = DataDirectory(dir).snapshots
        let newest = snaps + "/" + SnapshotStore.name(6_500)
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: newest))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: newest))
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: snaps + "/" + SnapshotStore.name(6_500) + ".tmp-999"))
        let (older, notes4) = try state(every: 1_000_000)
        XCTAssertTrue(notes4.contains { $0.contains("serving-00000000000000006500.snap passed over: checksum mismatch") }, "\(notes4)")
        XCTAssertTrue(notes4.contains("replayed 1500 events after the snapshot at event 5000"), "\(notes4)")
        XCTAssertEqual(older, full)
        // Every snapshot damaged (one cut short): a full replay, never a wrong state.
        let other = snaps + "/" + SnapshotStore.name(5_000)
        let whole = try XCTUnwrap(FileManager.default.contents(atPath: other))
        try whole.prefix(whole.count - 9).write(to: URL(fileURLWithPath: other))
        let (replayed, notes5) = try state(every: 1_000_000)
        XCTAssertTrue(notes5.contains("replayed 6500 events"), "\(notes5)")
        XCTAssertEqual(notes5.filter { $0.contains("passed over") }.count, 2, "\(notes5)")
        XCTAssertEqual(replayed, full)
    }

    /// The snapshot numbers videos as the capturing process indexed them. A start numbers its
    /// catalog from the snapshot, whatever order the store lists it in now (a video created
    /// "earlier" since), and ends in the state a full replay builds; a state whose catalog was
    /// loaded first (as with a Kafka topic) renumbers the snapshot instead, to the same end.
    func testASnapshotIsTakenAsItIsOrRenumberedWhenTheCatalogOrderChanged() throws {
        _ = try World.make(dir, lists: ["u1": Array(0..<30)])
        try appendEvents(3_000, seed: 4)
        let (first, notes1) = try state(every: 1_000)
        XCTAssertTrue(notes1.contains { $0.hasPrefix("snapshot at event 3000 written") }, "\(notes1)")
        XCTAssertEqual(first.position, 3_000)
        try DataDirectory(dir).openStore().insertVideo(Video(id: "a-first", durationMs: 5_000, createdAt: -1))
        try appendEvents(700, seed: 5)
        let (restored, notes2) = try state(every: 1_000_000)
        XCTAssertTrue(notes2.contains("replayed 700 events after the snapshot at event 3000"), "\(notes2)")
        XCTAssertFalse(notes2.contains { $0.contains("renumbered") }, "numbered from the snapshot: \(notes2)")
        let (full, _) = try state(every: 0)
        XCTAssertEqual(restored, full)

        let c = config(every: 1_000_000)
        let loadedFirst = FeedState(config: c)
        try loadedFirst.refresh(store: DataDirectory(dir).openStore())
        let log = try EventLog(directory: DataDirectory(dir).events)
        defer { log.close() }
        let (snap, _) = SnapshotStore(directory: DataDirectory(dir).snapshots).newest(
            logEnd: log.endId, halfLifeSeconds: c.trendingHalfLifeSeconds, seenPerUser: c.seenPerUser, fingerprint: log.fingerprint(of:))
        let s = try XCTUnwrap(snap)
        XCTAssertEqual(s.position, 3_000)
        XCTAssertNotNil(s.base, "a version-3 file: its seen sets stay in place")
        XCTAssertTrue(loadedFirst.restore(s), "renumbered")
        loadedFirst.apply(try log.read(from: s.position, limit: 10_000))
        XCTAssertEqual(Canonical(try XCTUnwrap(loadedFirst.capture(halfLifeSeconds: c.trendingHalfLifeSeconds))), full)
    }

    /// A version-3 snapshot's seen sets used in place: every user is found through the file's
    /// hash table (and no one else), a user is copied out when first touched and forgets in the
    /// order an eager restore does, untouched users are read where they lie, and a capture then
    /// written holds both (the touched copies, the rest from the old file).
    func testSeenSetsRestoredInPlaceBehaveAsAnEagerRestore() throws {
        var x: UInt64 = 11
        func next() -> UInt64 { x = x &* 6364136223846793005 &+ 1442695040888963407; return x >> 33 }
        let bound = 9
        var users: [String: SeenSets.User] = [:]
        for k in 0..<3_000 {
            let name = k % 5 == 0 ? "usér-\(k)-\(String(repeating: "x", count: Int(next() % 40)))" : "u\(k)"
            var vs: [Int32] = []
            for _ in 0..<Int(next() % UInt64(bound + 1)) {
                let v = Int32(next() % 500)
                if !vs.contains(v) { vs.append(v) }
            }
            users[name] = .init(videos: vs, hidden: k % 7 == 0 ? [Int32(next() % 500)] : [])
        }
        users["empty"] = .init(videos: [], hidden: [])
        let videos = (0..<500).map { "v\($0)" }
        let snap = ServingSnapshot(position: 1, eventsApplied: 1, halfLifeSeconds: 60, seenPerUser: UInt32(bound), videos: videos,
                                   seen: users, trending: [], keys: [])
        let decoded = try ServingSnapshot.decode(snap.encoded())
        let base = try XCTUnwrap(decoded.base)
        XCTAssertTrue(decoded.seen.isEmpty)
        XCTAssertEqual(base.count, users.count)
        XCTAssertEqual(base.videoCount, users.values.reduce(0) { $0 + $1.count })
        for (name, u) in users {
            let k = try XCTUnwrap(base.find(name), name)
            let copy = base.user(k, keeping: bound)
            XCTAssertEqual(Array(copy.videos), Array(u.videos), name)
            XCTAssertEqual(copy.hidden, u.hidden, name)
        }
        for missing in ["", "u", "u3000", "usér-0", "u1 "] { XCTAssertNil(base.find(missing), missing) }
        XCTAssertEqual(decoded, snap)

        // Against an eager restore of the same snapshot, with a smaller bound (the oldest go).
        for perUser in [bound, 4] {
            let lazy = SeenSets(perUser: perUser), eager = SeenSets(perUser: perUser)
            lazy.load(decoded.seen, base: decoded.base, remap: nil, bound: bound)
            eager.load(users, base: nil, remap: nil, bound: bound)
            XCTAssertEqual(lazy.userCount, eager.userCount)
            XCTAssertEqual(lazy.entryCount, eager.entryCount)
            let names = users.keys.sorted()
            for step in 0..<4_000 {
                let user = step % 3 == 0 ? "new-\(next() % 50)" : names[Int(next() % UInt64(names.count))]
                let e = Event(id: UInt64(step), draft: EventDraft(user: user, video: "v", type: next() % 9 == 0 ? .hide : .view, timeMs: 0))
                let v = Int32(next() % 500)
                lazy.insert([e], videos: [v])
                eager.insert([e], videos: [v])
                let probe = names[Int(next() % UInt64(names.count))]
                XCTAssertEqual(lazy.seen(by: probe), eager.seen(by: probe), "\(probe) at step \(step)")
            }
            XCTAssertEqual(lazy.userCount, eager.userCount)
            XCTAssertEqual(lazy.entryCount, eager.entryCount)
            // Captured and written: the file holds every user as the eager sets do.
            let (touched, kept) = lazy.export()
            var again = snap
            (again.seen, again.base, again.seenPerUser) = (touched, kept, UInt32(perUser))
            let written = try ServingSnapshot.decode(again.encoded())
            var expected = snap
            (expected.seen, expected.seenPerUser) = (eager.export().users, UInt32(perUser))
            XCTAssertEqual(written, expected, "bound \(perUser)")
        }
    }

    /// A snapshot written by a server that restored one in place (most users still in the old
    /// file, a few copied out by the tail) and a start from that one: each step is what a full
    /// replay builds.
    func testASnapshotWrittenFromAnInPlaceRestoreRestoresTheSameState() throws {
        _ = try World.make(dir, lists: ["u1": Array(0..<30)])
        try appendEvents(5_000, seed: 7, users: 300)
        let (first, notes1) = try state(every: 1_000)
        XCTAssertTrue(notes1.contains { $0.hasPrefix("snapshot at event 5000 written (300 users)") }, "\(notes1)")
        XCTAssertEqual(first.seen.count, 300)
        // A tail that touches 10 of the 300 users; the start checkpoints after it (every 100).
        try appendEvents(200, seed: 8, users: 10)
        let (second, notes2) = try state(every: 100)
        XCTAssertTrue(notes2.contains("replayed 200 events after the snapshot at event 5000"), "\(notes2)")
        XCTAssertTrue(notes2.contains { $0.hasPrefix("snapshot at event 5200 written (300 users)") }, "\(notes2)")
        try appendEvents(100, seed: 9, users: 300)
        let (third, notes3) = try state(every: 1_000_000)
        XCTAssertTrue(notes3.contains("replayed 100 events after the snapshot at event 5200"), "\(notes3)")
        let (full, _) = try state(every: 0)
        XCTAssertEqual(third, full)
        XCTAssertEqual(second.seen.count, 300)
        XCTAssertEqual(second.position, 5_200)
    }

    /// A catalog that cannot be read with a snapshot present: the start fails (no hang, no
    /// half-built server).
    func testAStartWhoseCatalogFailsThrows() throws {
        _ = try World.make(dir, lists: ["u1": Array(0..<30)])
        try appendEvents(1_500, seed: 10)
        _ = try state(every: 1_000)
        let db = try DatabaseQueue(path: DataDirectory(dir).store)
        try db.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA foreign_keys = OFF")
            try db.execute(sql: "DROP TABLE videos")
        }
        try db.close()
        XCTAssertThrowsError(try FeedService(config: config(every: 1_000))) { XCTAssertTrue("\($0)".contains("videos"), "\($0)") }
    }

    /// A snapshot covering more than the log holds (a log restored from an older backup) or taken
    /// with another trending half-life is passed over.
    func testASnapshotThatDoesNotFitTheLogIsPassedOver() throws {
        _ = try World.make(dir, lists: [:])
        try appendEvents(300, seed: 3)
        var store = SnapshotStore(directory: DataDirectory(dir).snapshots)
        store.keep = 9
        let log = try EventLog(directory: DataDirectory(dir).events)
        let print = { (id: UInt64) in (try? log.read(from: id, limit: 1))?.first?.fingerprint }
        let s = ServingSnapshot(position: 400, eventsApplied: 400, halfLifeSeconds: 6 * 3600, seenPerUser: 30, videos: ["v1"],
                                seen: ["u1": .init(videos: [0], hidden: [])], trending: [], keys: [])
        try store.write(s)
        var odd = s
        odd.position = 200
        odd.logFingerprint = try XCTUnwrap(print(199))
        odd.halfLifeSeconds = 60
        try store.write(odd)
        var small = odd
        small.position = 150
        small.logFingerprint = try XCTUnwrap(print(149))
        small.halfLifeSeconds = 6 * 3600
        small.seenPerUser = 10
        var stranger = small
        stranger.position = 100
        stranger.seenPerUser = 30  // the log's event 99 is not the one it names
        try store.write(small)
        try store.write(stranger)
        let (snap, notes) = store.newest(logEnd: 300, halfLifeSeconds: 6 * 3600, seenPerUser: 30, fingerprint: print)
        log.close()
        XCTAssertNil(snap)
        XCTAssertEqual(notes.count, 4, "\(notes)")
        XCTAssertTrue(notes[0].contains("covers events up to 400 but the log ends at 300"), "\(notes)")
        XCTAssertTrue(notes[1].contains("trending half-life 60.0 s"), "\(notes)")
        XCTAssertTrue(notes[2].contains("seen sets bounded at 10, fewer than 30"), "\(notes)")
        XCTAssertTrue(notes[3].contains("belongs to another log (event 99 differs)"), "\(notes)")
        XCTAssertEqual(try state(every: 1_000_000).0.position, 300)
    }

    /// The format: a round trip, and every shorter prefix (a torn write) fails to decode.
    func testTheSnapshotFormatRoundTripsAndRejectsEveryTruncation() throws {
        let s = ServingSnapshot(position: 12, logFingerprint: 0xABCD, eventsApplied: 12, halfLifeSeconds: 3600, seenPerUser: 7,
                                videos: ["a", "bé"],
                                seen: ["u": .init(videos: [0, 1], hidden: [1]), "w": .init(videos: [1], hidden: [])], trending: [.init(video: 1, score: 2.5, stamp: 1e9, count: 3)],
                                keys: [.init(entry: "u\u{0}k", id: 4, fingerprint: 99, timeMs: -5)],
                                partitions: [.init(partition: 0, next: 7, fingerprint: 5), .init(partition: 1, next: 0, fingerprint: 0)],
                                pending: [1 << 40 | 9])
        let bytes = s.encoded()
        XCTAssertEqual(try ServingSnapshot.decode(bytes), s)
        // A version 1 file (no Kafka section) still decodes.
        var v1 = ByteWriter(magic: ServingSnapshot.magic)
        v1.u32(1); v1.u64(3); v1.u64(0); v1.u64(3); v1.u64(Double(60).bitPattern); v1.u32(5)
        v1.u32(1); v1.string("a"); v1.u32(1); v1.string("u"); v1.u32(1); v1.u32(0); v1.u32(0); v1.u32(0); v1.u32(0)
        let old = try ServingSnapshot.decode(v1.finished())
        XCTAssertEqual(old.seen["u"].map { Array($0.videos) }, [0])
        XCTAssertTrue(old.partitions.isEmpty && old.pending.isEmpty)
        for n in 0..<bytes.count { XCTAssertThrowsError(try ServingSnapshot.decode(Array(bytes.prefix(n))), "prefix \(n)") }
        var flipped = bytes
        flipped[20] ^= 1
        XCTAssertThrowsError(try ServingSnapshot.decode(flipped))
        // Checksummed but inconsistent: a list past the snapshot's own bound, a video id twice in the table.
        // (The writer keeps each list within the bound: a file written with 8 is relabelled 7.)
        var over = s
        over.seenPerUser = 8
        over.seen["u"] = .init(videos: Array(0..<8).map { _ in Int32(0) }, hidden: [])
        var relabelled = over.encoded()
        relabelled.replaceSubrange(44..<48, with: [7, 0, 0, 0])
        relabelled.replaceSubrange((relabelled.count - 4)..., with: withUnsafeBytes(of: relabelled.dropLast(4).withUnsafeBytes { CRC32C.checksum($0) }.littleEndian, Array.init))
        XCTAssertThrowsError(try ServingSnapshot.decode(relabelled)) { XCTAssertTrue("\($0)".contains("past the bound 7"), "\($0)") }
        var outside = s
        outside.seen["w"] = .init(videos: [2], hidden: [])
        XCTAssertThrowsError(try ServingSnapshot.decode(outside.encoded())) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
        // Version 2 (no in-place section) still decodes.
        var v2 = ByteWriter(magic: ServingSnapshot.magic)
        v2.u32(2); v2.u64(3); v2.u64(0); v2.u64(3); v2.u64(Double(60).bitPattern); v2.u32(5)
        v2.u32(1); v2.string("a"); v2.u32(1); v2.string("u"); v2.u32(1); v2.u32(0); v2.u32(1); v2.u32(0); v2.u32(0); v2.u32(0)
        v2.u32(1); v2.u32(3); v2.u64(9); v2.u64(77); v2.u32(1); v2.u64(42)
        let second = try ServingSnapshot.decode(v2.finished())
        XCTAssertEqual(second.seen["u"].map { Array($0.videos) }, [0])
        XCTAssertEqual(second.seen["u"]?.hidden, [0])
        XCTAssertEqual(second.partitions, [.init(partition: 3, next: 9, fingerprint: 77)])
        XCTAssertEqual(second.pending, [42])
        XCTAssertNil(second.base)
        var twice = s
        twice.videos = ["a", "a"]
        XCTAssertThrowsError(try ServingSnapshot.decode(twice.encoded())) { XCTAssertTrue("\($0)".contains("listed twice"), "\($0)") }
    }

    /// A version-3 seen-set section that passes the checksum but does not hold together (each
    /// field of its header, of an entry and of the table set out of range, the checksum redone)
    /// is refused at open, never trapped on or read past.
    func testAnInconsistentInPlaceSectionIsRefused() throws {
        let s = ServingSnapshot(position: 2, eventsApplied: 2, halfLifeSeconds: 60, seenPerUser: 4, videos: ["a", "bb"],
                                seen: ["u": .init(videos: [0, 1], hidden: [1]), "ww": .init(videos: [1], hidden: [])],
                                trending: [], keys: [])
        let bytes = s.encoded()
        XCTAssertEqual(try ServingSnapshot.decode(bytes), s)
        let section = 48 + 4 + s.videos.reduce(0) { $0 + 4 + $1.utf8.count }
        let entries = (section + 24 + 7) / 8 * 8
        let users = 2, slots = SeenBase.slots(forUsers: users), table = entries + 24 * users
        func patched(_ at: Int, _ value: UInt64, bytes width: Int) -> [UInt8] {
            var b = bytes
            for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
            let crc = b.dropLast(4).withUnsafeBytes { CRC32C.checksum($0) }
            for k in 0..<4 { b[b.count - 4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k))) }
            return b
        }
        let cases: [(String, Int, UInt64, Int)] = [
            ("users", section, 0xFFFF_FFFF, 4), ("users above slots", section, UInt64(slots), 4),
            ("slots not a power of two", section + 4, 3, 4), ("no slots", section + 4, 0, 4),
            ("name bytes", section + 8, 1 << 62, 8), ("list words", section + 16, 1 << 62, 8),
            ("list start, top bit", entries, 1 << 63, 8), ("list start past the words", entries, 5, 8),
            ("name start", entries + 8, 0xFFFF_FFFF, 4), ("name length", entries + 12, 1_000, 4),
            ("videos past the bound", entries + 16, 5, 4), ("hidden past the words", entries + 20, 4, 4),
            ("hidden", entries + 20, 0xFFFF_FFFF, 4), ("table entry", table, UInt64(users + 1), 4),
        ]
        for (what, at, value, width) in cases {
            XCTAssertThrowsError(try ServingSnapshot.decode(patched(at, value, bytes: width)), what)
        }
        // And a video index past the table, in the list words (the last word before the trending count).
        let words = bytes.count - 4 - 4 - 4 - 4 - 4
        XCTAssertThrowsError(try ServingSnapshot.decode(patched(words - 4, 2, bytes: 4))) {
            XCTAssertTrue("\($0)".contains("out of range"), "\($0)")
        }
    }

    /// Appends complete in any order: the snapshot position is the end of the applied prefix, and
    /// no snapshot is taken while a batch above a gap is applied.
    func testAppliedPositionsFollowOutOfOrderBatches() {
        let p = AppliedPositions()
        p.add([0, 1, 2] as [UInt64])
        p.add([5, 6] as [UInt64])
        XCTAssertEqual(p.contiguous, 3)
        XCTAssertFalse(p.isContiguous)
        p.add([3, 4] as [UInt64])
        XCTAssertEqual(p.contiguous, 7)
        XCTAssertTrue(p.isContiguous)
        p.add([1] as [UInt64])
        XCTAssertEqual(p.contiguous, 7)
        let state = FeedState(config: config(every: 1))
        state.apply([Event(id: 2, draft: EventDraft(user: "u", video: "v", type: .view, timeMs: 1))])
        XCTAssertNil(state.capture(halfLifeSeconds: 1), "a gap below an applied batch")
        state.apply([Event(id: 0, draft: EventDraft(user: "u", video: "w", type: .like, timeMs: 1)),
                     Event(id: 1, draft: EventDraft(user: "x", video: "v", type: .view, timeMs: 1))])
        XCTAssertEqual(state.capture(halfLifeSeconds: 1)?.position, 3)
    }

    /// The seen-set policy against a brute-force model: the N videos most recently touched for the
    /// first time (touching a remembered one again changes nothing).
    func testSeenSetsKeepTheLastNVideosTouched() {
        var x: UInt64 = 5
        func next() -> UInt64 { x = x &* 6364136223846793005 &+ 1442695040888963407; return x >> 33 }
        for limit in [1, 3, 7] {
            let s = SeenSets(perUser: limit)
            var model: [Int32] = []  // oldest first
            for k in 0..<3_000 {
                let v = Int32(next() % 12)
                s.insert([Event(id: UInt64(k), draft: EventDraft(user: "u", video: "v", type: .view, timeMs: 0))], videos: [v])
                if !model.contains(v) { model.append(v) }
                if model.count > limit { model.removeFirst() }
                XCTAssertEqual(s.seen(by: "u"), Set(model), "limit \(limit), step \(k)")
            }
            XCTAssertEqual(s.export().users["u"].map { Array($0.videos) }, model)
            // Restored from its export, it forgets in the same order.
            let r = SeenSets(perUser: limit)
            r.load(["u": .init(videos: Array(s.export().users["u"]!.videos), hidden: [])], base: nil, remap: nil, bound: limit)
            for v: Int32 in [20, 21] {
                for t in [s, r] { t.insert([Event(id: 0, draft: EventDraft(user: "u", video: "v", type: .view, timeMs: 0))], videos: [v]) }
            }
            XCTAssertEqual(r.seen(by: "u"), s.seen(by: "u"))
        }
        // A hidden video is never forgotten, however many come after it.
        let h = SeenSets(perUser: 2)
        h.insert([Event(id: 0, draft: EventDraft(user: "u", video: "v", type: .hide, timeMs: 0))], videos: [99])
        for v: Int32 in 0..<10 { h.insert([Event(id: 0, draft: EventDraft(user: "u", video: "v", type: .view, timeMs: 0))], videos: [v]) }
        XCTAssertEqual(h.seen(by: "u"), [8, 9, 99])
    }
    /// With a Kafka topic: the snapshot records each partition's position and the ids this server
    /// applied at acknowledgement above them; a start from it (each partition from its position,
    /// those ids skipped) builds what a replay of the whole topic builds. A snapshot whose records
    /// are not the topic's is passed over.
    func testAKafkaSnapshotPlusEachPartitionsTailIsWhatAFullReplayBuilds() throws {
        guard let topic = try Fixtures.kafkaTopic() else { throw XCTSkip("no Kafka broker (scripts/test starts one)") }
        _ = try World.make(dir, lists: ["u1": Array(0..<30)])
        let location = try KafkaLocation(url: topic, environment: [:])
        let producer = try KafkaProducer(location: location)
        defer { producer.close() }
        func produce(_ n: Int, seed: UInt64) throws -> [Event] {
            var x = seed
            func next() -> UInt64 { x = x &* 6364136223846793005 &+ 1442695040888963407; return x >> 33 }
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let drafts = (0..<n).map { k in
                EventDraft(user: "u\(next() % 40)", video: "v\(next() % 70)", type: EventType.allCases[Int(next() % 6)],
                           watchMs: UInt32(next() % 20_000), timeMs: now - Int64(next() % 172_800_000),
                           idempotencyKey: k % 7 == 0 ? "key-\(seed)-\(k)" : "")
            }
            return zip(try producer.appendSync(drafts), drafts).map { Event(id: $0, draft: $1) }
        }
        func kafkaConfig(every: UInt64) -> FeedServerConfig {
            var c = config(every: every)
            c.kafka = location
            return c
        }
        func state(_ s: FeedService) throws -> Canonical {
            Canonical(try XCTUnwrap(s.stateForTests.capture(halfLifeSeconds: s.config.trendingHalfLifeSeconds,
                                                             shared: s.followerForTests?.snapshotPositions)))
        }
        _ = try produce(3_000, seed: 1)
        let first = try FeedService(config: kafkaConfig(every: 1_000))
        XCTAssertTrue(first.startupNotes.contains { $0.contains("replayed 3000 events") }, "\(first.startupNotes)")
        XCTAssertTrue(first.startupNotes.contains { $0.hasPrefix("snapshot at event 3000 written") }, "\(first.startupNotes)")
        // 500 more: this server applies 100 of them at their acknowledgement, before its follower
        // reads them, and checkpoints then.
        let more = try produce(500, seed: 2)
        first.applyAppended(Array(more.prefix(100)))
        XCTAssertNotNil(try first.writeSnapshotNow())
        first.stop()
        let snapDir = FeedService.snapshotDirectory(kafkaConfig(every: 1))
        let store = SnapshotStore(directory: snapDir)
        let newest = try ServingSnapshot.decode(Array(try XCTUnwrap(FileManager.default.contents(atPath: store.files()[0].path))))
        XCTAssertEqual(newest.partitions.reduce(0) { $0 + $1.next }, 3_000)
        XCTAssertEqual(Set(newest.pending), Set(more.prefix(100).map(\.id)))
        XCTAssertEqual(newest.eventsApplied, 3_100)

        let fromSnapshot = try FeedService(config: kafkaConfig(every: 1_000_000))
        XCTAssertTrue(fromSnapshot.startupNotes.contains { $0.contains("replayed 500 events after the snapshot at offsets") },
                      "\(fromSnapshot.startupNotes)")
        let restored = try state(fromSnapshot)
        fromSnapshot.stop()
        let whole = try FeedService(config: kafkaConfig(every: 0))
        XCTAssertTrue(whole.startupNotes.contains { $0.contains("replayed 3500 events") && !$0.contains("snapshot") }, "\(whole.startupNotes)")
        let full = try state(whole)
        whole.stop()
        // Partitions interleave in whatever order the broker delivers them, so trending's float
        // sums differ in their last bits between any two replays; everything else is exact.
        func same(_ a: Canonical, _ b: Canonical, _ what: String) {
            XCTAssertEqual(a.position, b.position, what); XCTAssertEqual(a.applied, b.applied, what)
            XCTAssertEqual(a.seen, b.seen, what); XCTAssertEqual(a.keys, b.keys, what)
            XCTAssertEqual(Set(a.trending.keys), Set(b.trending.keys), what)
            for (v, x) in a.trending {
                let y = b.trending[v] ?? []
                XCTAssertEqual(x.count, y.count, what)
                for (p, q) in zip(x, y) { XCTAssertEqual(p, q, accuracy: 1e-5 * max(1, abs(p)), "\(what): \(v)") }
            }
        }
        same(restored, full, "snapshot + tail vs the whole topic")
        XCTAssertEqual(full.applied, 3_500)
        XCTAssertEqual(full.position, 3_500)

        // A snapshot naming records the topic does not hold is passed over for the older one.
        var stranger = newest
        stranger.position += 1
        stranger.partitions[0].fingerprint ^= 1
        var keepAll = store
        keepAll.keep = 9
        try keepAll.write(stranger)
        let again = try FeedService(config: kafkaConfig(every: 1_000_000))
        XCTAssertTrue(again.startupNotes.contains { $0.contains("passed over: partition 0") }, "\(again.startupNotes)")
        same(try state(again), full, "after passing a stranger over")
        again.stop()
    }
    /// A pruned log whose snapshots are all unusable: the start replays from the first event kept
    /// (and says so), counts positions from there, and can checkpoint again.
    func testAPrunedLogWithoutASnapshotStartsAtItsFirstEventAndCheckpointsAgain() throws {
        _ = try World.make(dir, lists: [:])
        var cfg = EventLogConfig()
        cfg.segmentBytes = 2_048
        let log = try EventLog(directory: DataDirectory(dir).events, config: cfg, access: .append)
        for k in 0..<40 {
            _ = try log.appendSync((0..<20).map { j in
                EventDraft(user: "u\(j)", video: "v\((k + j) % 70)", type: .view, watchMs: 1_000, timeMs: 1_700_000_000_000 + Int64(k * 20 + j))
            })
        }
        let cut = log.segmentBases[3]
        log.close()
        XCTAssertGreaterThan(try EventLog.prune(directory: DataDirectory(dir).events, to: cut).segments, 0)
        let s = try FeedService(config: config(every: 1_000_000))
        XCTAssertTrue(s.startupNotes.contains { $0.contains("pruned before event \(cut)") }, "\(s.startupNotes)")
        XCTAssertTrue(s.startupNotes.contains("replayed \(800 - cut) events"), "\(s.startupNotes)")
        XCTAssertEqual(s.stateForTests.appliedThrough, 800)
        XCTAssertNotNil(try s.writeSnapshotNow())
        s.stop()
        let again = try FeedService(config: config(every: 1_000_000))
        XCTAssertTrue(again.startupNotes.contains("replayed 0 events after the snapshot at event 800"), "\(again.startupNotes)")
        again.stop()
    }
}
