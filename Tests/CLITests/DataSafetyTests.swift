import XCTest
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestSupport
import ForYou

/// Issue 17, as an operator would meet it: real processes on a real data directory.
final class DataSafetyTests: XCTestCase {
    var dir = ""
    var processes: [Process] = []
    override func setUp() { dir = Fixtures.tempDir("safety") }
    override func tearDown() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    func serve(_ data: String) throws -> (Process, Int) {
        let (p, _, match) = try CLIRunner.start(["serve", "--data-dir", data, "--port", "0", "--rate", "100000", "--burst", "100000"],
                                                ready: #"listening on http://127\.0\.0\.1:(\d+)"#)
        processes.append(p)
        return (p, Int(match.split(separator: ":").last!)!)
    }

    func token(_ data: String, _ user: String = "safety") throws -> String {
        let r = try CLIRunner.run(["token", "--user", user, "--data-dir", data])
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func stop(_ p: Process) {
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
    }

    /// Finding 1: a second writer on one file log exits at once naming the directory and the PID
    /// that holds it; readers keep working while the server writes; nothing is corrupted.
    func testASecondServerOnOneDataDirectoryIsRefusedAndReadersKeepWorking() async throws {
        let data = dir + "/data"
        XCTAssertEqual(try CLIRunner.run(["world", "--users", "30", "--videos", "20", "--data-dir", data]).status, 0)
        let tok = try token(data)
        let (server, port) = try serve(data)
        let t0 = Date()
        let second = try CLIRunner.run(["serve", "--data-dir", data, "--port", "0"])
        XCTAssertNotEqual(second.status, 0)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 30)
        let line = second.stderr.split(separator: "\n").filter { !$0.isEmpty }
        XCTAssertEqual(line.count, 1, second.stderr)
        XCTAssertTrue(second.stderr.contains(data + "/events"), second.stderr)
        XCTAssertTrue(second.stderr.contains("process \(server.processIdentifier)"), second.stderr)
        // Every other appender is refused the same way.
        let rows = dir + "/rows.tsv"
        Fixtures.write("1\tv1\t1\n", to: rows)
        let imported = try CLIRunner.run(["events", "import", rows, "--data-dir", data])
        XCTAssertNotEqual(imported.status, 0)
        XCTAssertTrue(imported.stderr.contains("process \(server.processIdentifier)"), imported.stderr)

        let client = HTTPClient(port: port)
        var acked: [UInt64] = []
        for n in 0..<100 {
            let r = try await client.post("/api/v1/events", token: tok, #"{"video_id":"v\#(n % 20)","type":"view","watch_ms":\#(n + 1)}"#)
            XCTAssertEqual(r.status, 202, r.text)
            if let id = (r.json["event_id"] as? String).flatMap(UInt64.init) { acked.append(id) }
            if n == 50 {
                // Readers need no lock.
                let stats = try CLIRunner.run(["events", "stats", "--data-dir", data])
                XCTAssertEqual(stats.status, 0, stats.stderr)
                let tail = try CLIRunner.run(["events", "tail", "-n", "3", "--data-dir", data])
                XCTAssertEqual(tail.status, 0, tail.stderr)
                XCTAssertEqual(tail.stdout.split(separator: "\n").count, 3)
            }
        }
        stop(server)
        let tail = try CLIRunner.run(["events", "tail", "-n", "100", "--data-dir", data])
        XCTAssertEqual(tail.status, 0, tail.stderr)
        let ids = tail.stdout.split(separator: "\n").compactMap { line -> UInt64? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return (o["id"] as? NSNumber)?.uint64Value
        }
        XCTAssertEqual(ids, acked)
        // The lock went with the process: a new server starts.
        let (again, _) = try serve(data)
        stop(again)
    }

    /// Finding 2: a last segment cut shorter than its header gets a whole header before the server
    /// appends; the restart after that reads every acknowledged event.
    func testAServerStartsOnAShortLastSegmentAndItsEventsSurviveTheNextRestart() async throws {
        for cut in [7, 0] {
            let data = dir + "/data\(cut)"
            XCTAssertEqual(try CLIRunner.run(["world", "--users", "20", "--videos", "20", "--data-dir", data]).status, 0)
            let tok = try token(data)
            let segs = try FileManager.default.contentsOfDirectory(atPath: data + "/events").filter { $0.hasSuffix(".log") }.sorted()
            XCTAssertEqual(truncate(data + "/events/" + segs.last!, off_t(cut)), 0)
            let (server, port) = try serve(data)
            let client = HTTPClient(port: port)
            var acked: [UInt64] = []
            for n in 0..<3 {
                let r = try await client.post("/api/v1/events", token: tok, #"{"video_id":"v\#(n)","type":"like"}"#)
                XCTAssertEqual(r.status, 202, r.text)
                if let id = (r.json["event_id"] as? String).flatMap(UInt64.init) { acked.append(id) }
            }
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
            let (again, _) = try serve(data)
            stop(again)
            let tail = try CLIRunner.run(["events", "tail", "-n", "3", "--data-dir", data])
            XCTAssertEqual(tail.status, 0, "cut \(cut): " + tail.stderr)
            XCTAssertEqual(tail.stdout.split(separator: "\n").count, 3, "cut \(cut): " + tail.stdout)
            XCTAssertEqual(acked.count, 3)
        }
    }

    /// Finding 3: an unreadable segment stops readers with the file's name.
    func testAnUnreadableSegmentIsAnErrorNamingIt() throws {
        let data = dir + "/data"
        XCTAssertEqual(try CLIRunner.run(["world", "--users", "20", "--videos", "20", "--data-dir", data]).status, 0)
        let seg = data + "/events/" + (try FileManager.default.contentsOfDirectory(atPath: data + "/events")
            .filter { $0.hasSuffix(".log") }.sorted().first!)
        try FileManager.default.removeItem(atPath: seg)
        try FileManager.default.createDirectory(atPath: seg, withIntermediateDirectories: false)
        for args in [["events", "stats"], ["events", "tail"], ["train", "--events", data, "--out", dir + "/m"],
                     ["serve", "--port", "0"]] {
            let r = try CLIRunner.run(args + (args[0] == "train" ? [] : ["--data-dir", data]))
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.stderr.contains(seg), "\(args): \(r.stderr)")
        }
    }

    /// Finding 4: two `foryou token` started at once on a new data directory agree on the key.
    func testParallelTokenCommandsAgreeOnTheSigningKey() throws {
        for trial in 0..<20 {
            let data = dir + "/keys\(trial)"
            let procs = (0..<2).map { _ -> (Process, Pipe) in
                let p = Process()
                p.executableURL = URL(fileURLWithPath: CLIRunner.binary)
                p.arguments = ["token", "--data-dir", data, "--user", "1"]
                let out = Pipe()
                p.standardOutput = out
                p.standardError = FileHandle.nullDevice
                return (p, out)
            }
            for (p, _) in procs { try p.run() }
            let tokens = procs.map { p, out -> String in
                let d = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                return String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let key = try XCTUnwrap(FileManager.default.contents(atPath: data + "/secret.key"))
            XCTAssertEqual(key.count, 32)
            let signer = TokenSigner(key: [UInt8](key))
            for t in tokens { XCTAssertNoThrow(try signer.verify(t), "trial \(trial)") }
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: data).filter { $0.hasPrefix("secret.key.tmp") }
            XCTAssertEqual(leftovers, [])
        }
        // A short key file is an error, never silently replaced.
        let data = dir + "/short"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        Fixtures.write("0123456789", to: data + "/secret.key")
        let r = try CLIRunner.run(["token", "--data-dir", data, "--user", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("secret.key holds 10 bytes"), r.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: data + "/secret.key"), Data("0123456789".utf8))
    }

    /// Finding 7: a lifetime that would overflow is an error naming the value.
    func testATokenLifetimeThatWouldOverflowIsAnError() throws {
        for ttl in ["999999999999999999d", "99999999999999999999", "4000d", "-5m", "0s", "12x"] {
            let r = try CLIRunner.run(["token", "--data-dir", dir + "/t", "--user", "1", "--ttl=" + ttl])
            XCTAssertNotEqual(r.status, 0, ttl)
            XCTAssertTrue(r.stderr.contains("'\(ttl)'"), "\(ttl): \(r.stderr)")
        }
        let ok = try CLIRunner.run(["token", "--data-dir", dir + "/t", "--user", "1", "--ttl", "3650d"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }

    /// Finding 5: two ranking workers on one store: the cursor is a compare-and-set, so the
    /// lists end exactly as one uninterrupted worker leaves them. SQLite, then PostgreSQL.
    func testTwoRankingWorkersOnOneSQLiteStoreEndAsOneDoes() throws {
        try twoWorkers(store: nil, referenceStore: nil)
    }

    func testTwoRankingWorkersOnOnePostgresStoreEndAsOneDoes() throws {
        guard let url = try Fixtures.postgresDatabase(), let ref = try Fixtures.postgresDatabase() else {
            throw XCTSkip("FORYOU_TEST_POSTGRES is not set (scripts/test starts a cluster)")
        }
        try twoWorkers(store: url, referenceStore: ref)
    }

    func twoWorkers(store url: String?, referenceStore refURL: String?) throws {
        let data = dir + "/data", copy = dir + "/copy"
        let storeArgs = url.map { ["--store", $0] } ?? [], refArgs = refURL.map { ["--store", $0] } ?? []
        XCTAssertEqual(try CLIRunner.run(["world", "--users", "300", "--videos", "120", "--topics", "6", "--data-dir", data]).status, 0)
        if let url, let refURL {
            // The world's catalog goes into both PostgreSQL databases.
            let catalog = dir + "/catalog.jsonl"
            let listed = try CLIRunner.run(["videos", "list", "--data-dir", data])
            XCTAssertEqual(listed.status, 0, listed.stderr)
            Fixtures.write(listed.stdout, to: catalog)
            for u in [url, refURL] {
                let r = try CLIRunner.run(["videos", "import", catalog, "--data-dir", data, "--store", u])
                XCTAssertEqual(r.status, 0, r.stderr)
            }
        }
        // The same model, generation and backlog (events after its training) for both runs.
        let model = dir + "/model"
        let trainedModel = try CLIRunner.run(["train", "--events", data, "--factors", "16", "--iters", "6", "--out", model])
        XCTAssertEqual(trainedModel.status, 0, trainedModel.stderr)
        let log = try EventLog(directory: data + "/events", access: .append)
        var g = SeededGenerator(seed: 9)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let types: [EventType] = [.view, .complete, .like, .skip]
        _ = try log.appendSync((0..<6_000).map { n in
            EventDraft(user: "\(g.next() % 320)", video: "v\(g.next() % 120)", type: types[Int(g.next() % 4)],
                       watchMs: UInt32(g.next() % 30_000), timeMs: now + Int64(n))
        })
        let end = log.endId
        log.close()
        try FileManager.default.copyItem(atPath: data, toPath: copy)
        for (d, args) in [(data, storeArgs), (copy, refArgs)] {
            let r = try CLIRunner.run(["score-all", "--model", model, "--top", "60", "--into", d] + args)
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let worker = ["worker", "rank", "--top", "60", "--batch", "50", "--seconds", "120", "--until-caught-up"]
        let clean = try CLIRunner.run(worker + ["--data-dir", copy] + refArgs)
        XCTAssertEqual(clean.status, 0, clean.stderr)

        // Two at once on the same store and log.
        let both = (0..<2).map { _ -> (Process, Pipe) in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CLIRunner.binary)
            p.arguments = worker + ["--data-dir", data] + storeArgs
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            return (p, err)
        }
        for (p, _) in both { try p.run(); processes.append(p) }
        var fenced = 0
        for (p, err) in both {
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0, text)
            if let m = text.range(of: #"(\d+) batches dropped"#, options: .regularExpression) {
                fenced += Int(text[m].split(separator: " ")[0]) ?? 0
            }
        }
        print("safety: two workers on \(url == nil ? "SQLite" : "PostgreSQL") over \(end) events; \(fenced) batches fenced off")
        let users = (0..<320).map { "\($0)" }
        func state(_ d: String, _ u: String?) throws -> ([String: [String]], UInt64?) {
            let store: any FeedStore = try u.map { try PostgresFeedStore(url: $0) } ?? DataDirectory(d).openStore()
            let gen = try XCTUnwrap(try store.liveGeneration()).id
            var lists: [String: [String]] = [:]
            for u in users { lists[u] = try store.candidates(generation: gen, user: u)?.map(\.video) }
            return (lists, try store.consumerCursor("ranker")?.nextEvent)
        }
        let expected = try state(copy, refURL), got = try state(data, url)
        XCTAssertEqual(expected.1, end)
        XCTAssertEqual(got.1, end)
        var differing: [String] = []
        for u in users where got.0[u] != expected.0[u] { differing.append(u) }
        XCTAssertEqual(differing, [], "users whose lists differ with two workers")
    }

    /// Finding 8 at the command line: a negative weight names its line unless asked for.
    func testNegativeWeightsInAFileAreRefusedUnlessExplicit() throws {
        let f = dir + "/neg.tsv"
        Fixtures.write("1\t10\t2\n2\t10 \t-1\n", to: f)
        let refused = try CLIRunner.run(["inspect", f])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("\(f):2: negative weight '-1'"), refused.stderr)
        let ok = try CLIRunner.run(["inspect", f, "--negative-weights", "explicit"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("1 items"), ok.stdout)
    }
}
