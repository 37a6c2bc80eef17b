import XCTest
@testable import EventLog
import TestSupport

final class EventLogTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("eventlog") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func draft(_ n: Int, user: String = "u", key: String = "") -> EventDraft {
        EventDraft(user: "\(user)\(n % 7)", video: "v\(n)", type: EventType.allCases[n % 6], watchMs: UInt32(n * 10),
                   timeMs: 1_700_000_000_000 + Int64(n), idempotencyKey: key, extra: n % 2 == 0 ? "{\"exp\":\"a\"}" : "")
    }

    func segmentFiles() -> [String] {
        (try! FileManager.default.contentsOfDirectory(atPath: dir)).filter { $0.hasSuffix(".log") }.sorted().map { dir + "/" + $0 }
    }

    func testAppendReadReopen() throws {
        var log: EventLog? = try EventLog(directory: dir, access: .append)
        let ids = try log!.appendSync((0..<10).map { draft($0) })
        XCTAssertEqual(ids, Array(0..<10))
        let back = try log!.read(from: 3, limit: 4)
        XCTAssertEqual(back.map(\.id), [3, 4, 5, 6])
        XCTAssertEqual(back[0].draft, draft(3))
        log = nil
        let again = try EventLog(directory: dir, access: .append)
        XCTAssertEqual(again.recovery.events, 10)
        XCTAssertNil(again.recovery.message)
        XCTAssertEqual(try again.appendSync([draft(10)]), [10])
        XCTAssertEqual(try again.read(from: 0).map(\.draft), (0...10).map { draft($0) })
    }

    func testConcurrentAppendsShareFsyncsAndGetDistinctIds() async throws {
        let log = try EventLog(directory: dir, access: .append)
        let ids = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for t in 0..<16 {
                group.addTask {
                    var mine: [UInt64] = []
                    for n in 0..<50 { mine += try await log.append([self.draft(t * 100 + n)]) }
                    return mine
                }
            }
            var all: [UInt64] = []
            for try await m in group { all += m }
            return all
        }
        XCTAssertEqual(Set(ids).count, 800)
        XCTAssertEqual(ids.max(), 799)
        XCTAssertEqual(log.endId, 800)
        XCTAssertEqual(try log.read(from: 0, limit: 10_000).count, 800)
        // Group commit: fewer fsyncs than appends.
        XCTAssertLessThan(log.recentBatchSizes.count, 800)
    }

    func testSegmentsRollAndReadAcrossThem() throws {
        var cfg = EventLog.Config()
        cfg.segmentBytes = 600
        cfg.indexEvery = 3
        var log: EventLog? = try EventLog(directory: dir, config: cfg, access: .append)
        for n in 0..<60 { _ = try log!.appendSync([draft(n)]) }
        XCTAssertGreaterThan(segmentFiles().count, 3)
        XCTAssertEqual(try log!.read(from: 37, limit: 5).map(\.id), [37, 38, 39, 40, 41])
        log = nil
        let again = try EventLog(directory: dir, config: cfg, access: .append)
        XCTAssertEqual(again.endId, 60)
        XCTAssertEqual(try again.read(from: 0).map(\.id), Array(0..<60))
    }

    func testTornTailIsTruncatedAndReported() throws {
        var log: EventLog? = try EventLog(directory: dir, access: .append)
        _ = try log!.appendSync((0..<5).map { draft($0) })
        log = nil
        let seg = segmentFiles().last!
        let good = try Data(contentsOf: URL(fileURLWithPath: seg))
        // Half of a record: a header that promises more bytes than follow.
        var torn = good
        torn.append(contentsOf: [200, 0, 0, 0, 1, 2, 3, 4, 9, 9])
        try torn.write(to: URL(fileURLWithPath: seg))
        let again = try EventLog(directory: dir, access: .append)
        XCTAssertEqual(again.recovery.truncatedBytes, 10)
        XCTAssertEqual(again.recovery.truncatedAt, good.count)
        XCTAssertTrue(again.recovery.message!.contains("torn tail"))
        XCTAssertEqual(again.endId, 5)
        XCTAssertEqual(try again.appendSync([draft(5)]), [5])
        XCTAssertEqual(try again.read(from: 0).count, 6)
    }

    func testCorruptLastRecordIsTreatedAsTornTail() throws {
        var log: EventLog? = try EventLog(directory: dir, access: .append)
        _ = try log!.appendSync((0..<5).map { draft($0) })
        log = nil
        let seg = segmentFiles().last!
        var bytes = try Data(contentsOf: URL(fileURLWithPath: seg))
        bytes[bytes.count - 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: seg))
        let again = try EventLog(directory: dir, access: .append)
        XCTAssertEqual(again.endId, 4)
        XCTAssertGreaterThan(again.recovery.truncatedBytes, 0)
    }

    func testCorruptionInTheMiddleStopsStartupWithTheOffset() throws {
        var log: EventLog? = try EventLog(directory: dir, access: .append)
        _ = try log!.appendSync((0..<5).map { draft($0) })
        log = nil
        let seg = segmentFiles().last!
        var bytes = try Data(contentsOf: URL(fileURLWithPath: seg))
        bytes[16 + 8 + 3] ^= 0xFF  // inside the first record's payload
        try bytes.write(to: URL(fileURLWithPath: seg))
        XCTAssertThrowsError(try EventLog(directory: dir, access: .append)) { e in
            XCTAssertEqual(e as? EventLogError, .corrupt(file: seg, offset: 16, reason: "checksum mismatch"))
            XCTAssertTrue("\(e)".contains("offset 16"))
        }
    }

    /// Opening checks each record's structure without building the event: the light check
    /// accepts exactly what the decoder accepts, on valid records and on thousands of damaged ones.
    func testTheOpeningCheckAcceptsExactlyWhatTheDecoderAccepts() {
        var x: UInt64 = 9
        func next() -> Int { x = x &* 6364136223846793005 &+ 1442695040888963407; return Int(x >> 33) }
        for n in 0..<400 {
            var bytes: [UInt8] = []
            EventCodec.encode(id: UInt64(n * 31), draft(n, key: n % 3 == 0 ? "k\(n)" : ""), into: &bytes)
            var cases = [bytes, Array(bytes.prefix(next() % bytes.count)), bytes + [0]]
            for _ in 0..<8 {
                var b = bytes
                b[next() % b.count] = UInt8(next() % 256)
                cases.append(b)
            }
            for c in cases {
                c.withUnsafeBytes { p in XCTAssertEqual(EventCodec.validatedId(p), EventCodec.decode(p)?.id, "record \(n): \(c)") }
            }
        }
    }

    func testCorruptionInAnEarlierSegmentStopsStartup() throws {
        var cfg = EventLog.Config()
        cfg.segmentBytes = 300
        var log: EventLog? = try EventLog(directory: dir, config: cfg, access: .append)
        for n in 0..<20 { _ = try log!.appendSync([draft(n)]) }
        log = nil
        let first = segmentFiles().first!
        var bytes = try Data(contentsOf: URL(fileURLWithPath: first))
        bytes[bytes.count - 2] ^= 0x01  // its last record: a tail, but not of the last segment
        try bytes.write(to: URL(fileURLWithPath: first))
        // A sealed segment with its summary is not scanned at open: the damage stops the first
        // read that reaches it, naming the file.
        let opened = try EventLog(directory: dir, config: cfg)
        XCTAssertThrowsError(try opened.read(from: 0, limit: 100)) { e in
            guard case .corrupt(let f, _, _)? = e as? EventLogError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, first)
        }
        opened.close()
        // Without the summary the open scans it and stops there, as before.
        let summary = String(first.dropLast(4)) + ".idx"
        XCTAssertTrue(FileManager.default.fileExists(atPath: summary))
        try FileManager.default.removeItem(atPath: summary)
        XCTAssertThrowsError(try EventLog(directory: dir, config: cfg, access: .append)) { e in
            guard case .corrupt(let f, _, _)? = e as? EventLogError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, first)
        }
    }

    // MARK: sealed-segment summaries and pruning (issue 21)

    func testSealedSegmentSummariesOpenToTheSameLogWithoutAScan() throws {
        var cfg = EventLog.Config()
        cfg.segmentBytes = 500
        cfg.indexEvery = 3
        var log: EventLog? = try EventLog(directory: dir, config: cfg, access: .append)
        for n in 0..<80 { _ = try log!.appendSync([draft(n)]) }
        log = nil
        let segs = segmentFiles()
        XCTAssertGreaterThan(segs.count, 4)
        // Every sealed segment has a summary, the segment being written none.
        for s in segs.dropLast() { XCTAssertTrue(FileManager.default.fileExists(atPath: String(s.dropLast(4)) + ".idx"), s) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: String(segs.last!.dropLast(4)) + ".idx"))
        // The summary of a scanned segment equals the one the writer wrote when it sealed it.
        let base = UInt64((segs[1] as NSString).lastPathComponent.prefix(20))!
        let written = SegmentSummary.load(dir, base: base, segmentPath: segs[1])
        XCTAssertNotNil(written)
        var since = 0
        let scan = try EventLogCore.scan(path: segs[1], expectedFirst: base, isLast: false, indexEvery: 3, segmentNumber: 0,
                                         sinceIndexed: &since)
        XCTAssertEqual(written, SegmentSummary(base: base, count: scan.count, fileSize: scan.fileSize,
                                               entries: scan.index.map { ($0.id, $0.offset) }))
        let withSummaries = try EventLog(directory: dir, config: cfg)
        let all = try withSummaries.read(from: 0, limit: 1000)
        let reads = try (0..<80).map { try withSummaries.read(from: UInt64($0), limit: 2).map(\.id) }
        withSummaries.close()
        XCTAssertEqual(all.map(\.draft), (0..<80).map { draft($0) })
        // A summary that no longer matches its segment (another size, a damaged file) is ignored:
        // the segment is scanned, and the writer writes the summary again.
        let idx1 = String(segs[1].dropLast(4)) + ".idx"
        var damaged = try Data(contentsOf: URL(fileURLWithPath: idx1))
        damaged[20] ^= 0xff
        try damaged.write(to: URL(fileURLWithPath: idx1))
        try FileManager.default.removeItem(atPath: String(segs[2].dropLast(4)) + ".idx")
        let rescanned = try EventLog(directory: dir, config: cfg, access: .append)
        XCTAssertEqual(try rescanned.read(from: 0, limit: 1000).map(\.draft), all.map(\.draft))
        XCTAssertEqual(try (0..<80).map { try rescanned.read(from: UInt64($0), limit: 2).map(\.id) }, reads)
        XCTAssertEqual(rescanned.endId, 80)
        rescanned.close()
        XCTAssertEqual(SegmentSummary.load(dir, base: base, segmentPath: segs[1]), written)
        XCTAssertNotNil(SegmentSummary.load(dir, base: UInt64((segs[2] as NSString).lastPathComponent.prefix(20))!, segmentPath: segs[2]))
        // Every truncation of a summary is rejected.
        let bytes = written!.encoded()
        for cut in 0..<bytes.count { XCTAssertThrowsError(try SegmentSummary.decode(Array(bytes[..<cut]))) }
    }

    func testPruneRemovesWholeSegmentsAndTheLogStartsAtTheCut() throws {
        var cfg = EventLog.Config()
        cfg.segmentBytes = 400
        var log: EventLog? = try EventLog(directory: dir, config: cfg, access: .append)
        for n in 0..<60 { _ = try log!.appendSync([draft(n)]) }
        let bases = log!.segmentBases
        XCTAssertGreaterThan(bases.count, 4)
        let fingerprints = try log!.read(from: 0, limit: 100).map(\.fingerprint)
        // A cut falls on the start of the segment holding the requested id.
        XCTAssertEqual(log!.pruneCut(before: bases[2] + 1), bases[2])
        XCTAssertEqual(log!.pruneCut(before: 0), 0)
        XCTAssertEqual(log!.pruneCut(before: 1_000), bases.last!)
        XCTAssertThrowsError(try EventLog.prune(directory: dir, to: bases[2] + 1))  // not a segment start
        let reader = try EventLog(directory: dir, config: cfg)  // a consumer process, opened before
        // Beside the running writer.
        let r = try EventLog.prune(directory: dir, to: bases[2])
        // The reader learns of it at its next refresh: below the cut is `pruned`, not a missing file.
        XCTAssertEqual(reader.firstId, 0)
        try reader.refresh()
        XCTAssertEqual(reader.firstId, bases[2])
        XCTAssertThrowsError(try reader.read(from: 1)) { e in
            guard case .pruned? = e as? EventLogError else { return XCTFail("\(e)") }
        }
        XCTAssertEqual(try reader.read(from: bases[2], limit: 1).first?.id, bases[2])
        reader.close()
        XCTAssertEqual(r.first, bases[2])
        XCTAssertEqual(r.segments, 2)
        XCTAssertEqual(segmentFiles().count, bases.count - 2)
        XCTAssertEqual(try log!.appendSync([draft(60)]), [60])
        log = nil
        // Reopened: starts at the cut, reads below it are refused, the rest is intact.
        let after = try EventLog(directory: dir, config: cfg, access: .append)
        XCTAssertEqual(after.firstId, bases[2])
        XCTAssertEqual(after.endId, 61)
        XCTAssertEqual(after.stats.events, 61 - bases[2])
        XCTAssertThrowsError(try after.read(from: 0)) { e in
            guard case .pruned(_, let first, let asked)? = e as? EventLogError else { return XCTFail("\(e)") }
            XCTAssertEqual(first, bases[2]); XCTAssertEqual(asked, 0)
        }
        XCTAssertThrowsError(try after.forEachEvent { _ in })
        XCTAssertEqual(try after.forEachRetainedEvent { _ in }, 61 - bases[2])
        XCTAssertEqual(try after.read(from: bases[2], limit: 100).map(\.draft), (Int(bases[2])...60).map { draft($0) })
        // The last removed event's fingerprint comes from the marker; the kept ones from the log.
        XCTAssertEqual(after.fingerprint(of: bases[2] - 1), fingerprints[Int(bases[2]) - 1])
        XCTAssertEqual(after.fingerprint(of: bases[2]), fingerprints[Int(bases[2])])
        XCTAssertNil(after.fingerprint(of: bases[2] - 2))
        XCTAssertEqual(try after.appendSync([draft(61)]), [61])
        after.close()
        // Pruning to where it starts already does nothing; the last segment is never removed.
        XCTAssertEqual(try EventLog.prune(directory: dir, to: bases[2]).segments, 0)
        let end = try EventLog(directory: dir, config: cfg)
        let lastBase = end.segmentBases.last!
        end.close()
        XCTAssertEqual(try EventLog.prune(directory: dir, to: lastBase).first, lastBase)
        let tail = try EventLog(directory: dir, config: cfg, access: .append)
        XCTAssertEqual(tail.segmentBases, [lastBase])
        XCTAssertEqual(try tail.read(from: lastBase, limit: 100).last?.id, 61)
        tail.close()
    }

    func testAnInterruptedPruneIsFinishedAndLostSegmentsAreNotMistakenForAPrune() throws {
        var cfg = EventLog.Config()
        cfg.segmentBytes = 400
        var log: EventLog? = try EventLog(directory: dir, config: cfg, access: .append)
        for n in 0..<60 { _ = try log!.appendSync([draft(n)]) }
        let bases = log!.segmentBases
        let fp = log!.fingerprint(of: bases[3] - 1)!
        log = nil
        // A crash after the marker and the first removal: the rest are still there.
        try PruneMarker(first: bases[3], fingerprint: fp).write(dir)
        try FileManager.default.removeItem(atPath: segmentFiles()[0])
        let reader = try EventLog(directory: dir, config: cfg)  // a reader changes nothing
        XCTAssertEqual(reader.firstId, bases[3])
        XCTAssertEqual(try reader.read(from: bases[3], limit: 1).first?.id, bases[3])
        reader.close()
        XCTAssertEqual(segmentFiles().count, bases.count - 1)
        let writer = try EventLog(directory: dir, config: cfg, access: .append)  // the writer finishes the prune
        XCTAssertEqual(writer.firstId, bases[3])
        writer.close()
        XCTAssertEqual(segmentFiles().count, bases.count - 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/" + String(format: "%020llu.idx", bases[1])))
        // A segment missing after the marker is damage, not a prune.
        try FileManager.default.removeItem(atPath: segmentFiles()[0])
        XCTAssertThrowsError(try EventLog(directory: dir, config: cfg)) { e in
            guard case .corrupt? = e as? EventLogError else { return XCTFail("\(e)") }
        }
        // And a damaged marker stops the open rather than guess where the log starts.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/pruned"))
        XCTAssertThrowsError(try EventLog(directory: dir, config: cfg)) { e in
            guard case .corrupt(let f, _, _)? = e as? EventLogError else { return XCTFail("\(e)") }
            XCTAssertTrue(f.hasSuffix("/pruned"))
        }
    }

    func testFailedFsyncIsNeverAcknowledgedAndStopsTheWriter() throws {
        final class Counter: @unchecked Sendable { var n = 0 }
        let c = Counter()
        var cfg = EventLog.Config()
        cfg.afterSync = {
            c.n += 1
            if c.n >= 2 { throw EventLogError.io("simulated fsync failure") }
        }
        let log = try EventLog(directory: dir, config: cfg, access: .append)
        XCTAssertEqual(try log.appendSync([draft(0)]), [0])
        XCTAssertThrowsError(try log.appendSync([draft(1)]))
        XCTAssertThrowsError(try log.appendSync([draft(2)])) { e in
            guard case .writerStopped? = e as? EventLogError else { return XCTFail("\(e)") }
        }
        XCTAssertNotNil(log.writerFailure)
        // Only the acknowledged event is visible to readers.
        XCTAssertEqual(try log.read(from: 0).map(\.id), [0])
    }

    func testAnotherInstanceFollowsAppendsAcrossSegments() throws {
        var cfg = EventLog.Config()
        cfg.segmentBytes = 400
        cfg.indexEvery = 2
        let writer = try EventLog(directory: dir, config: cfg, access: .append)
        _ = try writer.appendSync((0..<3).map { draft($0) })
        let reader = try EventLog(directory: dir, config: cfg)  // as a consumer process would
        XCTAssertEqual(reader.endId, 3)
        for n in 3..<40 { _ = try writer.appendSync([draft(n)]) }
        XCTAssertEqual(try reader.read(from: 0).count, 3)  // not yet refreshed
        try reader.refresh()
        XCTAssertEqual(reader.endId, 40)
        XCTAssertEqual(try reader.read(from: 0).map(\.draft), (0..<40).map { draft($0) })
        XCTAssertEqual(try reader.read(from: 33, limit: 3).map(\.id), [33, 34, 35])
        // A record still being written (no complete payload yet) is not read.
        let last = segmentFiles().last!
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: last))
        try h.seekToEnd()
        h.write(Data([50, 0, 0, 0, 1, 2, 3, 4, 7]))
        try h.close()
        try reader.refresh()
        XCTAssertEqual(reader.endId, 40)
    }

    // MARK: one writer, safe recovery, loud reads (issue 17)

    func testASecondWriterIsRefusedNamingThePIDAndReadersStillWork() throws {
        let writer = try EventLog(directory: dir, access: .append)
        _ = try writer.appendSync((0..<5).map { draft($0) })
        XCTAssertThrowsError(try EventLog(directory: dir, access: .append)) { e in
            guard case .locked(let d, let pid)? = e as? EventLogError else { return XCTFail("\(e)") }
            XCTAssertEqual(d, dir)
            XCTAssertEqual(pid, getpid())
            XCTAssertTrue("\(e)".contains("process \(getpid())"), "\(e)")
        }
        // Readers need no lock, change nothing, and cannot append.
        let reader = try EventLog(directory: dir)
        XCTAssertEqual(reader.endId, 5)
        XCTAssertThrowsError(try reader.appendSync([draft(9)])) { e in
            guard case .readOnly? = e as? EventLogError else { return XCTFail("\(e)") }
        }
        _ = try writer.appendSync([draft(5)])
        try reader.refresh()
        XCTAssertEqual(try reader.read(from: 0).map(\.id), Array(0..<6))
        // The lock goes with the writer.
        writer.close()
        let next = try EventLog(directory: dir, access: .append)
        XCTAssertEqual(try next.appendSync([draft(6)]), [6])
    }

    func testAReaderNeverCutsATailTheWriterIsStillWriting() throws {
        var log: EventLog? = try EventLog(directory: dir, access: .append)
        _ = try log!.appendSync((0..<4).map { draft($0) })
        log = nil
        let last = segmentFiles().last!
        let before = try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: last))
        try h.seekToEnd()
        h.write(Data([50, 0, 0, 0, 1, 2, 3]))  // a record being written
        try h.close()
        let reader = try EventLog(directory: dir)
        XCTAssertEqual(reader.endId, 4)
        XCTAssertNil(reader.recovery.message)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int, before + 7)
    }

    /// A crash between creating a segment and writing its header leaves it short: the next
    /// writer rewrites the header whole before appending, and every later open reads the log.
    func testAShortLastSegmentGetsItsHeaderBeforeAnyAppend() throws {
        for cut in [0, 7, 12] {
            try? FileManager.default.removeItem(atPath: dir)
            var cfg = EventLog.Config()
            cfg.segmentBytes = 300
            var log: EventLog? = try EventLog(directory: dir, config: cfg, access: .append)
            for n in 0..<20 { _ = try log!.appendSync([draft(n)]) }
            log = nil
            let segs = segmentFiles()
            XCTAssertGreaterThan(segs.count, 2)
            let last = segs.last!
            let base = UInt64((last as NSString).lastPathComponent.prefix(20))!
            XCTAssertTrue(truncate(last, off_t(cut)) == 0)
            log = try EventLog(directory: dir, config: cfg, access: .append)
            XCTAssertEqual(log!.endId, base)
            XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: last)[.size] as! Int, 16, "cut \(cut)")
            let ids = try log!.appendSync((100..<103).map { draft($0) })
            XCTAssertEqual(ids, [base, base + 1, base + 2])
            log = nil
            let again = try EventLog(directory: dir, config: cfg, access: .append)
            XCTAssertEqual(again.endId, base + 3, "cut \(cut)")
            XCTAssertEqual(try again.read(from: base).map(\.draft), (100..<103).map { draft($0) })
            again.close()
        }
    }

    /// A segment that cannot be read stops every reader with the file's name, never a quiet end.
    func testReadErrorsPropagateNamingTheFile() throws {
        var cfg = EventLog.Config()
        cfg.segmentBytes = 300
        let writer = try EventLog(directory: dir, config: cfg, access: .append)
        for n in 0..<30 { _ = try writer.appendSync([draft(n)]) }
        let reader = try EventLog(directory: dir, config: cfg)
        XCTAssertEqual(try reader.read(from: 0, limit: 100).count, 30)
        XCTAssertGreaterThan(segmentFiles().count, 2)
        let victim = segmentFiles()[1]
        try FileManager.default.moveItem(atPath: victim, toPath: victim + ".moved")
        try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: false)
        var seen = 0
        XCTAssertThrowsError(try reader.forEach(from: 0) { _ in seen += 1 }) { e in
            XCTAssertTrue("\(e)".contains(victim), "\(e)")
        }
        XCTAssertGreaterThan(seen, 0)
        XCTAssertThrowsError(try EventLog(directory: dir, config: cfg)) { e in
            XCTAssertTrue("\(e)".contains(victim), "\(e)")
        }
        // A record damaged after the log was opened is an error with its offset too.
        try FileManager.default.removeItem(atPath: victim)
        try FileManager.default.moveItem(atPath: victim + ".moved", toPath: victim)
        let first = segmentFiles()[0]
        let h = try FileHandle(forUpdating: URL(fileURLWithPath: first))
        try h.seek(toOffset: 16 + 8 + 2)
        h.write(Data([0xFF, 0xEE]))
        try h.close()
        XCTAssertThrowsError(try reader.forEach(from: 0) { _ in }) { e in
            guard case .corrupt(let f, let offset, _)? = e as? EventLogError else { return XCTFail("\(e)") }
            XCTAssertEqual(f, first)
            XCTAssertEqual(offset, 16)
        }
        writer.close()
    }

    /// A reader never sees records the writer has written but not yet fsynced (a consumer that
    /// committed past them could skip events a power loss then takes back).
    func testReadersSeeOnlyWhatTheWriterPublishedAsDurable() throws {
        final class Gate: @unchecked Sendable {
            let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
            var hold = false
        }
        let gate = Gate()
        var cfg = EventLog.Config()
        cfg.afterSync = { if gate.hold { gate.entered.signal(); gate.release.wait() } }
        let writer = try EventLog(directory: dir, config: cfg, access: .append)
        _ = try writer.appendSync((0..<5).map { draft($0) })
        let reader = try EventLog(directory: dir)
        XCTAssertEqual(reader.endId, 5)
        gate.hold = true
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { _ = try? writer.appendSync((5..<9).map { self.draft($0) }); done.signal() }
        gate.entered.wait()  // the batch is written (and fsynced), its end not yet published
        try reader.refresh()
        XCTAssertEqual(reader.endId, 5)
        XCTAssertEqual(try EventLog(directory: dir).endId, 5, "a reader opened now stops at the published end too")
        gate.hold = false
        gate.release.signal()
        done.wait()
        try reader.refresh()
        XCTAssertEqual(reader.endId, 9)
        XCTAssertEqual(try reader.read(from: 0).map(\.draft), (0..<9).map { draft($0) })
        writer.close()
    }

    func testCursorsCommitAndLoad() throws {
        let c = try CursorStore(directory: dir + "/cursors")
        XCTAssertEqual(try c.load("ranker"), 0)
        try c.commit("ranker", 42)
        XCTAssertEqual(try CursorStore(directory: dir + "/cursors").load("ranker"), 42)
    }
}

final class EventSummaryTests: XCTestCase {
    func testCountsByTypeUsersVideosAndTimeRange() {
        var s = EventSummary()
        for (i, (u, v, t, ms)) in [("a", "v1", EventType.view, Int64(50)), ("b", "v1", .like, 20), ("a", "v2", .like, 90)].enumerated() {
            s.add(Event(id: UInt64(i), draft: EventDraft(user: u, video: v, type: t, timeMs: ms)))
        }
        XCTAssertEqual(s.events, 3)
        XCTAssertEqual(s.byType, [.view: 1, .like: 2])
        XCTAssertEqual(s.users, ["a", "b"])
        XCTAssertEqual(s.videos, ["v1", "v2"])
        XCTAssertEqual(s.firstTimeMs, 20)
        XCTAssertEqual(s.lastTimeMs, 90)
    }
}
