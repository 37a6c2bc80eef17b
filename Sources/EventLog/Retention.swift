import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `EventLog.prune` removed.
public struct PruneResult: Sendable, Equatable {
    /// The log's first event now.
    public var first: UInt64
    public var segments: Int
    public var bytes: Int
}

extension EventLog {
    /// The first id of each segment, oldest first: the points a prune can cut at.
    public var segmentBases: [UInt64] { core.segmentBases }

    /// Where a prune that removes events below `before` cuts: the start of the segment holding
    /// `before` (whole segments only; the segment being written is never removed). Equal to
    /// `firstId` when nothing would be removed.
    public func pruneCut(before: UInt64) -> UInt64 {
        max(firstId, segmentBases.last(where: { $0 <= before }) ?? firstId)
    }

    /// Removes the segments of the log in `directory` that hold only events below `cut` (a segment's
    /// first id, see `pruneCut`). Safe beside the log's writer (it never touches the last segment)
    /// and against a crash at any point: the marker naming the new start (`PruneMarker`) is written
    /// atomically first, then the segments go oldest first; an open finds the log starting at the
    /// marker whatever was left (and its writer removes the leftovers). Callers check first that
    /// nothing still needs the events (`foryou events prune` does: consumer cursors, snapshots,
    /// interaction tables). One prune at a time (`prune.lock`).
    public static func prune(directory: String, to cut: UInt64) throws -> PruneResult {
        // Opened before the lock (an open holds it shared while it lists and reads the segments).
        let log = try EventLog(directory: directory)
        defer { log.close() }
        let lockPath = directory + "/" + EventLogCore.pruneLockName
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw EventLogError.io("open \(lockPath): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw EventLogError.io("lock \(lockPath): \(String(cString: strerror(errno)))") }
        }
        // Another prune may have cut meanwhile: its marker is what counts now.
        let current = max(log.firstId, try PruneMarker.load(directory)?.first ?? 0)
        let bases = log.segmentBases.filter { $0 >= current }
        guard cut > current else { return PruneResult(first: current, segments: 0, bytes: 0) }
        guard bases.contains(cut), cut <= log.endId else {
            throw EventLogError.invalid("event \(cut) does not start a segment of \(directory) (segments start at \(bases.prefix(8).map(String.init).joined(separator: ", "))...)")
        }
        guard let fingerprint = log.fingerprint(of: cut - 1) else {
            throw EventLogError.io("event \(cut - 1) of \(directory) cannot be read back")
        }
        try PruneMarker(first: cut, fingerprint: fingerprint).write(directory)
        var removed = PruneResult(first: cut, segments: 0, bytes: 0)
        // Every segment below the cut, including what an interrupted prune left behind.
        let doomed = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".log") && $0.count == 24 }.compactMap { UInt64($0.prefix(20)) }.filter { $0 < cut }.sorted()
        for b in doomed {
            let path = directory + "/" + String(format: "%020llu.log", b)
            var st = stat()
            if stat(path, &st) == 0 { removed.bytes += Int(st.st_size) }
            guard unlink(path) == 0 || errno == ENOENT else { throw EventLogError.io("remove \(path): \(String(cString: strerror(errno)))") }
            unlink(SegmentSummary.path(directory, base: b))
            removed.segments += 1
        }
        try AtomicFile.syncDirectory(directory)
        return removed
    }
}

extension EventLogCore {
    var segmentBases: [UInt64] {
        cond.lock(); defer { cond.unlock() }
        return segments.map(\.base)
    }
}
