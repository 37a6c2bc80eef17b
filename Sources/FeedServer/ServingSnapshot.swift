import Foundation
import Checksum
import EventLog
import CandidateStore
#if canImport(Glibc)
import Glibc
#endif

/// A checkpoint of what the server rebuilds from the event log (seen sets, trending scores and
/// event counts, done idempotency keys), with the log position it covers: every event with an id
/// below `position` is in it, none above. A start loads the newest valid snapshot and replays only
/// the log's tail from `position`, instead of the whole log.
///
/// Videos are named by id: the table lists the capturing process's video ids in its global index
/// order, so a restart that indexes the catalog the same way takes the seen sets as they are
/// (anything else renumbers them). Binary, little-endian:
///   magic "FYSNAP01" | u32 version | u64 position | u64 fingerprint of the event at position - 1
///   (`Event.fingerprint`; 0 at position 0) | u64 events applied | f64 trending half-life |
///   u32 seen-set bound per user | u32 videos, each a string |
///   u32 users, each a string + u32 count + count x u32 video (oldest first) + u32 hidden + hidden x u32 video |
///   u32 trending entries, each u32 video + f32 score + f64 stamp + u32 event count |
///   u32 keys, each a string + u64 event id + u64 fingerprint + i64 time ms |
///   (version 2) u32 Kafka partitions, each u32 partition + u64 next offset + u64 fingerprint of the
///   record before it (0 at offset 0) | u32 pending, each u64 event id | u32 CRC-32C of all before
/// (a string is u32 length + UTF-8). Written to a temporary file, fsynced, renamed, the directory
/// fsynced (`AtomicFile`): a crash mid-write leaves the previous snapshots as they were.
///
/// With a Kafka topic, `partitions` holds where the follower stands in each partition (every record
/// below is applied) and `pending` the ids of events this server applied at their acknowledgement
/// above those positions (skipped when the follower reaches them); `position` is then the sum of
/// the next offsets (it orders the files) and `logFingerprint` is unused.
struct ServingSnapshot: Equatable {
    static let magic = Array("FYSNAP01".utf8)
    static let version: UInt32 = 2

    struct Partition: Equatable {
        var partition: Int32
        var next: Int64
        var fingerprint: UInt64
    }

    struct Trend: Equatable {
        var video: UInt32
        var score: Float
        var stamp: Double
        var count: UInt32
    }

    struct Key: Equatable {
        var entry: String
        var id: UInt64
        var fingerprint: UInt64
        var timeMs: Int64
    }

    var position: UInt64
    /// `Event.fingerprint` of the last event covered (0 when none): ties the snapshot to its log.
    var logFingerprint: UInt64 = 0
    var eventsApplied: UInt64
    var halfLifeSeconds: Double
    var seenPerUser: UInt32 = UInt32(FeedServerConfig().seenPerUser)
    var videos: [String]
    /// Per user: videos (indices into `videos`) oldest first, and the hidden ones.
    var seen: [String: SeenSets.User]
    var trending: [Trend]
    var keys: [Key]
    var partitions: [Partition] = []
    var pending: [UInt64] = []

    static func == (a: ServingSnapshot, b: ServingSnapshot) -> Bool {
        a.position == b.position && a.logFingerprint == b.logFingerprint && a.eventsApplied == b.eventsApplied
            && a.halfLifeSeconds == b.halfLifeSeconds && a.seenPerUser == b.seenPerUser
            && a.videos == b.videos && a.seen.count == b.seen.count
            && a.seen.allSatisfy { u in b.seen[u.key].map { $0.videos.elementsEqual(u.value.videos) && $0.hidden == u.value.hidden } ?? false }
            && a.trending == b.trending && a.keys == b.keys && a.partitions == b.partitions && a.pending == b.pending
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(magic: Self.magic)
        w.u32(Self.version); w.u64(position); w.u64(logFingerprint); w.u64(eventsApplied); w.u64(halfLifeSeconds.bitPattern)
        w.u32(seenPerUser)
        w.u32(UInt32(videos.count)); for v in videos { w.string(v) }
        w.u32(UInt32(seen.count))
        for (user, s) in seen {
            w.string(user)
            w.u32(UInt32(s.count)); w.i32s(s.videos)
            w.u32(UInt32(s.hidden.count)); w.i32s(s.hidden[...])
        }
        w.u32(UInt32(trending.count))
        for t in trending { w.u32(t.video); w.u32(t.score.bitPattern); w.u64(t.stamp.bitPattern); w.u32(t.count) }
        w.u32(UInt32(keys.count))
        for k in keys { w.string(k.entry); w.u64(k.id); w.u64(k.fingerprint); w.u64(UInt64(bitPattern: k.timeMs)) }
        w.u32(UInt32(partitions.count))
        for p in partitions { w.u32(UInt32(bitPattern: p.partition)); w.u64(UInt64(bitPattern: p.next)); w.u64(p.fingerprint) }
        w.u32(UInt32(pending.count))
        for id in pending { w.u64(id) }
        return w.finished()
    }

    enum DecodeError: Error, CustomStringConvertible {
        case bad(String)
        var description: String { if case .bad(let s) = self { return s }; return "" }
    }

    /// Checks the magic, version, checksum and every length before trusting a value.
    static func decode(_ bytes: [UInt8]) throws -> ServingSnapshot {
        var r = try ByteReader(bytes, magic: magic, what: "a snapshot")
        let v = try r.u32()
        guard v == 1 || v == version else { throw DecodeError.bad("format version \(v) is not 1 or \(version)") }
        let position = try r.u64(), fingerprint = try r.u64(), applied = try r.u64(), halfLife = Double(bitPattern: try r.u64())
        let perUser = try r.u32()
        let videos = try (0..<r.count(4)).map { _ in try r.string() }
        guard Set(videos).count == videos.count else { throw DecodeError.bad("a video listed twice") }
        var seen: [String: SeenSets.User] = [:]
        let users = try r.count(12)
        seen.reserveCapacity(users)
        let top = Int32(clamping: videos.count)
        for _ in 0..<users {
            let user = try r.string()
            let vs = try r.i32s(r.count(4))
            let hidden = try r.i32s(r.count(4))
            // (A video twice in one list would only cost a slot; not checked, the reader thread is start-up's critical path.)
            guard vs.count <= Int(perUser) else { throw DecodeError.bad("user \(user) has \(vs.count) videos, past the bound \(perUser)") }
            guard vs.allSatisfy({ $0 >= 0 && $0 < top }), hidden.allSatisfy({ $0 >= 0 && $0 < top }) else {
                throw DecodeError.bad("video index out of range")
            }
            guard seen.updateValue(SeenSets.User(videos: vs, hidden: hidden), forKey: user) == nil else {
                throw DecodeError.bad("user \(user) listed twice")
            }
        }
        let trending = try (0..<r.count(20)).map { _ in
            Trend(video: try r.u32(), score: Float(bitPattern: try r.u32()), stamp: Double(bitPattern: try r.u64()), count: try r.u32())
        }
        guard trending.allSatisfy({ Int($0.video) < videos.count }) else { throw DecodeError.bad("video index out of range") }
        let keys = try (0..<r.count(28)).map { _ in
            Key(entry: try r.string(), id: try r.u64(), fingerprint: try r.u64(), timeMs: Int64(bitPattern: try r.u64()))
        }
        var partitions: [Partition] = [], pending: [UInt64] = []
        if v >= 2 {
            partitions = try (0..<r.count(20)).map { _ in
                Partition(partition: Int32(bitPattern: try r.u32()), next: Int64(bitPattern: try r.u64()), fingerprint: try r.u64())
            }
            guard partitions.allSatisfy({ $0.partition >= 0 && $0.next >= 0 }) else { throw DecodeError.bad("negative partition or offset") }
            pending = try (0..<r.count(8)).map { _ in try r.u64() }
        }
        try r.end()
        return ServingSnapshot(position: position, logFingerprint: fingerprint, eventsApplied: applied, halfLifeSeconds: halfLife,
                               seenPerUser: perUser, videos: videos, seen: seen, trending: trending, keys: keys,
                               partitions: partitions, pending: pending)
    }
}

/// The snapshot files of a data directory (`DATA/snapshots/serving-<position>.snap`): the newest
/// `keep` are kept.
/// Serving snapshots seen from outside the server (`foryou events prune`).
public enum ServingSnapshots {
    /// The position of the newest snapshot of `log` that a start could use (any trending half-life
    /// or seen-set bound), with a note for each one passed over; nil when there is none.
    public static func newest(dataDir: String, eventsDir: String?, log: EventLog) -> (position: UInt64?, notes: [String]) {
        let (s, notes) = SnapshotStore(directory: DataDirectory(dataDir).snapshotDirectory(ofLog: eventsDir)).newest(
            logEnd: log.endId, halfLifeSeconds: nil, seenPerUser: nil, fingerprint: log.fingerprint(of:))
        return (s?.position, notes)
    }
}

struct SnapshotStore {
    let directory: String
    var keep = 2

    static func name(_ position: UInt64) -> String { String(format: "serving-%020llu.snap", position) }

    /// Snapshot files, newest (highest position) first.
    func files() -> [(position: UInt64, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { n -> (UInt64, String)? in
            guard n.hasPrefix("serving-"), n.hasSuffix(".snap"), let p = UInt64(n.dropFirst(8).dropLast(5)) else { return nil }
            return (p, directory + "/" + n)
        }.sorted { $0.0 > $1.0 }
    }

    func write(_ s: ServingSnapshot) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try AtomicFile.write(s.encoded(), to: directory + "/" + Self.name(s.position))
        for old in files().dropFirst(keep) { unlink(old.path) }
        // Temporary files a crash left behind.
        for n in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where n.contains(".snap.tmp-") {
            unlink(directory + "/" + n)
        }
    }

    /// The newest snapshot that decodes, covers no more than the log holds (`logEnd`), belongs to
    /// this log (`fingerprint(id)`: the log's event `id`'s fingerprint, nil when it cannot be read),
    /// was taken with the same trending half-life and a seen-set bound no smaller than `seenPerUser`;
    /// a note for each one passed over.
    func newest(logEnd: UInt64, halfLifeSeconds: Double?, seenPerUser: Int?,
                fingerprint: (UInt64) -> UInt64?) -> (ServingSnapshot?, [String]) {
        newest(halfLifeSeconds: halfLifeSeconds, seenPerUser: seenPerUser) { s in
            guard s.partitions.isEmpty else { return "taken from a Kafka topic" }
            guard s.position <= logEnd else { return "covers events up to \(s.position) but the log ends at \(logEnd)" }
            guard s.position == 0 || fingerprint(s.position - 1) == s.logFingerprint else {
                return "belongs to another log (event \(s.position - 1) differs)"
            }
            return nil
        }
    }

    /// The same for any log: `misfit` says why a decoded snapshot does not belong to it (nil: it does).
    func newest(halfLifeSeconds: Double?, seenPerUser: Int?,
                misfit: (ServingSnapshot) -> String?) -> (ServingSnapshot?, [String]) {
        var notes: [String] = []
        for f in files() {
            do {
                guard let bytes = AtomicFile.read(f.path) else { throw ServingSnapshot.DecodeError.bad("unreadable") }
                let s = try ServingSnapshot.decode(bytes)
                guard s.position == f.position else { throw ServingSnapshot.DecodeError.bad("position \(s.position) differs from its name") }
                if let why = misfit(s) { throw ServingSnapshot.DecodeError.bad(why) }
                if let seenPerUser, Int(s.seenPerUser) < seenPerUser {
                    throw ServingSnapshot.DecodeError.bad("taken with seen sets bounded at \(s.seenPerUser), fewer than \(seenPerUser)")
                }
                if let halfLifeSeconds, s.halfLifeSeconds != halfLifeSeconds {
                    throw ServingSnapshot.DecodeError.bad("taken with trending half-life \(s.halfLifeSeconds) s, not \(halfLifeSeconds) s")
                }
                return (s, notes)
            } catch {
                notes.append("snapshot \(f.path) passed over: \(error)")
            }
        }
        return (nil, notes)
    }
}
