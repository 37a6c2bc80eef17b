import Foundation
import Checksum
import EventLog
#if canImport(Glibc)
import Glibc
#endif

/// The compacted interaction table: an `EventHistory` (per user and video, the summed signed event
/// weight, the newest event time, whether a skip or hide was seen) with the log position it
/// covers (every event with a smaller id is in it) and the mapping it was built with. Training
/// from a file log loads the newest table built with the same mapping and reads only the log after
/// it; the result is what a read of the whole log gives, added in the same order.
///
/// A view's weight depends on the video's duration, so the table records the duration each video
/// was read with, and is used only while the catalog still says the same (a video re-imported with
/// another duration, or removed, sends the next read back to the whole log); and it records the
/// fingerprint of the last event it covers, so it is never applied to another log.
///
/// Binary, little-endian: magic "FYITAB01" | u32 version | u64 position | u64 fingerprint of event
/// position - 1 (0 at 0) | i64 newest event time | string mapping (sorted key=value pairs) |
/// u32 videos, each a string + i64 duration ms | u32 users, each a string + u32 pairs, each u32 video
/// + f64 weight + i64 time + u8 negative | u32 CRC-32C of all before. Written through a temporary
/// file, fsync and rename (`AtomicFile`); the two newest per mapping are kept in
/// `DATA/interactions/table-<position>-<mapping digest>.bin`.
public enum InteractionTable {
    static let magic = Array("FYITAB01".utf8)
    static let version: UInt32 = 1

    /// The mapping as one string (a table built with another mapping is not used).
    public static func key(_ m: EventMapping) -> String {
        m.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
    }

    /// The mapping's digest in file names.
    static func tag(_ m: EventMapping) -> String {
        String(format: "%016llx", Array(key(m).utf8).withUnsafeBytes { FNV64.digest($0) })
    }

    /// Bytes per stored pair: u32 video + f64 weight + i64 time + u8 negative.
    static let pairBytes = 21

    /// A pair record's fields, written at `at` / read from there (the one place the layout is).
    @inline(__always)
    static func storeRecord(video: Int32, _ p: EventHistory.Pair, to out: UnsafeMutableRawBufferPointer, at: Int) {
        out.storeBytes(of: UInt32(bitPattern: video).littleEndian, toByteOffset: at, as: UInt32.self)
        out.storeBytes(of: p.weight.bitPattern.littleEndian, toByteOffset: at + 4, as: UInt64.self)
        out.storeBytes(of: UInt64(bitPattern: p.lastTimeMs).littleEndian, toByteOffset: at + 12, as: UInt64.self)
        out.storeBytes(of: p.negative ? 1 : 0, toByteOffset: at + 20, as: UInt8.self)
    }

    @inline(__always)
    static func recordVideo(_ b: UnsafeRawBufferPointer, at: Int) -> Int32 {
        Int32(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
    }

    @inline(__always)
    static func recordPair(_ b: UnsafeRawBufferPointer, at: Int) -> EventHistory.Pair {
        EventHistory.Pair(weight: Double(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at + 4, as: UInt64.self))),
                          lastTimeMs: Int64(bitPattern: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at + 12, as: UInt64.self))),
                          negative: b[at + 20] != 0)
    }

    /// The table as bytes (tests; `write` streams it to its file).
    public static func encode(_ h: EventHistory, position: UInt64, logFingerprint: UInt64, durations: [String: Int]) -> [UInt8] {
        var out: [UInt8] = []
        let stream = ByteStream(magic: magic) { out.append(contentsOf: $0) }
        try! encode(h, position: position, logFingerprint: logFingerprint, durations: durations, to: stream)
        return out
    }

    /// Streams the table, its checksum last. A row still in the table the history was read from
    /// is copied as it lies there (its records are already in this format).
    static func encode(_ h: EventHistory, position: UInt64, logFingerprint: UInt64, durations: [String: Int],
                       to stream: ByteStream) throws {
        try stream.write { w in
            w.u32(version); w.u64(position); w.u64(logFingerprint); w.u64(UInt64(bitPattern: h.newestTimeMs)); w.string(key(h.mapping))
            w.u32(UInt32(h.videos.count))
        }
        for v in h.videos.raw { try stream.write { w in w.string(v); w.u64(UInt64(bitPattern: Int64(durations[v] ?? 0))) } }
        try stream.write { $0.u32(UInt32(h.users.count)) }
        for (u, row) in h.rows.enumerated() {
            try stream.write { w in
                w.string(h.users.raw[u])
                if row.stored {
                    let records = h.stored!.records(u)
                    w.u32(UInt32(records.count / pairBytes))
                    w.raw(records)
                    return
                }
                w.u32(UInt32(row.videos.count))
                w.append(count: row.videos.count * pairBytes) { out in
                    for k in row.videos.indices { storeRecord(video: row.videos[k], row.pairs[k], to: out, at: k * pairBytes) }
                }
            }
        }
        try stream.finish()
    }

    public struct DecodeError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Checks magic, version, checksum, every length and the mapping before trusting a value.
    public struct Table {
        public var history: EventHistory
        public var position: UInt64
        public var logFingerprint: UInt64
        /// The duration each video was read with.
        public var durations: [String: Int]
    }

    /// A table from bytes in memory (tests).
    public static func decode(_ bytes: [UInt8], mapping: EventMapping) throws -> Table {
        try decode(MappedBytes(copying: bytes), mapping: mapping)
    }

    /// A table from its mapped file. Every record is checked here, in one pass; the rows are then
    /// read where they lie (`StoredRows`), so `file` is kept as long as the history is.
    static func decode(_ file: MappedBytes, mapping: EventMapping) throws -> Table {
        func bad(_ s: String) -> DecodeError { DecodeError(description: s) }
        var r = try RawByteReader(file.bytes, magic: magic, what: "an interaction table")
        guard try r.u32() == version else { throw bad("format version is not \(version)") }
        let position = try r.u64(), fingerprint = try r.u64(), newest = Int64(bitPattern: try r.u64())
        let stored_key = try r.string()
        guard stored_key == key(mapping) else { throw bad("built with another event mapping (\(stored_key))") }
        var durations: [String: Int] = [:], videos = IdMap()
        let videoCount = try r.count(12)
        durations.reserveCapacity(videoCount)
        for k in 0..<videoCount {
            let v = try r.string()
            guard videos.index(inserting: v) == Int32(k) else { throw bad("video \(v) listed twice") }
            durations[v] = Int(Int64(bitPattern: try r.u64()))
        }
        var users = IdMap(), starts: [Int] = [], counts: [Int32] = []
        let userCount = try r.count(8)
        users.reserveCapacity(userCount); starts.reserveCapacity(userCount); counts.reserveCapacity(userCount)
        // The last user each video was seen with: a video twice in one row is damage.
        var lastUser = [Int32](repeating: -1, count: videoCount)
        for u in 0..<userCount {
            let user = try r.string()
            guard users.index(inserting: user) == Int32(u) else { throw bad("user \(user) listed twice") }
            let n = try r.count(pairBytes)
            let raw = try r.take(n * pairBytes)
            starts.append(r.position - n * pairBytes); counts.append(Int32(n))
            try lastUser.withUnsafeMutableBufferPointer { last in
                for k in 0..<n {
                    let v = UInt32(bitPattern: recordVideo(raw, at: k * pairBytes))
                    guard v < UInt32(videoCount) else { throw bad("video index out of range") }
                    guard last[Int(v)] != Int32(u) else { throw bad("user \(user) holds video \(videos.raw[Int(v)]) twice") }
                    last[Int(v)] = Int32(u)
                }
            }
        }
        try r.end()
        let rows = StoredRows(file: file, starts: starts, counts: counts)
        return Table(history: EventHistory(mapping: mapping, users: users, videos: videos, stored: rows, newestTimeMs: newest),
                     position: position, logFingerprint: fingerprint, durations: durations)
    }

    /// What a table file says of itself after its checksum checked out: the position it covers, the
    /// fingerprint of its last event and the mapping it was built with (`key`).
    public struct Summary {
        public var path: String
        public var position: UInt64
        public var logFingerprint: UInt64
        public var mapping: String
    }

    /// Every table in `directory` whose checksum and header check out, newest first; a note for each
    /// other one.
    public static func summaries(in directory: String) -> (tables: [Summary], notes: [String]) {
        var out: [Summary] = [], notes: [String] = []
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("table-") && $0.hasSuffix(".bin") }
        for n in names {
            let path = directory + "/" + n
            do {
                guard let file = MappedBytes(path: path) else { throw DecodeError(description: "unreadable") }
                try withExtendedLifetime(file) {
                    var r = try RawByteReader(file.bytes, magic: magic, what: "an interaction table")
                    guard try r.u32() == version else { throw DecodeError(description: "format version is not \(version)") }
                    let position = try r.u64(), fingerprint = try r.u64()
                    _ = try r.u64()
                    out.append(Summary(path: path, position: position, logFingerprint: fingerprint, mapping: try r.string()))
                }
            } catch {
                notes.append("interaction table \(path): \(error)")
            }
        }
        return (out.sorted { $0.position > $1.position }, notes)
    }

    /// The tables in `directory`, newest first.
    public static func files(_ directory: String, mapping: EventMapping) -> [(position: UInt64, path: String)] {
        let suffix = "-" + tag(mapping) + ".bin"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap { n -> (UInt64, String)? in
            guard n.hasPrefix("table-"), n.hasSuffix(suffix), let p = UInt64(n.dropFirst(6).dropLast(suffix.count)) else { return nil }
            return (p, directory + "/" + n)
        }.sorted { $0.0 > $1.0 }
    }

    /// The newest table that decodes, was built with `mapping`, covers no more than the log holds,
    /// belongs to this log (`fingerprint(id)`: the log's event `id`'s fingerprint) and read every
    /// video with the duration `durations` gives it now; a note for each one passed over.
    /// (`durations` nil: whatever the catalog says now.)
    public static func newest(in directory: String, mapping: EventMapping, logEnd: UInt64, durations: [String: Int]?,
                              fingerprint: (UInt64) -> UInt64?) -> (table: Table?, notes: [String]) {
        var notes: [String] = []
        for f in files(directory, mapping: mapping) {
            do {
                guard let file = MappedBytes(path: f.path) else { throw DecodeError(description: "unreadable") }
                let t = try decode(file, mapping: mapping)
                guard t.position == f.position else { throw DecodeError(description: "position \(t.position) differs from its name") }
                guard t.position <= logEnd else {
                    throw DecodeError(description: "covers events up to \(t.position) but the log ends at \(logEnd)")
                }
                guard t.position == 0 || fingerprint(t.position - 1) == t.logFingerprint else {
                    throw DecodeError(description: "belongs to another log (event \(t.position - 1) differs)")
                }
                let changed = durations.map { d in t.durations.filter { (d[$0.key] ?? 0) != $0.value } } ?? [:]
                guard changed.isEmpty else {
                    throw DecodeError(description: "\(changed.count) video(s) changed duration since (e.g. \(changed.keys.sorted()[0]))")
                }
                return (t, notes)
            } catch {
                notes.append("interaction table \(f.path) passed over: \(error)")
            }
        }
        return (nil, notes)
    }

    /// The history of `log`'s events below `end`, read the cheap way: the newest usable table at or
    /// below `end` (`newest`) and the log from its position to `end`. With `ahead`, a table past
    /// `end` is used as it is (the ranking worker: its history may run ahead of its cursor, and it
    /// then skips adding the events below `position` again). `position`: every event below it is
    /// in the history; `fromTable`: what the table covered (0: read from the log's start).
    /// A pruned log with no table reaching its first event is an error naming both.
    public static func history(log: EventLog, directory: String, mapping: EventMapping, durations: [String: Int],
                               through end: UInt64, ahead: Bool = false,
                               progress: (String) -> Void = { _ in }) throws -> (history: EventHistory, position: UInt64, fromTable: UInt64) {
        let logEnd = ahead ? log.endId : end
        var (table, notes) = newest(in: directory, mapping: mapping, logEnd: logEnd, durations: durations, fingerprint: log.fingerprint(of:))
        if log.firstId > 0 && (table?.position ?? 0) < log.firstId {
            // The log was pruned: a table whose videos changed duration since is still the only
            // record of the removed events (they keep the weights they were read with).
            if let t = newest(in: directory, mapping: mapping, logEnd: logEnd, durations: nil, fingerprint: log.fingerprint(of:)).table,
               t.position >= log.firstId {
                notes.append("interaction table at \(t.position) used although videos changed duration since: the log before "
                             + "\(log.firstId) was pruned, and its events keep the weights they were read with")
                table = t
            }
        }
        notes.forEach(progress)
        if let t = table, t.position >= end { return (t.history, t.position, t.position) }
        let from = table?.position ?? 0
        guard from >= log.firstId else {
            throw DecodeError(description: "the event log \(log.directory) was pruned before event \(log.firstId) and no interaction "
                              + "table built with this event mapping covers it (in \(directory)); the events before it are gone")
        }
        var h = table?.history ?? EventHistory(mapping: mapping)
        try log.forEach(from: from, limit: Int(end - from)) { e in h.add(e, duration: durations[e.video] ?? 0) }
        return (h, end, from)
    }

    /// Writes the table at `position`; keeps the two newest and this one (`events compact
    /// --through` may write one below them).
    public static func write(_ h: EventHistory, position: UInt64, logFingerprint: UInt64, durations: [String: Int],
                             to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let name = String(format: "table-%020llu-", position) + tag(h.mapping) + ".bin"
        try AtomicFile.write(to: directory + "/" + name) { sink in
            try encode(h, position: position, logFingerprint: logFingerprint, durations: durations,
                       to: ByteStream(magic: magic, output: sink.write))
        }
        for old in files(directory, mapping: h.mapping).dropFirst(2) where old.position != position { unlink(old.path) }
    }
}
