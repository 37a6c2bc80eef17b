import XCTest
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestSupport
import ForYou

/// `foryou events prune` and `events compact` as an operator runs them, and SIGKILL at any point
/// of a prune, a compaction or a snapshot (issue 21).
final class RetentionTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("retention") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    @discardableResult
    func run(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CLIRunner.Result {
        let r = try CLIRunner.run(args)
        XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)", file: file, line: line)
        return r
    }

    /// Starts `serve` until it is ready and stops it: its start-up replay writes a snapshot at the log's end.
    func serveOnce(_ data: String) throws -> String {
        let (p, text, _) = try CLIRunner.start(["serve", "--data-dir", data, "--port", "0", "--snapshot-every", "1"],
                                               ready: #"listening on http://127\.0\.0\.1:(\d+)"#)
        p.terminate()
        p.waitUntilExit()
        return text
    }

    /// A world, then 3,000 more events in batches of 50 into 16 KiB segments (the writer rolls
    /// between batches): a log of many segments.
    func world(_ data: String) throws {
        try run(["world", "--users", "200", "--videos", "60", "--topics", "4", "--data-dir", data])
        let videos = try DataDirectory(data).openStore().videos().map(\.id)
        var cfg = EventLogConfig()
        cfg.segmentBytes = 16_384
        let log = try EventLog(directory: DataDirectory(data).events, config: cfg, access: .append)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for b in 0..<60 {
            _ = try log.appendSync((0..<50).map { k in
                let n = b * 50 + k
                return EventDraft(user: "\(n * 7 % 200)", video: videos[n * 11 % videos.count], type: n % 4 == 0 ? .like : .complete,
                                  watchMs: 8_000, timeMs: now + Int64(n))
            })
        }
        log.close()
    }

    /// A world of many segments, trained (a generation and an interaction table).
    func prepare(_ data: String) throws {
        try world(data)
        try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "8", "--iters", "2", "--top", "20"])
    }

    func fingerprints(_ events: String, from: UInt64 = 0) throws -> [UInt64: UInt64] {
        let log = try EventLog(directory: events)
        defer { log.close() }
        var out: [UInt64: UInt64] = [:]
        try log.forEach(from: from) { out[$0.id] = $0.fingerprint }
        return out
    }

    func testPruneRefusesNamingEachLaggardThenRemovesWhatNothingNeeds() throws {
        let data = dir + "/data"
        try world(data)
        let events = DataDirectory(data).events
        var log = try EventLog(directory: events)
        let end = log.endId, segments = log.segmentBases
        log.close()
        XCTAssertGreaterThan(segments.count, 5)
        let before = try fingerprints(events)
        let wanted = segments[segments.count - 2] + 3
        let cut = segments[segments.count - 2]
        // Nothing covers the events yet: refused, each laggard named, nothing removed.
        var r = try CLIRunner.run(["events", "prune", "--before", "\(wanted)", "--data-dir", data])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("refusing to remove the events below \(cut)"), r.stderr)
        XCTAssertTrue(r.stderr.contains("no serving snapshot"), r.stderr)
        XCTAssertTrue(r.stderr.contains("no interaction table") && r.stderr.contains("foryou events compact"), r.stderr)
        XCTAssertEqual(try EventLog(directory: events).segmentBases, segments)
        // A retrain writes the table; the serving snapshot is still missing.
        try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "8", "--iters", "2", "--top", "20"])
        r = try CLIRunner.run(["events", "prune", "--before", "\(wanted)", "--data-dir", data])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.stderr.contains("interaction table"), r.stderr)
        XCTAssertTrue(r.stderr.contains("no serving snapshot"), r.stderr)
        _ = try serveOnce(data)
        // A ranking worker whose cursor is behind the cut.
        let store = try DataDirectory(data).openStore()
        let gen = try XCTUnwrap(try store.liveGeneration()).id
        try store.replaceLists(generation: gen, lists: [], consumer: "ranker", nextEvent: 10)
        r = try CLIRunner.run(["events", "prune", "--before", "\(wanted)", "--data-dir", data])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("ranking worker 'ranker' is at event 10"), r.stderr)
        XCTAssertFalse(r.stderr.contains("snapshot"), r.stderr)
        try store.replaceLists(generation: gen, lists: [], consumer: "ranker", nextEvent: end)
        // The live model trained with another event mapping: its table is the one the worker and the
        // next retrain read, so a table of the default mapping does not count.
        try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "8", "--iters", "2", "--top", "20",
                 "--negatives", "drop"])
        let tablesDir = DataDirectory(data).interactions
        for t in InteractionTable.summaries(in: tablesDir).tables where t.mapping.contains("negatives=drop") {
            try FileManager.default.removeItem(atPath: t.path)
        }
        r = try CLIRunner.run(["events", "prune", "--before", "\(wanted)", "--data-dir", data])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("no interaction table built with the live model's event mapping"), r.stderr)
        // compact writes the live mapping's table too.
        let compacted = try run(["events", "compact", "--data-dir", data]).stdout
        XCTAssertTrue(compacted.contains("negatives=drop"), compacted)
        XCTAssertTrue(InteractionTable.summaries(in: tablesDir).tables.contains { $0.mapping.contains("negatives=drop") && $0.position == end })
        try store.replaceLists(generation: try XCTUnwrap(try store.liveGeneration()).id, lists: [], consumer: "ranker", nextEvent: end)
        // Every event is recent: nothing is older than a year. The exposure log goes by the same age
        // (nothing but reports reads it): 40 pages served 400 days ago, then 10 today.
        var small = EventLogConfig()
        small.segmentBytes = 512
        let exposures = try EventLog(directory: DataDirectory(data).exposures, config: small, access: .append)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for k in 0..<50 {
            _ = try exposures.appendSync([EventDraft(user: "u\(k)", video: "exposure", type: .view,
                                                     timeMs: k < 40 ? now - 400 * 86_400_000 : now, extra: "{\"experiment\":\"e\"}")])
        }
        let exposureSegments = exposures.segmentBases
        exposures.close()
        XCTAssertGreaterThan(exposureSegments.count, 3)
        let old = try run(["events", "prune", "--older-than", "365d", "--data-dir", data]).stdout
        XCTAssertTrue(old.contains("nothing to remove"), old)
        XCTAssertTrue(old.contains("exposures: removed"), old)
        let keptExposures = try EventLog(directory: DataDirectory(data).exposures)
        XCTAssertGreaterThan(keptExposures.firstId, 0)
        XCTAssertLessThanOrEqual(keptExposures.firstId, 40)
        XCTAssertEqual(keptExposures.endId, 50)
        keptExposures.close()
        XCTAssertTrue(try run(["events", "prune", "--before", "\(wanted)", "--dry-run", "--data-dir", data]).stdout
            .contains("would remove \(segments.count - 2) segment(s)"))
        XCTAssertEqual(try EventLog(directory: events).segmentBases, segments)
        let out = try run(["events", "prune", "--before", "\(wanted)", "--data-dir", data]).stdout
        XCTAssertTrue(out.contains("removed \(segments.count - 2) segment(s)") && out.contains("the log starts at event \(cut)"), out)
        log = try EventLog(directory: events)
        XCTAssertEqual(log.firstId, cut)
        XCTAssertEqual(log.endId, end)
        log.close()
        XCTAssertEqual(try fingerprints(events, from: cut), before.filter { $0.key >= cut })
        // Everything keeps working on the pruned log: stats, tail, the server (from its snapshot),
        // a retrain (from its table), the worker.
        XCTAssertTrue(try run(["events", "stats", "--data-dir", data]).stdout.contains("events \(end - cut) in 2 segment(s)"))
        XCTAssertEqual(try run(["events", "tail", "-n", "3", "--data-dir", data]).stdout.split(separator: "\n").count, 3)
        let start = try serveOnce(data)
        XCTAssertTrue(start.contains("replayed 0 events after the snapshot at event \(end)"), start)
        let retrain = try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "8", "--iters", "2", "--top", "20"])
        XCTAssertTrue(retrain.stdout.contains("live"), retrain.stdout)
        XCTAssertTrue(retrain.stderr.contains("the interaction table covers"), retrain.stderr)
        try run(["worker", "rank", "--data-dir", data, "--until-caught-up"])
        // Kafka: the broker's retention does it.
        r = try CLIRunner.run(["events", "prune", "--before", "5", "--events", "kafka://127.0.0.1:1/t", "--data-dir", data])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("retention.ms"), r.stderr)
    }

    /// Runs `foryou ARGS` and SIGKILLs it after `micros` microseconds (if it is still running).
    func runKilled(_ args: [String], afterMicroseconds micros: UInt32) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLIRunner.binary)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        usleep(micros)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    func timed(_ args: [String]) throws -> UInt32 {
        let t = Date()
        try run(args)
        return UInt32(Date().timeIntervalSince(t) * 1e6)
    }

    func testSIGKILLDuringAPruneACompactionOrASnapshotLeavesACorrectState() throws {
        let template = dir + "/template"
        try prepare(template)
        _ = try serveOnce(template)
        let events = DataDirectory(template).events
        let log = try EventLog(directory: events)
        let end = log.endId, cut = log.segmentBases[log.segmentBases.count - 2]
        log.close()
        let original = try fingerprints(events)
        let store = try DataDirectory(template).openStore()
        try store.replaceLists(generation: try XCTUnwrap(try store.liveGeneration()).id, lists: [], consumer: "ranker", nextEvent: end)
        let work = dir + "/work"
        func fresh() throws {
            try? FileManager.default.removeItem(atPath: work)
            try FileManager.default.copyItem(atPath: template, toPath: work)
        }
        let workEvents = DataDirectory(work).events
        let prune = ["events", "prune", "--before", "\(cut)", "--data-dir", work]

        // Prune: killed anywhere, the log opens (as its writer too), starts at 0 or at the cut, and
        // holds exactly the original events from there; the prune then completes.
        try fresh()
        let pruneTime = try timed(prune)
        for i in 0..<10 {
            try fresh()
            try runKilled(prune, afterMicroseconds: pruneTime * UInt32(i) / 9)
            let opened = try EventLog(directory: workEvents, access: .append)
            let first = opened.firstId
            opened.close()
            XCTAssertTrue(first == 0 || first == cut, "run \(i): starts at \(first)")
            XCTAssertEqual(try fingerprints(workEvents, from: first), original.filter { $0.key >= first }, "run \(i)")
            try run(prune)
            XCTAssertEqual(try EventLog(directory: workEvents).firstId, cut)
        }

        // Compaction over a longer tail: killed anywhere, the next compaction and a retrain read a
        // table + tail that equals a read of the whole log.
        try fresh()
        let writer = try EventLog(directory: workEvents, access: .append)
        _ = try writer.appendSync((0..<3_000).map { n in
            EventDraft(user: "\(n % 150)", video: "v\(n % 60)", type: n % 5 == 0 ? .like : .complete, watchMs: 10_000,
                       timeMs: Int64(Date().timeIntervalSince1970 * 1000) + Int64(n))
        })
        writer.close()
        try FileManager.default.copyItem(atPath: work, toPath: dir + "/compact-template")
        let compact = ["events", "compact", "--data-dir", work]
        let compactTime = try timed(compact)
        let durations = Dictionary(try DataDirectory(work).openStore().videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        var whole = EventHistory(mapping: EventMapping())
        let all = try EventLog(directory: workEvents)
        try all.forEach(from: 0) { whole.add($0, duration: durations[$0.video] ?? 0) }
        let allEnd = all.endId
        all.close()
        for i in 0..<8 {
            try? FileManager.default.removeItem(atPath: work)
            try FileManager.default.copyItem(atPath: dir + "/compact-template", toPath: work)
            try runKilled(compact, afterMicroseconds: compactTime * UInt32(i) / 7)
            try run(compact)
            let l = try EventLog(directory: workEvents)
            let (h, position, from) = try InteractionTable.history(log: l, directory: DataDirectory(work).interactions,
                                                                   mapping: EventMapping(), durations: durations, through: l.endId)
            l.close()
            XCTAssertEqual(from, allEnd, "run \(i): the compaction's table is the one read")
            XCTAssertEqual(position, allEnd)
            XCTAssertEqual(h.dictionary, whole.dictionary, "run \(i)")
        }

        // Snapshot: serve killed while it replays and writes its snapshot; the next start is clean
        // (it uses the newest complete snapshot, never a partial one, and passes none over).
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.copyItem(atPath: dir + "/compact-template", toPath: work)
        let serveArgs = ["serve", "--data-dir", work, "--port", "0", "--snapshot-every", "1"]
        let t = Date()
        _ = try serveOnce(work)
        let serveTime = UInt32(Date().timeIntervalSince(t) * 1e6)
        for i in 0..<6 {
            // New events, so the start has a tail to replay and a snapshot to write.
            let w = try EventLog(directory: workEvents, access: .append)
            _ = try w.appendSync((0..<500).map { n in EventDraft(user: "k\(n % 40)", video: "v\(n % 60)", type: .view, watchMs: 5_000,
                                                                 timeMs: Int64(Date().timeIntervalSince1970 * 1000)) })
            w.close()
            try runKilled(serveArgs, afterMicroseconds: serveTime * UInt32(i) / 5)
            let text = try serveOnce(work)
            XCTAssertFalse(text.contains("passed over"), "run \(i): \(text)")
            XCTAssertTrue(text.contains("after the snapshot at event"), "run \(i): \(text)")
        }
    }
}
