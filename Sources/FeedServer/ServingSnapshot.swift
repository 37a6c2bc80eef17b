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
/// order, and a start numbers its catalog the same way (`CatalogView.seed`), so the seen sets and
/// trending are taken as they are. Binary, little-endian:
///   magic "FYSNAP01" | u32 version | u64 position | u64 fingerprint of the event at position - 1
///   (`Event.fingerprint`; 0 at position 0) | u64 events applied | f64 trending half-life |
///   u32 seen-set bound per user | u32 videos, each a string |
///   seen sets (below) |
///   u32 trending entries, each u32 video + f32 score + f64 stamp + u32 event count |
///   u32 keys, each a string + u64 event id + u64 fingerprint + i64 time ms |
///   (version 2 on) u32 Kafka partitions, each u32 partition + u64 next offset + u64 fingerprint of
///   the record before it (0 at offset 0) | u32 pending, each u64 event id | u32 CRC-32C of all before
/// (a string is u32 length + UTF-8). Seen sets, versions 1 and 2: u32 users, each a string + u32
/// count + count x u32 video (oldest first) + u32 hidden + hidden x u32 video. Version 3 lays them
/// out to be used where they lie in a mapped file (`SeenBase`: a start reads no user's list until
/// that user is touched):
///   u32 users | u32 slots (a power of two above users) | u64 name bytes | u64 list words |
///   zeros to a multiple of 8 | users x (u64 first list word | u32 first name byte | u32 name length |
///   u32 videos | u32 hidden) | slots x u32 (0: empty, else user + 1; open addressing, linear
///   probing from FNV-1a 64 of the name) | names | zeros to a multiple of 4 |
///   list words (each user's videos oldest first, then its hidden ones)
/// Written to a temporary file, fsynced, renamed, the directory fsynced (`AtomicFile`): a crash
/// mid-write leaves the previous snapshots as they were. Versions 1 and 2 are still read.
///
/// With a Kafka topic, `partitions` holds where the follower stands in each partition (every record
/// below is applied) and `pending` the ids of events this server applied at their acknowledgement
/// above those positions (skipped when the follower reaches them); `position` is then the sum of
/// the next offsets (it orders the files) and `logFingerprint` is unused.
struct ServingSnapshot: Equatable {
    static let magic = Array("FYSNAP01".utf8)
    static let version: UInt32 = 3

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
    /// Per user: videos (indices into `videos`) oldest first, and the hidden ones. Users here
    /// stand for themselves in `base` too (`allSeen`).
    var seen: [String: SeenSets.User]
    var trending: [Trend]
    var keys: [Key]
    var partitions: [Partition] = []
    var pending: [UInt64] = []
    /// More users' seen sets, where a version-3 file holds them (mapped) or as a server took
    /// them over from one (`SeenSets`); those in `seen` are not read from here.
    var base: SeenBase? = nil
    /// `videos`' positions (filled by a decode, which builds it to check that no id repeats;
    /// empty otherwise).
    var videoIndex: [String: Int32] = [:]

    /// Every user's seen set, whether in `seen` or `base`, the videos of those from `base` at
    /// most the snapshot's bound (tests, and a renumbering restore).
    var allSeen: [String: SeenSets.User] {
        var all = seen
        base?.forEachUser { name, k in
            if all[name] == nil { all[name] = base!.user(k, keeping: Int(seenPerUser)) }
        }
        return all
    }

    static func == (a: ServingSnapshot, b: ServingSnapshot) -> Bool {
        guard a.position == b.position && a.logFingerprint == b.logFingerprint && a.eventsApplied == b.eventsApplied
            && a.halfLifeSeconds == b.halfLifeSeconds && a.seenPerUser == b.seenPerUser
            && a.videos == b.videos && a.trending == b.trending && a.keys == b.keys && a.partitions == b.partitions
            && a.pending == b.pending else { return false }
        let (x, y) = (a.allSeen, b.allSeen)
        return x.count == y.count
            && x.allSatisfy { u in y[u.key].map { $0.videos.elementsEqual(u.value.videos) && $0.hidden == u.value.hidden } ?? false }
    }

    /// The current format's bytes (tests; `write` streams the same to a file).
    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        try! write(to: ByteStream(magic: Self.magic) { out.append(contentsOf: $0) })
        return out
    }

    /// Writes the snapshot in the current format through `w`, then its checksum.
    func write(to w: ByteStream) throws {
        try w.write { w in
            w.u32(Self.version); w.u64(position); w.u64(logFingerprint); w.u64(eventsApplied); w.u64(halfLifeSeconds.bitPattern)
            w.u32(seenPerUser)
            w.u32(UInt32(videos.count))
        }
        for v in videos { try w.write { $0.string(v) } }
        try writeSeen(to: w)
        try w.write { w in
            w.u32(UInt32(trending.count))
            for t in trending { w.u32(t.video); w.u32(t.score.bitPattern); w.u64(t.stamp.bitPattern); w.u32(t.count) }
        }
        try w.write { $0.u32(UInt32(keys.count)) }
        for k in keys { try w.write { w in w.string(k.entry); w.u64(k.id); w.u64(k.fingerprint); w.u64(UInt64(bitPattern: k.timeMs)) } }
        try w.write { w in
            w.u32(UInt32(partitions.count))
            for p in partitions { w.u32(UInt32(bitPattern: p.partition)); w.u64(UInt64(bitPattern: p.next)); w.u64(p.fingerprint) }
            w.u32(UInt32(pending.count))
            for id in pending { w.u64(id) }
        }
        try w.finish()
    }

    /// The version-3 seen-set section: the users of `seen`, then those of `base` not in it.
    private func writeSeen(to w: ByteStream) throws {
        let bound = Int(seenPerUser)
        // Who goes in, in order: a user of `seen` (their entry) or of `base` (their index there).
        enum From { case seen(SeenSets.User), base(Int) }
        var names: [String] = [], from: [From] = []
        names.reserveCapacity(seen.count + (base?.count ?? 0))
        from.reserveCapacity(names.capacity)
        for (name, u) in seen { names.append(name); from.append(.seen(u)) }
        base?.forEachUser { name, k in
            if seen[name] == nil { names.append(name); from.append(.base(k)) }
        }
        // The entries: where each name and list starts.
        var entries = ByteWriter(magic: [])
        entries.reserveCapacity(names.count * 24)
        var nameBytes = 0, words = 0
        for (name, f) in zip(names, from) {
            let (videos, hidden): (Int, Int)
            switch f {
            case .seen(let u): (videos, hidden) = (min(u.count, bound), u.hidden.count)
            case .base(let k): (videos, hidden) = base!.counts(k, keeping: bound)
            }
            let n = name.utf8.count
            guard nameBytes + n <= Int(UInt32.max) else { throw DecodeError.bad("user names past 4 GiB: not written") }
            entries.u64(UInt64(words)); entries.u32(UInt32(nameBytes)); entries.u32(UInt32(n))
            entries.u32(UInt32(videos)); entries.u32(UInt32(hidden))
            nameBytes += n
            words += videos + hidden
        }
        let slots = SeenBase.slots(forUsers: names.count)
        var table = [UInt32](repeating: 0, count: slots)
        for (k, name) in names.enumerated() {
            var slot = SeenBase.slot(of: name, slots: slots)
            while table[slot] != 0 { slot = (slot + 1) & (slots - 1) }
            table[slot] = UInt32(k + 1)
        }
        try w.write { w in w.u32(UInt32(names.count)); w.u32(UInt32(slots)); w.u64(UInt64(nameBytes)); w.u64(UInt64(words)) }
        try w.align(8)
        try entries.bytes.withUnsafeBytes { b in
            for start in stride(from: 0, to: b.count, by: 1 << 20) {
                try w.write { $0.raw(UnsafeRawBufferPointer(rebasing: b[start..<min(b.count, start + (1 << 20))])) }
            }
        }
        for start in stride(from: 0, to: slots, by: 1 << 18) {
            try w.write { w in for k in start..<min(slots, start + (1 << 18)) { w.u32(table[k]) } }
        }
        for name in names { try w.write { $0.raw(name.utf8) } }
        try w.align(4)
        for f in from {
            switch f {
            case .seen(let u):
                try w.write { w in w.i32s(u.videos.suffix(bound)); w.i32s(u.hidden[...]) }
            case .base(let k):
                let (videos, hidden) = base!.lists(k)
                try w.write { w in
                    w.raw(UnsafeRawBufferPointer(rebasing: videos[(videos.count - 4 * min(videos.count / 4, bound))...]))
                    w.raw(hidden)
                }
            }
        }
    }

    enum DecodeError: Error, CustomStringConvertible {
        case bad(String)
        var description: String { if case .bad(let s) = self { return s }; return "" }
    }

    /// Checks the magic, version, checksum and every length before trusting a value.
    static func decode(_ bytes: [UInt8]) throws -> ServingSnapshot {
        try decode(MappedBytes(copying: bytes))
    }

    /// The same over a mapped file: a version-3 file's seen sets stay where they are (`base`),
    /// kept alive by the snapshot.
    static func decode(_ file: MappedBytes) throws -> ServingSnapshot {
        var r = try RawByteReader(file.bytes, magic: magic, what: "a snapshot")
        let v = try r.u32()
        guard (1...version).contains(v) else { throw DecodeError.bad("format version \(v) is not 1 to \(version)") }
        let position = try r.u64(), fingerprint = try r.u64(), applied = try r.u64(), halfLife = Double(bitPattern: try r.u64())
        let perUser = try r.u32()
        let videos = try (0..<r.count(4)).map { _ in try r.string() }
        var videoIndex: [String: Int32] = [:]
        videoIndex.reserveCapacity(videos.count)
        for (k, id) in videos.enumerated() {
            guard videoIndex.updateValue(Int32(k), forKey: id) == nil else { throw DecodeError.bad("a video listed twice") }
        }
        var seen: [String: SeenSets.User] = [:]
        var base: SeenBase?
        let top = Int32(clamping: videos.count)
        if v >= 3 {
            base = try SeenBase(reading: &r, file: file, bound: Int(perUser), videos: videos.count)
        } else {
            let users = try r.count(12)
            seen.reserveCapacity(users)
            for _ in 0..<users {
                let user = try r.string()
                let vs = try r.i32s(r.count(4))
                let hidden = try r.i32s(r.count(4))
                guard vs.count <= Int(perUser) else { throw DecodeError.bad("user \(user) has \(vs.count) videos, past the bound \(perUser)") }
                guard vs.allSatisfy({ $0 >= 0 && $0 < top }), hidden.allSatisfy({ $0 >= 0 && $0 < top }) else {
                    throw DecodeError.bad("video index out of range")
                }
                guard seen.updateValue(SeenSets.User(videos: vs, hidden: hidden), forKey: user) == nil else {
                    throw DecodeError.bad("user \(user) listed twice")
                }
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
                               partitions: partitions, pending: pending, base: base, videoIndex: videoIndex)
    }
}

/// The seen sets of a version-3 snapshot, used where they lie in its mapped file: a user's
/// lists are found through the file's hash table and copied out only when that user is touched
/// (`SeenSets`), so a start costs nothing per user. Immutable; checked whole when opened (every
/// offset, count and video index), so nothing read later can fall outside the file or the
/// snapshot's video table. (A name listed twice is not looked for: the writer takes them from a
/// dictionary; the lookup would find the first. Names are matched byte for byte here, where a
/// Swift dictionary matches canonically equivalent strings: a user id sent once in NFC and once
/// in NFD is one user to a server that replayed the log and may be two after a restart.)
final class SeenBase: @unchecked Sendable {
    /// Keeps the mapping alive.
    private let file: MappedBytes
    /// Users.
    let count: Int
    /// Videos over all users, each at most `bound`.
    let videoCount: Int
    private let bound: Int
    private let entries: UnsafeRawBufferPointer
    private let table: UnsafeRawBufferPointer
    private let slots: Int
    private let names: UnsafeRawBufferPointer
    private let lists: UnsafeRawBufferPointer

    static func slots(forUsers n: Int) -> Int {
        var s = 2
        while s < 2 * n { s <<= 1 }
        return s
    }

    /// Where probing for a name starts (the writer and `find` both come here).
    static func slot(of name: String, slots: Int) -> Int {
        var n = name
        return n.withUTF8 { slot(ofUTF8: UnsafeRawBufferPointer($0), slots: slots) }
    }

    static func slot(ofUTF8 name: UnsafeRawBufferPointer, slots: Int) -> Int {
        Int(truncatingIfNeeded: FNV64.digest(name)) & (slots - 1)
    }

    /// Reads the section at `r`'s position (the checksum already checked), checking it whole.
    init(reading r: inout RawByteReader, file: MappedBytes, bound: Int, videos: Int) throws {
        func bad(_ s: String) -> ServingSnapshot.DecodeError { .bad(s) }
        self.file = file
        self.bound = bound
        let users = Int(try r.u32()), slots = Int(try r.u32())
        let nameBytes = try r.u64(), words = try r.u64()
        let left = UInt64(r.body - r.position)
        guard slots >= 2, slots & (slots - 1) == 0, slots > users, nameBytes <= left, words <= left / 4,
              UInt64(users) * 24 + UInt64(slots) * 4 + nameBytes + words * 4 <= left else {
            throw bad("seen-set section sizes do not fit the file")
        }
        try r.align(8)
        entries = try r.take(users * 24)
        table = try r.take(slots * 4)
        names = try r.take(Int(nameBytes))
        try r.align(4)
        lists = try r.take(Int(words) * 4)
        count = users
        self.slots = slots
        var total = 0
        for k in 0..<users {
            let e = Self.entry(entries, k)
            guard e.nameStart + e.nameLength <= Int(nameBytes), e.listStart >= 0, e.listStart <= Int(words),
                  e.videos + e.hidden <= Int(words) - e.listStart else { throw bad("user \(k)'s name or lists past the section") }
            guard e.videos <= bound else { throw bad("user \(Self.name(names, e)) has \(e.videos) videos, past the bound \(bound)") }
            total += e.videos
        }
        videoCount = total
        for s in 0..<slots where table.loadUnaligned(fromByteOffset: 4 * s, as: UInt32.self).littleEndian > UInt32(users) {
            throw bad("hash table entry past the users")
        }
        // Every video index within the table: one pass, the largest as unsigned (negatives are huge).
        var top: UInt32 = 0
        for k in 0..<Int(words) { top = max(top, UInt32(littleEndian: lists.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))) }
        guard words == 0 || Int(top) < videos else { throw bad("video index out of range") }
    }

    private struct Entry { var listStart, nameStart, nameLength, videos, hidden: Int }

    private static func entry(_ entries: UnsafeRawBufferPointer, _ k: Int) -> Entry {
        let o = 24 * k
        // (Truncating: a start past the section, however large, is refused at open, not trapped on.)
        return Entry(listStart: Int(truncatingIfNeeded: UInt64(littleEndian: entries.loadUnaligned(fromByteOffset: o, as: UInt64.self))),
                     nameStart: Int(UInt32(littleEndian: entries.loadUnaligned(fromByteOffset: o + 8, as: UInt32.self))),
                     nameLength: Int(UInt32(littleEndian: entries.loadUnaligned(fromByteOffset: o + 12, as: UInt32.self))),
                     videos: Int(UInt32(littleEndian: entries.loadUnaligned(fromByteOffset: o + 16, as: UInt32.self))),
                     hidden: Int(UInt32(littleEndian: entries.loadUnaligned(fromByteOffset: o + 20, as: UInt32.self))))
    }

    private static func nameBytes(_ names: UnsafeRawBufferPointer, _ e: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: names[e.nameStart..<(e.nameStart + e.nameLength)])
    }

    private static func name(_ names: UnsafeRawBufferPointer, _ e: Entry) -> String {
        String(decoding: nameBytes(names, e), as: UTF8.self)
    }

    /// The user named `name`, if the snapshot has them.
    func find(_ name: String) -> Int? {
        var n = name
        return n.withUTF8 { key -> Int? in
            var slot = Self.slot(ofUTF8: UnsafeRawBufferPointer(key), slots: slots)
            for _ in 0..<slots {
                let k = Int(UInt32(littleEndian: table.loadUnaligned(fromByteOffset: 4 * slot, as: UInt32.self)))
                if k == 0 { return nil }
                let e = Self.entry(entries, k - 1)
                if e.nameLength == key.count && Self.nameBytes(names, e).elementsEqual(UnsafeRawBufferPointer(key)) { return k - 1 }
                slot = (slot + 1) & (slots - 1)
            }
            return nil
        }
    }

    /// Every user's name and index, in file order.
    func forEachUser(_ body: (String, Int) -> Void) {
        for k in 0..<count { body(Self.name(names, Self.entry(entries, k)), k) }
    }

    /// User `k`'s videos (oldest first) and hidden videos, as little-endian u32s in the file.
    func lists(_ k: Int) -> (videos: UnsafeRawBufferPointer, hidden: UnsafeRawBufferPointer) {
        let e = Self.entry(entries, k)
        let v = 4 * e.listStart, h = v + 4 * e.videos
        return (UnsafeRawBufferPointer(rebasing: lists[v..<h]), UnsafeRawBufferPointer(rebasing: lists[h..<(h + 4 * e.hidden)]))
    }

    /// How many videos and hidden videos user `k` has, at most `bound` videos (the newest).
    func counts(_ k: Int, keeping bound: Int) -> (videos: Int, hidden: Int) {
        let e = Self.entry(entries, k)
        return (min(e.videos, bound), e.hidden)
    }

    /// User `k` copied out, keeping their newest `bound` videos.
    func user(_ k: Int, keeping bound: Int) -> SeenSets.User {
        let (videos, hidden) = lists(k)
        let keep = min(videos.count / 4, bound)
        return SeenSets.User(videos: RawByteReader.i32s(UnsafeRawBufferPointer(rebasing: videos[(videos.count - 4 * keep)...])),
                             hidden: RawByteReader.i32s(hidden))
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
        try AtomicFile.write(to: directory + "/" + Self.name(s.position)) { sink in
            try s.write(to: ByteStream(magic: ServingSnapshot.magic, output: sink.write))
        }
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
                guard let file = MappedBytes(path: f.path) else { throw ServingSnapshot.DecodeError.bad("unreadable") }
                let s = try ServingSnapshot.decode(file)
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
