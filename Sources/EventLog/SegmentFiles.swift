import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a sealed segment holds, written beside it (`DIR/<first id>.idx`) when the writer rolls to
/// the next one, so that opening the log does not read and checksum every old segment: its record
/// count, its size in bytes and the sparse index of its record offsets. Trusted at open only while
/// the segment's size on disk is the one recorded; the records themselves are still checksummed
/// whenever they are read. Missing or damaged, the segment is scanned as before (and the writer
/// writes the file again).
///
/// Binary: magic "FYSEGIX1" | u32 version | u64 first id | u64 records | u64 segment bytes |
/// u32 entries, each u64 id + u64 offset | u32 CRC-32C of all before.
struct SegmentSummary: Equatable {
    static let magic = Array("FYSEGIX1".utf8)
    static let version: UInt32 = 1

    var base: UInt64
    var count: UInt64
    var fileSize: Int
    var entries: [(id: UInt64, offset: Int)]

    static func == (a: SegmentSummary, b: SegmentSummary) -> Bool {
        a.base == b.base && a.count == b.count && a.fileSize == b.fileSize
            && a.entries.map(\.id) == b.entries.map(\.id) && a.entries.map(\.offset) == b.entries.map(\.offset)
    }

    static func path(_ directory: String, base: UInt64) -> String {
        directory + "/" + String(format: "%020llu.idx", base)
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(magic: Self.magic)
        w.u32(Self.version); w.u64(base); w.u64(count); w.u64(UInt64(fileSize)); w.u32(UInt32(entries.count))
        for e in entries { w.u64(e.id); w.u64(UInt64(e.offset)) }
        return w.finished()
    }

    static func decode(_ bytes: [UInt8]) throws -> SegmentSummary {
        var r = try ByteReader(bytes, magic: magic, what: "a segment summary")
        guard try r.u32() == version else { throw ByteReader.Failure(description: "format version is not \(version)") }
        let base = try r.u64(), count = try r.u64(), size = try r.u64()
        let n = try r.count(16)
        var entries: [(id: UInt64, offset: Int)] = []
        entries.reserveCapacity(n)
        for _ in 0..<n {
            let id = try r.u64(), offset = try r.u64()
            // Offsets inside the segment's records, ids inside its range, both increasing.
            guard id >= base, id < base &+ count, offset >= UInt64(EventLogCore.headerBytes), offset < size,
                  entries.last.map({ $0.id < id && $0.offset < Int(offset) }) ?? true
            else { throw ByteReader.Failure(description: "index entry \(entries.count) out of range") }
            entries.append((id, Int(offset)))
        }
        try r.end()
        guard size >= UInt64(EventLogCore.headerBytes), size <= UInt64(Int.max), count <= size else {
            throw ByteReader.Failure(description: "implausible size \(size) for \(count) records")
        }
        return SegmentSummary(base: base, count: count, fileSize: Int(size), entries: entries)
    }

    /// The summary of the segment starting at `base`, if one is there, decodes, names that segment
    /// and matches the segment file's current size; nil otherwise (the caller scans it).
    static func load(_ directory: String, base: UInt64, segmentPath: String) -> SegmentSummary? {
        guard let data = FileManager.default.contents(atPath: path(directory, base: base)),
              let s = try? decode(Array(data)), s.base == base else { return nil }
        var st = stat()
        guard stat(segmentPath, &st) == 0, Int(st.st_size) == s.fileSize else { return nil }
        return s
    }

    /// Writes it atomically (temporary file, fsync, rename, directory fsync).
    func write(_ directory: String) throws {
        try AtomicFile.write(encoded(), to: Self.path(directory, base: base))
    }
}

/// Where a pruned log starts: `DIR/pruned`, written (atomically) before any segment is removed.
/// `first` is the id of the first event kept (a segment's first id); `fingerprint` is
/// `Event.fingerprint` of the last event removed (`first - 1`), so that a snapshot or an
/// interaction table ending exactly at the cut can still be tied to this log.
///
/// Binary: magic "FYPRUNE1" | u32 version | u64 first | u64 fingerprint | u32 CRC-32C.
public struct PruneMarker: Equatable, Sendable {
    static let magic = Array("FYPRUNE1".utf8)
    static let version: UInt32 = 1
    static let name = "pruned"

    public var first: UInt64
    public var fingerprint: UInt64

    func encoded() -> [UInt8] {
        var w = ByteWriter(magic: Self.magic)
        w.u32(Self.version); w.u64(first); w.u64(fingerprint)
        return w.finished()
    }

    /// The marker of the log in `directory` (nil: never pruned). A marker that does not check out
    /// is an error: where the log starts would be a guess.
    static func load(_ directory: String) throws -> PruneMarker? {
        let path = directory + "/" + name
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            guard let data = FileManager.default.contents(atPath: path) else { throw ByteReader.Failure(description: "unreadable") }
            var r = try ByteReader(Array(data), magic: magic, what: "a prune marker")
            guard try r.u32() == version else { throw ByteReader.Failure(description: "format version is not \(version)") }
            let m = PruneMarker(first: try r.u64(), fingerprint: try r.u64())
            try r.end()
            return m
        } catch {
            throw EventLogError.corrupt(file: path, offset: 0, reason: "\(error)")
        }
    }

    func write(_ directory: String) throws {
        try AtomicFile.write(encoded(), to: directory + "/" + Self.name)
    }
}
