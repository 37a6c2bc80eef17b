import Foundation
import Checksum
#if canImport(Glibc)
import Glibc
#endif

public enum EventLogError: Error, CustomStringConvertible, Equatable {
    case corrupt(file: String, offset: Int, reason: String)
    case writerStopped(String)
    case io(String)
    case invalid(String)
    /// Another process holds the log's writer lock.
    case locked(directory: String, pid: Int32?)
    /// An append on a log opened for reading only.
    case readOnly(String)
    /// A read from before the first event a pruned log still holds.
    case pruned(directory: String, first: UInt64, requested: UInt64)

    public var description: String {
        switch self {
        case .corrupt(let f, let o, let r):
            return "event log corrupted in \(f) at byte offset \(o): \(r); refusing to skip data (move the damaged segment aside to start)"
        case .writerStopped(let why): return "event log writer stopped after a failed write: \(why)"
        case .io(let s): return "event log I/O error: \(s)"
        case .invalid(let s): return s
        case .locked(let d, let pid):
            return "event log \(d) is already open for writing by "
                + (pid.map { "process \($0)" } ?? "another process")
                + " (one writer per file log; stop it first, or use the Kafka log for several servers)"
        case .readOnly(let d): return "event log \(d) was opened for reading only"
        case .pruned(let d, let first, let requested):
            return "event log \(d) was pruned: it starts at event \(first), and event \(requested) is gone "
                + "(what covers the removed events: the serving snapshots and the interaction tables)"
        }
    }
}

/// How a process opens a file log. Exactly one process may append (it holds `writer.lock`, an
/// exclusive `flock`, for the log's life, and alone repairs a torn tail); any number may read.
public enum EventLogAccess: Sendable, Equatable {
    /// Reads what is durable and follows the writer with `refresh()`; never changes a file.
    case read
    /// Takes the writer lock (failing at once with `EventLogError.locked` when another process
    /// has it), recovers the tail, then appends.
    case append
}

public struct EventLogConfig: Sendable {
        /// Bytes after which the writer starts a new segment (the unit `prune` removes): 64 MiB, or
        /// the environment's `FORYOU_SEGMENT_BYTES` (at least 256; for tests and small deployments).
        public var segmentBytes: Int = EventLogConfig.defaultSegmentBytes
        public static var defaultSegmentBytes: Int {
            ProcessInfo.processInfo.environment["FORYOU_SEGMENT_BYTES"].flatMap(Int.init).map { max(256, $0) } ?? 64 << 20
        }
        /// Records in the sparse in-memory index: one entry every `indexEvery` records.
        public var indexEvery: Int = 512
        /// Fault injection for tests: runs after each fsync; a throw is treated as a failed fsync.
        public var afterSync: (@Sendable () throws -> Void)?
        /// Called with the number of events each successful fsync made durable (metrics).
        public var onCommit: (@Sendable (Int) -> Void)?
        public init() {}
}

public struct EventLogRecovery: Sendable, Equatable {
        public var segments: Int
        public var events: UInt64
        /// Bytes cut from the end of the last segment (a torn or corrupt tail), and where.
        public var truncatedBytes: Int
        public var truncatedAt: Int?
        public var truncatedFile: String?
        public var message: String? {
            guard truncatedBytes > 0, let f = truncatedFile, let at = truncatedAt else { return nil }
            return "event log: recovered a torn tail: cut \(truncatedBytes) bytes from \(f) at offset \(at)"
        }
}

public struct EventLogStats: Sendable {
        public var events: UInt64
        public var segments: Int
        public var bytes: Int
        public var firstId: UInt64?
        public var lastId: UInt64?
}

/// The log's state and writer thread; `EventLog` owns it and stops it when released.
final class EventLogCore: @unchecked Sendable {
    typealias Config = EventLogConfig
    typealias Recovery = EventLogRecovery
    typealias Stats = EventLogStats

    static let magic: [UInt8] = Array("FYEVLOG1".utf8)
    static let headerBytes = 16
    static let maxRecord = 1 << 20

    struct Segment {
        var base: UInt64
        var path: String
        var size: Int
    }

    struct IndexEntry {
        var id: UInt64
        var segment: Int
        var offset: Int
    }

    typealias Completion = (Result<[UInt64], Error>) -> Void

    public let directory: String
    public let config: Config
    public let recovery: Recovery

    let cond = NSCondition()
    // Guarded by cond:
    private var pending: [(drafts: [EventDraft], done: Completion)] = []
    private var closing = false
    private var failure: String?
    private(set) var segments: [Segment]
    private var index: [IndexEntry]
    private var durableNext: UInt64
    private var batchSizes: [Int] = []
    // Writer-thread only:
    private var fd: Int32 = -1
    private var next: UInt64
    private var sinceIndexed: Int
    private var writer: Thread?

    public let access: EventLogAccess
    // Guarded by cond (a reader's `refresh` sees a prune another process made):
    private var first: UInt64
    private var marker: PruneMarker?
    /// The first event the log holds (0 unless pruned; see `PruneMarker`).
    var firstId: UInt64 { cond.lock(); defer { cond.unlock() }; return first }
    /// Where a pruned log was cut, and the fingerprint of the last event removed.
    var pruneMarker: PruneMarker? { cond.lock(); defer { cond.unlock() }; return marker }
    /// The writer lock's descriptor (append access), held until `close`.
    private var lockFd: Int32 = -1

    static let lockName = "writer.lock"
    static let pruneLockName = "prune.lock"
    /// The writer's published durable end: 8 bytes, the id after the last fsynced record.
    static let durableName = "durable"
    private var watermarkFd: Int32 = -1

    /// Records below this id are fsynced (written after each group commit, before the acks; a
    /// stale value only holds readers back). No pwrite fsync: lost on a crash, it is older, never
    /// ahead of the data.
    private func publishDurable(_ next: UInt64) {
        var v = next.littleEndian
        _ = withUnsafeBytes(of: &v) { pwrite(watermarkFd, $0.baseAddress!, 8, 0) }
    }

    /// The durable end a writer published (nil for a log no writer of this version wrote).
    static func durableBound(_ directory: String) throws -> UInt64? {
        let path = directory + "/" + durableName
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let b = try readBytes(path, offset: 0, count: 8)
        guard b.count == 8 else { return nil }
        return b.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
    }

    /// Opens (creating if needed) the log in `directory`. With `.append`, takes the writer lock
    /// first, then recovers: a torn tail of the last segment is cut, and a last segment shorter
    /// than its header gets its header rewritten, before any append. With `.read`, nothing on
    /// disk changes: a torn or still-growing tail is simply where the readable log ends.
    public init(directory: String, config: Config = Config(), access: EventLogAccess = .read) throws {
        self.directory = directory
        self.config = config
        self.access = access
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lock: Int32 = -1
        if access == .append { lock = try EventLogCore.lockWriter(directory) }
        // No prune removes segments while the open lists and reads them (best effort: a reader
        // that cannot create the lock file opens without it).
        let pruneLock = open(directory + "/" + EventLogCore.pruneLockName, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if pruneLock >= 0 { while flock(pruneLock, LOCK_SH) != 0 && errno == EINTR {} }
        defer { if pruneLock >= 0 { Glibc.close(pruneLock) } }
        do {
            var names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".log") && $0.count == 24 }.sorted()
            let bases = try names.map { n -> UInt64 in
                guard let b = UInt64(n.prefix(20)) else {
                    throw EventLogError.corrupt(file: directory + "/" + n, offset: 0, reason: "not a segment name")
                }
                return b
            }
            // A pruned log starts at its marker; segments wholly below it are what an interrupted
            // prune had not yet removed: not part of the log (the writer finishes removing them).
            let marker = try PruneMarker.load(directory)
            let cut = marker?.first ?? 0
            var drop = 0
            while drop + 1 < names.count && bases[drop + 1] <= cut { drop += 1 }
            if drop > 0 && access == .append {
                for b in bases[..<drop] {
                    unlink(directory + "/" + String(format: "%020llu.log", b))
                    unlink(SegmentSummary.path(directory, base: b))
                }
                try EventLogCore.fsyncDirectory(directory)
            }
            names.removeFirst(drop)
            if names.isEmpty && cut > 0 {
                throw EventLogError.corrupt(file: directory, offset: 0, reason: "pruned to event \(cut) but no segment is left")
            }
            var segs: [Segment] = []
            var idx: [IndexEntry] = []
            // The first segment must start at or before the marker (at 0 for a log never pruned):
            // a later start means segments were lost, and the scan below says so.
            if cut > 0 && bases[drop] != cut {
                throw EventLogError.corrupt(file: directory + "/" + String(format: "%020llu.log", cut), offset: 0,
                                            reason: "the log was pruned to event \(cut) but the segment starting there is missing")
            }
            var expected: UInt64 = names.isEmpty ? 0 : bases[drop]
            let first = expected
            var rec = Recovery(segments: names.count, events: 0, truncatedBytes: 0)
            var sinceIdx = 0
            // A reader sees what the writer has published as fsynced, nothing written after it.
            let bound = access == .read ? try EventLogCore.durableBound(directory) : nil
            for (n, name) in names.enumerated() {
                let path = directory + "/" + name
                let isLast = n == names.count - 1
                sinceIdx = 0
                // A sealed segment with a summary that still matches it: no scan.
                if !isLast, bases[drop + n] == expected,
                   let s = SegmentSummary.load(directory, base: expected, segmentPath: path),
                   bound.map({ $0 >= s.base + s.count }) ?? true {
                    idx += s.entries.map { IndexEntry(id: $0.id, segment: segs.count, offset: $0.offset) }
                    segs.append(Segment(base: s.base, path: path, size: s.fileSize))
                    expected = s.base + s.count
                    continue
                }
                let scan = try EventLogCore.scan(path: path, expectedFirst: expected, isLast: isLast,
                                                 indexEvery: config.indexEvery, segmentNumber: segs.count, sinceIndexed: &sinceIdx,
                                                 bound: bound)
                if !isLast && access == .append && scan.truncateTo == nil {
                    // Written for the next open (an optimisation: a failure only means a scan then).
                    try? SegmentSummary(base: scan.base, count: scan.count, fileSize: scan.fileSize,
                                        entries: scan.index.map { ($0.id, $0.offset) }).write(directory)
                }
                if let cut = scan.truncateTo, access == .append {
                    let fdT = open(path, O_WRONLY | O_CLOEXEC)
                    guard fdT >= 0, ftruncate(fdT, off_t(cut)) == 0, fsync(fdT) == 0 else {
                        let why = String(cString: strerror(errno))
                        if fdT >= 0 { Glibc.close(fdT) }
                        throw EventLogError.io("cannot truncate torn tail of \(path): \(why)")
                    }
                    Glibc.close(fdT)
                    rec.truncatedBytes = scan.fileSize - cut
                    rec.truncatedAt = cut
                    rec.truncatedFile = path
                }
                var size = scan.truncateTo ?? scan.fileSize
                if access == .append && size < EventLogCore.headerBytes {
                    // The header never reached the disk whole: the segment holds no record. Write
                    // the header completely (file and directory fsynced) before anything follows it.
                    try EventLogCore.writeHeader(path: path, base: scan.base, directory: directory)
                    size = EventLogCore.headerBytes
                }
                segs.append(Segment(base: scan.base, path: path, size: size))
                idx.append(contentsOf: scan.index)
                expected = scan.base + scan.count
                if scan.reachedBound { break }
            }
            rec.events = expected
            self.first = first
            self.marker = marker
            segments = segs
            index = idx
            next = expected
            durableNext = expected
            sinceIndexed = sinceIdx
            recovery = rec
        } catch {
            if lock >= 0 { Glibc.close(lock) }
            throw error
        }
        lockFd = lock
        guard access == .append else { return }
        do {
            if segments.isEmpty { try createSegment(base: 0) } else { try openLastSegment() }
            // What recovery kept may have been written by a writer that died before its fsync:
            // make it durable, then tell readers where the durable log ends.
            guard fdatasync(fd) == 0 else { throw EventLogError.io("fsync \(segments.last!.path): \(String(cString: strerror(errno)))") }
            let w = directory + "/" + EventLogCore.durableName
            watermarkFd = open(w, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard watermarkFd >= 0 else { throw EventLogError.io("open \(w): \(String(cString: strerror(errno)))") }
            publishDurable(next)
        } catch {
            if fd >= 0 { Glibc.close(fd); fd = -1 }
            if watermarkFd >= 0 { Glibc.close(watermarkFd); watermarkFd = -1 }
            Glibc.close(lockFd)
            lockFd = -1
            throw error
        }
        let t = Thread { [self] in self.writerLoop() }
        t.name = "foryou.eventlog.writer"
        writer = t
        t.start()
    }

    /// Takes `DIR/writer.lock` (an exclusive, non-blocking `flock`, released when the process
    /// exits however it exits) and records this process's id in it.
    static func lockWriter(_ directory: String) throws -> Int32 {
        let path = directory + "/" + lockName
        let f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard f >= 0 else { throw EventLogError.io("open \(path): \(String(cString: strerror(errno)))") }
        while flock(f, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let err = errno
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(f, &buf, 32, 0)
            Glibc.close(f)
            guard err == EWOULDBLOCK else { throw EventLogError.io("lock \(path): \(String(cString: strerror(err)))") }
            let text = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            throw EventLogError.locked(directory: directory, pid: Int32(text))
        }
        let pid = Array("\(getpid())\n".utf8)
        guard ftruncate(f, 0) == 0, pwrite(f, pid, pid.count, 0) == pid.count else {
            let why = String(cString: strerror(errno))
            Glibc.close(f)
            throw EventLogError.io("write \(path): \(why)")
        }
        return f
    }

    /// Writes a segment's 16-byte header over whatever (shorter) content the file has, then
    /// fsyncs the file and its directory.
    static func writeHeader(path: String, base: UInt64, directory: String) throws {
        let f = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard f >= 0 else { throw EventLogError.io("open \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(f) }
        let header = EventLogCore.header(base: base)
        guard pwrite(f, header, header.count, 0) == header.count, fsync(f) == 0 else {
            throw EventLogError.io("rewrite the header of \(path): \(String(cString: strerror(errno)))")
        }
        try fsyncDirectory(directory)
    }

    static func header(base: UInt64) -> [UInt8] {
        var h = magic
        withUnsafeBytes(of: base.littleEndian) { h.append(contentsOf: $0) }
        return h
    }

    static func fsyncDirectory(_ directory: String) throws {
        let d = open(directory, O_RDONLY | O_CLOEXEC)
        guard d >= 0 else { throw EventLogError.io("open \(directory): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(d) }
        guard fsync(d) == 0 else { throw EventLogError.io("fsync \(directory): \(String(cString: strerror(errno)))") }
    }

    /// Reads `count` bytes of `path` from `offset` (fewer only at the end of the file); every
    /// failure names the file and the offset.
    static func readBytes(_ path: String, offset: Int, count: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        let f = open(path, O_RDONLY | O_CLOEXEC)
        guard f >= 0 else { throw EventLogError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { Glibc.close(f) }
        // Not zero-filled first (segments are tens of MiB): only the bytes read are kept.
        var failure: EventLogError?
        let out = [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            var got = 0
            while got < count {
                let n = pread(f, buf.baseAddress! + got, count - got, off_t(offset + got))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = .io("cannot read \(path) at byte offset \(offset + got): \(String(cString: strerror(errno)))")
                    break
                }
                if n == 0 { break }
                got += n
            }
            initialized = failure == nil ? got : 0
        }
        if let failure { throw failure }
        return out
    }

    /// Everything from `offset` to the file's current end.
    static func readTail(_ path: String, from offset: Int) throws -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw EventLogError.io("cannot stat \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw EventLogError.io("cannot read \(path): not a regular file") }
        return try readBytes(path, offset: offset, count: max(0, Int(st.st_size) - offset))
    }

    /// The whole file (its size from stat), failures naming the file.
    static func readFile(_ path: String) throws -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw EventLogError.io("cannot stat \(path): \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw EventLogError.io("cannot read \(path): not a regular file") }
        return try readBytes(path, offset: 0, count: Int(st.st_size))
    }

    /// Stops the writer after the queued appends are done.
    public func close() {
        cond.lock()
        if closing && writer?.isFinished != false { cond.unlock(); return }
        closing = true
        cond.broadcast()
        cond.unlock()
        while writer?.isFinished == false { usleep(1000) }
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        if watermarkFd >= 0 { Glibc.close(watermarkFd); watermarkFd = -1 }
        if lockFd >= 0 { Glibc.close(lockFd); lockFd = -1 }
    }

    // MARK: appending

    /// Appends events durably; returns their ids once they are fsynced.
    public func append(_ drafts: [EventDraft]) async throws -> [UInt64] {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt64], Error>) in
            enqueue(drafts) { c.resume(with: $0) }
        }
    }

    /// Blocking variant for command-line tools and generators.
    public func appendSync(_ drafts: [EventDraft]) throws -> [UInt64] {
        let sem = DispatchSemaphore(value: 0)
        var result: Result<[UInt64], Error> = .success([])
        enqueue(drafts) { result = $0; sem.signal() }
        sem.wait()
        return try result.get()
    }

    func enqueue(_ drafts: [EventDraft], _ done: @escaping Completion) {
        for d in drafts {
            if d.user.utf8.count > EventCodec.maxField || d.video.utf8.count > EventCodec.maxField
                || d.idempotencyKey.utf8.count > EventCodec.maxField || d.extra.utf8.count > EventCodec.maxField {
                done(.failure(EventLogError.invalid("event field longer than \(EventCodec.maxField) bytes")))
                return
            }
        }
        guard access == .append else {
            done(.failure(EventLogError.readOnly(directory)))
            return
        }
        cond.lock()
        if let f = failure {
            cond.unlock()
            done(.failure(EventLogError.writerStopped(f)))
            return
        }
        if closing {
            cond.unlock()
            done(.failure(EventLogError.writerStopped("log closed")))
            return
        }
        pending.append((drafts, done))
        cond.signal()
        cond.unlock()
    }

    private func writerLoop() {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        var payload: [UInt8] = []
        while true {
            cond.lock()
            while pending.isEmpty && !closing { cond.wait() }
            if pending.isEmpty && closing { cond.unlock(); return }
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            let failed = failure
            cond.unlock()
            if let failed {
                for b in batch { b.done(.failure(EventLogError.writerStopped(failed))) }
                continue
            }
            do {
                if segments.last!.size >= config.segmentBytes { try roll() }
                buffer.removeAll(keepingCapacity: true)
                var ids: [[UInt64]] = []
                var newIndex: [IndexEntry] = []
                let segNo = segments.count - 1
                let startSize = segments[segNo].size
                var count = 0
                for b in batch {
                    var mine: [UInt64] = []
                    for d in b.drafts {
                        let id = next
                        next += 1
                        if sinceIndexed == 0 { newIndex.append(IndexEntry(id: id, segment: segNo, offset: startSize + buffer.count)) }
                        sinceIndexed = (sinceIndexed + 1) % config.indexEvery
                        payload.removeAll(keepingCapacity: true)
                        EventCodec.encode(id: id, d, into: &payload)
                        let crc = payload.withUnsafeBytes { CRC32C.checksum($0) }
                        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { buffer.append(contentsOf: $0) }
                        withUnsafeBytes(of: crc.littleEndian) { buffer.append(contentsOf: $0) }
                        buffer.append(contentsOf: payload)
                        mine.append(id)
                        count += 1
                    }
                    ids.append(mine)
                }
                try writeAll(buffer)
                guard fdatasync(fd) == 0 else { throw EventLogError.io("fsync \(segments[segNo].path): \(String(cString: strerror(errno)))") }
                try config.afterSync?()
                publishDurable(next)
                cond.lock()
                segments[segNo].size = startSize + buffer.count
                index.append(contentsOf: newIndex)
                durableNext = next
                batchSizes.append(count)
                if batchSizes.count > 4096 { batchSizes.removeFirst(2048) }
                cond.unlock()
                config.onCommit?(count)
                for (b, i) in zip(batch, ids) { b.done(.success(i)) }
            } catch {
                // Never retry into a silent acknowledgement: stop the writer for good.
                cond.lock()
                failure = "\(error)"
                cond.unlock()
                for b in batch { b.done(.failure(EventLogError.writerStopped("\(error)"))) }
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw EventLogError.io("write \(segments.last!.path): \(String(cString: strerror(errno)))")
            }
            off += n
        }
    }

    private func segmentPath(_ base: UInt64) -> String {
        directory + "/" + String(format: "%020llu.log", base)
    }

    private func createSegment(base: UInt64) throws {
        let path = segmentPath(base)
        let f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        guard f >= 0 else { throw EventLogError.io("create \(path): \(String(cString: strerror(errno)))") }
        let header = EventLogCore.header(base: base)
        let ok = header.withUnsafeBytes { Glibc.write(f, $0.baseAddress!, header.count) } == header.count
        guard ok, fsync(f) == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(f)
            throw EventLogError.io("initialise \(path): \(why)")
        }
        do { try EventLogCore.fsyncDirectory(directory) } catch { Glibc.close(f); throw error }
        if fd >= 0 { Glibc.close(fd) }
        fd = f
        cond.lock()
        segments.append(Segment(base: base, path: path, size: EventLogCore.headerBytes))
        cond.unlock()
        sinceIndexed = 0
    }

    private func openLastSegment() throws {
        let path = segments.last!.path
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw EventLogError.io("open \(path): \(String(cString: strerror(errno)))") }
    }

    private func roll() throws {
        // The segment being sealed gets its summary, so the next open need not scan it (best
        // effort: without one, the open scans).
        cond.lock()
        let sealed = segments.count - 1, last = segments[sealed]
        let entries = index[((index.lastIndex { $0.segment != sealed }).map { $0 + 1 } ?? 0)...]  // the index's tail
        cond.unlock()
        try? SegmentSummary(base: last.base, count: next - last.base, fileSize: last.size,
                            entries: entries.map { ($0.id, $0.offset) }).write(directory)
        try createSegment(base: next)
    }

    // MARK: recovery scan

    struct ScanResult {
        var base: UInt64
        var count: UInt64
        var fileSize: Int
        var truncateTo: Int?
        var index: [IndexEntry]
        /// The scan stopped at the durable bound (a reader; what follows is not yet known durable).
        var reachedBound = false
    }

    static func scan(path: String, expectedFirst: UInt64, isLast: Bool, indexEvery: Int, segmentNumber: Int,
                     sinceIndexed: inout Int, bound: UInt64? = nil) throws -> ScanResult {
        let bytes = try readFile(path)
        let name = (path as NSString).lastPathComponent
        if bytes.count < headerBytes {
            // A segment whose header never reached the disk whole (a crash between creating the
            // file and its fsync): only acceptable as the last one, named for the next id, and
            // holding a prefix of its header or zeros. It holds no record.
            let expectedHeader = header(base: expectedFirst)
            if isLast && name == String(format: "%020llu.log", expectedFirst)
                && (bytes.allSatisfy({ $0 == 0 }) || bytes[...] == expectedHeader.prefix(bytes.count)) {
                return ScanResult(base: expectedFirst, count: 0, fileSize: bytes.count, truncateTo: nil, index: [])
            }
            throw EventLogError.corrupt(file: path, offset: 0, reason: "segment header is incomplete")
        }
        guard Array(bytes[0..<8]) == magic else { throw EventLogError.corrupt(file: path, offset: 0, reason: "not an event log segment") }
        let base = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
        guard base == expectedFirst, name == String(format: "%020llu.log", base) else {
            throw EventLogError.corrupt(file: path, offset: 8, reason: "segment starts at id \(base), expected \(expectedFirst)")
        }
        var pos = headerBytes
        var count: UInt64 = 0
        var index: [IndexEntry] = []
        var truncateTo: Int?
        var reachedBound = false
        try bytes.withUnsafeBytes { b in
            while pos < b.count {
                func fail(_ why: String, recordEnd: Int?) throws {
                    // A torn tail: the damage reaches the end of the last segment, or only zeros follow.
                    let tailIsZero = b[pos...].allSatisfy { $0 == 0 }
                    if isLast && (recordEnd == nil || recordEnd! >= b.count || tailIsZero) {
                        truncateTo = pos
                        return
                    }
                    throw EventLogError.corrupt(file: path, offset: pos, reason: why)
                }
                guard pos + 8 <= b.count else { try fail("incomplete record header", recordEnd: nil); break }
                let len = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: pos, as: UInt32.self)))
                let crc = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: pos + 4, as: UInt32.self))
                guard len > 0, len <= maxRecord else { try fail("implausible record length \(len)", recordEnd: nil); break }
                let end = pos + 8 + len
                guard end <= b.count else { try fail("record runs past the end of the file", recordEnd: end); break }
                let payload = UnsafeRawBufferPointer(rebasing: b[(pos + 8)..<end])
                guard CRC32C.checksum(payload) == crc else { try fail("checksum mismatch", recordEnd: end); break }
                // The record's structure and id, checked without building the event (its strings).
                guard let id = EventCodec.validatedId(payload) else { try fail("undecodable record", recordEnd: end); break }
                guard id == base + count else {
                    throw EventLogError.corrupt(file: path, offset: pos, reason: "record id \(id), expected \(base + count)")
                }
                if let bound, id >= bound {  // written, not yet known durable: a reader stops here
                    truncateTo = pos
                    reachedBound = true
                    break
                }
                if sinceIndexed == 0 { index.append(IndexEntry(id: id, segment: segmentNumber, offset: pos)) }
                sinceIndexed = (sinceIndexed + 1) % indexEvery
                count += 1
                pos = end
            }
        }
        return ScanResult(base: base, count: count, fileSize: bytes.count, truncateTo: truncateTo, index: index,
                          reachedBound: reachedBound)
    }

    // MARK: reading

    /// Picks up records another process appended since this log was opened (or last refreshed):
    /// complete, checksummed records only, stopping quietly at a record still being written;
    /// follows new segments. For readers; the process that appends does not need it. A file that
    /// cannot be read is an error naming it and the offset.
    func refreshFromDisk() throws {
        // A prune in another process: reads below its cut now say so (the segments are gone).
        if let m = try PruneMarker.load(directory) {
            cond.lock()
            if m.first > first { first = m.first; marker = m }
            cond.unlock()
        }
        cond.lock()
        var segs = segments
        var next = durableNext
        var newIndex: [IndexEntry] = []
        cond.unlock()
        if segs.isEmpty {
            // Opened before the writer created the first segment.
            let first = directory + "/" + String(format: "%020llu.log", UInt64(0))
            guard FileManager.default.fileExists(atPath: first) else { return }
            segs.append(Segment(base: 0, path: first, size: 0))
        }
        var sinceIdx = Int(next % UInt64(config.indexEvery))
        let bound = try EventLogCore.durableBound(directory) ?? .max
        while true {
            let segNo = segs.count - 1
            if segs[segNo].size < EventLogCore.headerBytes {
                // The writer is creating (or re-writing) this segment's header: wait for all of it.
                let h = try EventLogCore.readBytes(segs[segNo].path, offset: 0, count: EventLogCore.headerBytes)
                guard h == EventLogCore.header(base: segs[segNo].base) else { break }
                segs[segNo].size = EventLogCore.headerBytes
            }
            var pos = segs[segNo].size
            let data = try EventLogCore.readTail(segs[segNo].path, from: pos)
            data.withUnsafeBytes { b in
                var p = 0
                while p + 8 <= b.count {
                    let len = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: p, as: UInt32.self)))
                    let crc = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: p + 4, as: UInt32.self))
                    guard len > 0, len <= EventLogCore.maxRecord, p + 8 + len <= b.count else { break }
                    let payload = UnsafeRawBufferPointer(rebasing: b[(p + 8)..<(p + 8 + len)])
                    guard CRC32C.checksum(payload) == crc, let id = EventCodec.validatedId(payload), id == next, id < bound else { break }
                    if sinceIdx == 0 { newIndex.append(IndexEntry(id: id, segment: segNo, offset: pos + p)) }
                    sinceIdx = (sinceIdx + 1) % config.indexEvery
                    next += 1
                    p += 8 + len
                }
                pos += p
            }
            segs[segNo].size = pos
            // The writer rolled to a new segment starting at `next`?
            let following = directory + "/" + String(format: "%020llu.log", next)
            guard next > segs[segNo].base, FileManager.default.fileExists(atPath: following) else { break }
            segs.append(Segment(base: next, path: following, size: 0))
        }
        cond.lock()
        segments = segs
        index.append(contentsOf: newIndex)
        durableNext = next
        cond.unlock()
    }

    /// The id the next appended event will get (= number of durable events).
    public var endId: UInt64 {
        cond.lock(); defer { cond.unlock() }
        return durableNext
    }

    /// Durable events with id >= `from`, at most `limit`, in order.
    public func read(from: UInt64, limit: Int = 10_000) throws -> [Event] {
        var out: [Event] = []
        try forEach(from: from, limit: limit) { out.append($0) }
        return out
    }

    /// Visits durable events with id >= `from` in order (at most `limit`). A segment that cannot
    /// be read, or a record that no longer checks out, is an error naming the file and offset:
    /// never a quiet end of the log.
    public func forEach(from: UInt64, limit: Int = Int.max, _ body: (Event) throws -> Void) throws {
        guard from >= firstId || limit <= 0 else { throw EventLogError.pruned(directory: directory, first: firstId, requested: from) }
        cond.lock()
        let segs = segments
        let end = durableNext
        let startEntry = index.last(where: { $0.id <= from })
        cond.unlock()
        guard from < end, limit > 0 else { return }
        var segNo = startEntry?.segment ?? 0
        var offset = startEntry?.offset ?? EventLogCore.headerBytes
        // Segments after the indexed one may start closer to `from`.
        if let later = segs.lastIndex(where: { $0.base <= from }), later > segNo { segNo = later; offset = EventLogCore.headerBytes }
        var delivered = 0
        var expected: UInt64? = nil
        while segNo < segs.count {
            let seg = segs[segNo]
            if seg.base >= end { return }
            let bytes = try EventLogCore.readBytes(seg.path, offset: offset, count: max(0, seg.size - offset))
            guard bytes.count == max(0, seg.size - offset) else {
                throw EventLogError.corrupt(file: seg.path, offset: offset + bytes.count,
                                            reason: "the segment ends before its \(seg.size) durable bytes")
            }
            var pos = 0
            let stop: Bool = try bytes.withUnsafeBytes { b in
                while pos < b.count {
                    let at = offset + pos
                    guard pos + 8 <= b.count else {
                        throw EventLogError.corrupt(file: seg.path, offset: at, reason: "incomplete record header")
                    }
                    let len = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: pos, as: UInt32.self)))
                    let crc = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: pos + 4, as: UInt32.self))
                    guard len > 0, len <= EventLogCore.maxRecord, pos + 8 + len <= b.count else {
                        throw EventLogError.corrupt(file: seg.path, offset: at, reason: "implausible record length \(len)")
                    }
                    let payload = UnsafeRawBufferPointer(rebasing: b[(pos + 8)..<(pos + 8 + len)])
                    guard CRC32C.checksum(payload) == crc else {
                        throw EventLogError.corrupt(file: seg.path, offset: at, reason: "checksum mismatch")
                    }
                    guard let e = EventCodec.decode(payload) else {
                        throw EventLogError.corrupt(file: seg.path, offset: at, reason: "undecodable record")
                    }
                    if let x = expected, e.id != x {
                        throw EventLogError.corrupt(file: seg.path, offset: at, reason: "record id \(e.id), expected \(x)")
                    }
                    expected = e.id + 1
                    pos += 8 + len
                    if e.id >= end { return true }
                    if e.id < from { continue }
                    try body(e)
                    delivered += 1
                    if delivered >= limit { return true }
                }
                return false
            }
            if stop { return }
            segNo += 1
            offset = EventLogCore.headerBytes
        }
    }

    public var stats: Stats {
        cond.lock(); defer { cond.unlock() }
        return Stats(events: durableNext - first, segments: segments.count, bytes: segments.reduce(0) { $0 + $1.size },
                     firstId: durableNext > first ? first : nil, lastId: durableNext > first ? durableNext - 1 : nil)
    }

    /// Events per fsync of recent group commits (for metrics).
    public var recentBatchSizes: [Int] {
        cond.lock(); defer { cond.unlock() }
        return batchSizes
    }

    /// Whether the writer has stopped after a failure (the server reports 503 then).
    public var writerFailure: String? {
        cond.lock(); defer { cond.unlock() }
        return failure
    }
}

/// An append-only, segmented, checksummed event log with group commit.
///
/// Files: `DIR/<first id, 20 digits>.log`, each starting with an 8-byte magic and the segment's
/// first id, then records `u32 length | u32 CRC-32C(payload) | payload` (see `EventCodec`).
/// `append` returns only after the records are written *and* fsynced; one fsync covers every
/// append that queued while the previous one ran. A failed write or fsync stops the writer for
/// good: that append and every later one fail, nothing is acknowledged that is not on disk.
/// Opening recovers a torn tail of the last segment by truncating it (and says so); damage
/// anywhere else stops the open with the file and offset.
public final class EventLog: @unchecked Sendable {
    public typealias Config = EventLogConfig
    public typealias Recovery = EventLogRecovery
    public typealias Stats = EventLogStats

    let core: EventLogCore

    /// Opens (creating if needed) the log in `directory`: for reading (the default; nothing on
    /// disk changes) or, with `.append`, as its one writer (takes `writer.lock`, fails at once
    /// with `EventLogError.locked` naming the holder's PID, and recovers a torn tail).
    public init(directory: String, config: Config = Config(), access: EventLogAccess = .read) throws {
        core = try EventLogCore(directory: directory, config: config, access: access)
    }

    public var access: EventLogAccess { core.access }

    deinit { core.close() }

    public var directory: String { core.directory }
    public var recovery: Recovery { core.recovery }
    /// Appends events durably; returns their ids once they are fsynced.
    public func append(_ drafts: [EventDraft]) async throws -> [UInt64] { try await core.append(drafts) }
    /// Blocking variant for command-line tools and generators.
    public func appendSync(_ drafts: [EventDraft]) throws -> [UInt64] { try core.appendSync(drafts) }
    /// The id the next appended event will get (= number of durable events).
    public var endId: UInt64 { core.endId }
    /// Durable events with id >= `from`, at most `limit`, in order.
    public func read(from: UInt64, limit: Int = 10_000) throws -> [Event] { try core.read(from: from, limit: limit) }
    /// Visits durable events with id >= `from` in order (at most `limit`); a read error or a
    /// damaged record throws, naming the file and offset.
    public func forEach(from: UInt64, limit: Int = Int.max, _ body: (Event) throws -> Void) throws {
        try core.forEach(from: from, limit: limit, body)
    }
    public var stats: Stats { core.stats }
    /// The first event the log holds: 0, or where it was pruned (`foryou events prune`).
    public var firstId: UInt64 { core.firstId }
    /// Where the log was pruned, if it was.
    public var pruneMarker: PruneMarker? { core.pruneMarker }
    /// `Event.fingerprint` of event `id` (nil when the log does not hold it); for the last event a
    /// prune removed, the one its marker recorded.
    public func fingerprint(of id: UInt64) -> UInt64? {
        if let m = core.pruneMarker, m.first > 0, id == m.first - 1 { return m.fingerprint }
        guard id >= core.firstId, let e = try? core.read(from: id, limit: 1).first, e.id == id else { return nil }
        return e.fingerprint
    }
    /// Events per fsync of recent group commits (for metrics).
    public var recentBatchSizes: [Int] { core.recentBatchSizes }
    /// Set when the writer stopped after a failed write or fsync.
    public var writerFailure: String? { core.writerFailure }
    /// Finishes queued appends and stops the writer.
    public func close() { core.close() }
    /// Sees records that another process appended since this log was opened (for consumers such
    /// as the ranking worker; never needed by the process that appends).
    public func refresh() throws { try core.refreshFromDisk() }
}
