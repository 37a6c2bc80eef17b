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

    public var description: String {
        switch self {
        case .corrupt(let f, let o, let r):
            return "event log corrupted in \(f) at byte offset \(o): \(r); refusing to skip data (move the damaged segment aside to start)"
        case .writerStopped(let why): return "event log writer stopped after a failed write: \(why)"
        case .io(let s): return "event log I/O error: \(s)"
        case .invalid(let s): return s
        }
    }
}

public struct EventLogConfig: Sendable {
        public var segmentBytes: Int = 64 << 20
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

    private let cond = NSCondition()
    // Guarded by cond:
    private var pending: [(drafts: [EventDraft], done: Completion)] = []
    private var closing = false
    private var failure: String?
    private var segments: [Segment]
    private var index: [IndexEntry]
    private var durableNext: UInt64
    private var batchSizes: [Int] = []
    // Writer-thread only:
    private var fd: Int32 = -1
    private var next: UInt64
    private var sinceIndexed: Int
    private var writer: Thread?

    /// Opens (creating if needed) the log in `directory`, recovering as described above.
    public init(directory: String, config: Config = Config()) throws {
        self.directory = directory
        self.config = config
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".log") && $0.count == 24 }.sorted()
        var segs: [Segment] = []
        var idx: [IndexEntry] = []
        var expected: UInt64 = 0
        var rec = Recovery(segments: names.count, events: 0, truncatedBytes: 0)
        var sinceIdx = 0
        for (n, name) in names.enumerated() {
            let path = directory + "/" + name
            let isLast = n == names.count - 1
            let scan = try EventLogCore.scan(path: path, expectedFirst: expected, isLast: isLast,
                                         indexEvery: config.indexEvery, segmentNumber: segs.count, sinceIndexed: &sinceIdx)
            if let cut = scan.truncateTo {
                let fdT = open(path, O_WRONLY)
                guard fdT >= 0, ftruncate(fdT, off_t(cut)) == 0, fsync(fdT) == 0 else {
                    throw EventLogError.io("cannot truncate torn tail of \(path): \(String(cString: strerror(errno)))")
                }
                Glibc.close(fdT)
                rec.truncatedBytes = scan.fileSize - cut
                rec.truncatedAt = cut
                rec.truncatedFile = path
            }
            segs.append(Segment(base: scan.base, path: path, size: scan.truncateTo ?? scan.fileSize))
            idx.append(contentsOf: scan.index)
            expected = scan.base + scan.count
        }
        rec.events = expected
        segments = segs
        index = idx
        next = expected
        durableNext = expected
        sinceIndexed = sinceIdx
        recovery = rec
        if segments.isEmpty { try createSegment(base: 0) } else { try openLastSegment() }
        let t = Thread { [self] in self.writerLoop() }
        t.name = "foryou.eventlog.writer"
        writer = t
        t.start()
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
        let f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND, 0o644)
        guard f >= 0 else { throw EventLogError.io("create \(path): \(String(cString: strerror(errno)))") }
        var header = EventLogCore.magic
        withUnsafeBytes(of: base.littleEndian) { header.append(contentsOf: $0) }
        let ok = header.withUnsafeBytes { Glibc.write(f, $0.baseAddress!, header.count) } == header.count
        guard ok, fsync(f) == 0 else { Glibc.close(f); throw EventLogError.io("initialise \(path)") }
        let d = open(directory, O_RDONLY)
        if d >= 0 { fsync(d); Glibc.close(d) }
        if fd >= 0 { Glibc.close(fd) }
        fd = f
        cond.lock()
        segments.append(Segment(base: base, path: path, size: EventLogCore.headerBytes))
        cond.unlock()
        sinceIndexed = 0
    }

    private func openLastSegment() throws {
        let path = segments.last!.path
        fd = open(path, O_WRONLY | O_APPEND)
        guard fd >= 0 else { throw EventLogError.io("open \(path): \(String(cString: strerror(errno)))") }
    }

    private func roll() throws {
        try createSegment(base: next)
    }

    // MARK: recovery scan

    struct ScanResult {
        var base: UInt64
        var count: UInt64
        var fileSize: Int
        var truncateTo: Int?
        var index: [IndexEntry]
    }

    static func scan(path: String, expectedFirst: UInt64, isLast: Bool, indexEvery: Int, segmentNumber: Int,
                     sinceIndexed: inout Int) throws -> ScanResult {
        guard let data = FileManager.default.contents(atPath: path) else { throw EventLogError.io("cannot read \(path)") }
        let bytes = [UInt8](data)
        let name = (path as NSString).lastPathComponent
        if bytes.count < headerBytes {
            // A segment whose header never reached the disk: only acceptable as the last one.
            if isLast && bytes.allSatisfy({ $0 == 0 }) || isLast && bytes.count < headerBytes && Array(bytes) == Array(magic.prefix(bytes.count)) {
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
                guard let e = EventCodec.decode(payload) else { try fail("undecodable record", recordEnd: end); break }
                guard e.id == base + count else {
                    throw EventLogError.corrupt(file: path, offset: pos, reason: "record id \(e.id), expected \(base + count)")
                }
                if sinceIndexed == 0 { index.append(IndexEntry(id: e.id, segment: segmentNumber, offset: pos)) }
                sinceIndexed = (sinceIndexed + 1) % indexEvery
                count += 1
                pos = end
            }
        }
        return ScanResult(base: base, count: count, fileSize: bytes.count, truncateTo: truncateTo, index: index)
    }

    // MARK: reading

    /// Picks up records another process appended since this log was opened (or last refreshed):
    /// complete, checksummed records only, stopping quietly at a record still being written;
    /// follows new segments. For consumers; a process that appends to this log does not need it.
    func refreshFromDisk() throws {
        cond.lock()
        var segs = segments
        var next = durableNext
        var newIndex: [IndexEntry] = []
        cond.unlock()
        var sinceIdx = Int(next % UInt64(config.indexEvery))
        while true {
            let segNo = segs.count - 1
            var pos = segs[segNo].size
            if let fh = FileHandle(forReadingAtPath: segs[segNo].path) {
                defer { try? fh.close() }
                try? fh.seek(toOffset: UInt64(pos))
                let data = (try? fh.readToEnd()) ?? Data()
                data.withUnsafeBytes { b in
                    var p = 0
                    while p + 8 <= b.count {
                        let len = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: p, as: UInt32.self)))
                        let crc = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: p + 4, as: UInt32.self))
                        guard len > 0, len <= EventLogCore.maxRecord, p + 8 + len <= b.count else { break }
                        let payload = UnsafeRawBufferPointer(rebasing: b[(p + 8)..<(p + 8 + len)])
                        guard CRC32C.checksum(payload) == crc, let e = EventCodec.decode(payload), e.id == next else { break }
                        if sinceIdx == 0 { newIndex.append(IndexEntry(id: e.id, segment: segNo, offset: pos + p)) }
                        sinceIdx = (sinceIdx + 1) % config.indexEvery
                        next += 1
                        p += 8 + len
                    }
                    pos += p
                }
            }
            segs[segNo].size = pos
            // The writer rolled to a new segment starting at `next`?
            let following = directory + "/" + String(format: "%020llu.log", next)
            guard next > segs[segNo].base, FileManager.default.fileExists(atPath: following),
                  let attrs = try? FileManager.default.attributesOfItem(atPath: following),
                  ((attrs[.size] as? NSNumber)?.intValue ?? 0) >= EventLogCore.headerBytes else { break }
            segs.append(Segment(base: next, path: following, size: EventLogCore.headerBytes))
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

    /// Visits durable events with id >= `from` in order (at most `limit`).
    public func forEach(from: UInt64, limit: Int = Int.max, _ body: (Event) throws -> Void) rethrows {
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
        while segNo < segs.count {
            let seg = segs[segNo]
            let size = segNo == segs.count - 1 ? seg.size : seg.size
            guard let fh = FileHandle(forReadingAtPath: seg.path) else { return }
            defer { try? fh.close() }
            try? fh.seek(toOffset: UInt64(offset))
            let data = (try? fh.read(upToCount: max(0, size - offset))) ?? Data()
            var pos = 0
            let stop: Bool = try data.withUnsafeBytes { b in
                while pos + 8 <= b.count {
                    let len = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: pos, as: UInt32.self)))
                    guard pos + 8 + len <= b.count,
                          let e = EventCodec.decode(UnsafeRawBufferPointer(rebasing: b[(pos + 8)..<(pos + 8 + len)])) else { break }
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
        return Stats(events: durableNext, segments: segments.count, bytes: segments.reduce(0) { $0 + $1.size },
                     firstId: durableNext > 0 ? 0 : nil, lastId: durableNext > 0 ? durableNext - 1 : nil)
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

    /// Opens (creating if needed) the log in `directory`, recovering a torn tail.
    public init(directory: String, config: Config = Config()) throws {
        core = try EventLogCore(directory: directory, config: config)
    }

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
    /// Visits durable events with id >= `from` in order (at most `limit`).
    public func forEach(from: UInt64, limit: Int = Int.max, _ body: (Event) throws -> Void) rethrows {
        try core.forEach(from: from, limit: limit, body)
    }
    public var stats: Stats { core.stats }
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
