import XCTest
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestSupport
import ForYou

/// The data-directory commands: world, train --events, score-all --into, generations, videos, events.
final class DataDirCommandsTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("datadir") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func run(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> CLIRunner.Result {
        let r = try CLIRunner.run(args)
        XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)", file: file, line: line)
        return r
    }

    /// `score-all --shard I/N`: separate processes write one generation that goes live only when
    /// every shard is in, with exactly the lists one process writes; a killed shard is re-run.
    func testShardedScoringWritesExactlyWhatOneProcessWrites() throws {
        let data = dir + "/data"
        _ = try run(["world", "--users", "301", "--videos", "90", "--topics", "6", "--data-dir", data])
        _ = try run(["train", "--events", data, "--factors", "8", "--iters", "3", "--out", dir + "/m"])
        _ = try run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data])  // generation 1, one process
        let store = try DataDirectory(data).openStore()
        let users = try ModelStore.load(dir + "/m").users.raw
        func sameLists(_ gen: Int64) throws {
            for u in users {
                XCTAssertEqual(try store.candidates(generation: gen, user: u), try store.candidates(generation: 1, user: u), "user \(u)")
            }
        }
        // Shard 1 of 3 alone: the generation exists, incomplete, and cannot go live.
        let first = try run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--shard", "1/3"]).stderr
        XCTAssertTrue(first.contains("shard 1/3 of generation 2") && first.contains("waits for 2 more shard(s)"), first)
        XCTAssertTrue(try run(["generations", "list", "--data-dir", data]).stdout.contains("incomplete: 1 of 3 shards written"))
        let early = try CLIRunner.run(["generations", "activate", "2", "--data-dir", data])
        XCTAssertNotEqual(early.status, 0)
        XCTAssertTrue(early.stderr.contains("generation 2 is incomplete: 1 of 3 shards written"), early.stderr)
        XCTAssertEqual(try store.liveGeneration()?.id, 1)
        XCTAssertEqual(try store.prune(keep: 1), [], "neither the live generation nor one being built is pruned")
        // Shards 2 and 3 at the same time, in two processes: the last one switches it live.
        var results = [CLIRunner.Result?](repeating: nil, count: 2)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = try? CLIRunner.run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--shard", "\(i + 2)/3"])
            lock.lock(); results[i] = r; lock.unlock()
        }
        for r in results { XCTAssertEqual(r?.status, 0, r?.stderr ?? "did not run") }
        XCTAssertEqual(results.filter { $0?.stderr.contains("generation 2 complete (3 of 3 shards), now live") == true }.count, 1)
        let live = try XCTUnwrap(try store.liveGeneration())
        XCTAssertEqual(live.id, 2)
        XCTAssertEqual(live.users, users.count)
        XCTAssertTrue(live.complete)
        try sameLists(2)
        let again = try run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--shard", "2/3"]).stderr
        XCTAssertTrue(again.contains("already written; nothing to do"), again)

        // A shard killed at any point wrote all of its lists or none; running it again completes the build.
        _ = try run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--shard", "1/2", "--build", "b2"])
        let doomed = Process()
        doomed.executableURL = URL(fileURLWithPath: CLIRunner.binary)
        doomed.arguments = ["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--shard", "2/2", "--build", "b2"]
        // Killed once it has begun writing (it says so just before the transaction): before
        // that, "wrote nothing" would hold trivially.
        let errPipe = Pipe()
        doomed.standardError = errPipe
        let said = LockedText()
        errPipe.fileHandleForReading.readabilityHandler = { h in said.append(String(decoding: h.availableData, as: UTF8.self)) }
        try doomed.run()
        let deadline = Date().addingTimeInterval(60)
        while !said.text.contains("writing shard 2/2") && doomed.isRunning && Date() < deadline { usleep(1_000) }
        kill(doomed.processIdentifier, SIGKILL)
        doomed.waitUntilExit()
        errPipe.fileHandleForReading.readabilityHandler = nil
        XCTAssertTrue(said.text.contains("writing shard 2/2"), "killed before it began writing: \(said.text)")
        // All or none: the shard is either done with every list, or absent with none.
        let mid = try XCTUnwrap(try store.generations().first { $0.id == 3 })
        if mid.complete { try sameLists(3) } else {
            let second = ScoreShards.users(shard: 1, of: 2, users: users.count, userBlock: 64)
            XCTAssertFalse(second.isEmpty)
            for (n, u) in users.enumerated() {
                if second.contains(n) {
                    XCTAssertNil(try store.candidates(generation: 3, user: u), "user \(u) of the killed shard")
                } else {
                    XCTAssertEqual(try store.candidates(generation: 3, user: u), try store.candidates(generation: 1, user: u), "user \(u)")
                }
            }
        }
        _ = try run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--shard", "2/2", "--build", "b2"])
        XCTAssertEqual(try store.liveGeneration()?.id, 3)
        try sameLists(3)

        // The same shards into PostgreSQL (--store): the same lists as the single SQLite run.
        if let pg = try Fixtures.postgresDatabase() {
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let r = try? CLIRunner.run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--store", pg,
                                            "--shard", "\(i + 1)/2"])
                XCTAssertEqual(r?.status, 0, r?.stderr ?? "did not run")
            }
            let remote = try PostgresFeedStore(url: pg)
            let gen = try XCTUnwrap(try remote.liveGeneration())
            XCTAssertEqual(gen.users, users.count)
            for u in users { XCTAssertEqual(try remote.candidates(generation: gen.id, user: u), try store.candidates(generation: 1, user: u)) }
            let listed = try run(["generations", "list", "--store", pg]).stdout
            XCTAssertTrue(listed.contains("* \(gen.id)\t") && listed.contains("2 shards"), listed)
            let bad = try CLIRunner.run(["generations", "list", "--store", "postgres://nobody@127.0.0.1:1/none"])
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.contains("cannot connect to postgres://nobody@127.0.0.1:1/none"), bad.stderr)
            let unknown = try CLIRunner.run(["generations", "list", "--store", "mysql://x"])
            XCTAssertTrue(unknown.stderr.contains("unknown store 'mysql://x'"), unknown.stderr)

            // The ranking worker folds new events into the PostgreSQL generation and commits its cursor there.
            let items = try ModelStore.load(dir + "/m").items.raw
            Fixtures.write("\(users[0])\t\(items[0])\t1\n\(users[0])\t\(items[1])\t1\n", to: dir + "/likes.tsv")
            _ = try run(["events", "import", dir + "/likes.tsv", "--type", "like", "--data-dir", data])
            let endId = try EventLog(directory: data + "/events").endId
            _ = try run(["worker", "rank", "--data-dir", data, "--store", pg, "--seconds", "2", "--top", "25"])
            let cursor = try XCTUnwrap(try remote.consumerCursor("ranker"))
            XCTAssertEqual(cursor.generation, gen.id)
            XCTAssertEqual(cursor.nextEvent, endId)
            XCTAssertFalse(try XCTUnwrap(try remote.candidates(generation: gen.id, user: users[0])).contains { $0.video == items[0] },
                           "the liked video is seen now, so it left the list")
            // rescore writes its generation into PostgreSQL; experiments live there too.
            _ = try run(["rescore", "--data-dir", data, "--store", pg, "--models", dir + "/models", "--factors", "8", "--iters", "2", "--top", "25"])
            let next = try XCTUnwrap(try remote.liveGeneration())
            XCTAssertGreaterThan(next.id, gen.id)
            _ = try run(["experiment", "create", "pgexp", "--variant", "a=\(gen.id):50", "--variant", "b=\(next.id):50", "--data-dir", data,
                         "--store", pg])
            _ = try run(["experiment", "start", "pgexp", "--data-dir", data, "--store", pg])
            XCTAssertEqual(try remote.runningExperiment()?.name, "pgexp")
            XCTAssertNil(try store.runningExperiment(), "the data directory's SQLite store is untouched")
        }

        // Mistakes are refused with the reason.
        let wrongN = try CLIRunner.run(["score-all", "--model", dir + "/m", "--top", "25", "--user-block", "64", "--into", data, "--shard", "1/4", "--build", "b2"])
        XCTAssertNotEqual(wrongN.status, 0)
        XCTAssertTrue(wrongN.stderr.contains("build b2 is generation 3 with 2 shards, not 4"), wrongN.stderr)
        for (args, message) in [(["--shard", "0/2", "--into", data], "--shard must be I/N"), (["--shard", "1/2", "--out", dir + "/x.tsv"], "--shard needs --into DATA_DIR or --store"),
                                (["--build", "x", "--into", data], "--build is for --shard")] {
            let r = try CLIRunner.run(["score-all", "--model", dir + "/m"] + args)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
        }
    }

    func testWorldTrainScoreIntoAndManageGenerations() throws {
        let data = dir + "/data"
        _ = try run(["world", "--users", "300", "--videos", "120", "--topics", "6", "--data-dir", data])
        let again = try CLIRunner.run(["world", "--users", "3", "--videos", "3", "--data-dir", data])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("already holds"), again.stderr)

        let stats = try run(["events", "stats", "--data-dir", data]).stdout
        XCTAssertTrue(stats.contains("300 users"), stats)
        let tail = try run(["events", "tail", "-n", "3", "--data-dir", data]).stdout.split(separator: "\n")
        XCTAssertEqual(tail.count, 3)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(tail[0].utf8)) as? [String: Any])

        _ = try run(["train", "--events", data, "--factors", "8", "--iters", "3", "--out", dir + "/m"])
        let run1 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/m/run.json"))) as! [String: Any]
        XCTAssertEqual((run1["data"] as! [String: Any])["format"] as? String, "events")
        // The mapping is recorded with the model (the worker folds users in the same way).
        XCTAssertEqual((run1["params"] as! [String: Any])["negatives"] as? String, "penalize")
        _ = try run(["train", "--events", data, "--factors", "8", "--iters", "1", "--negatives", "drop", "--half-life-days", "3",
                     "--event-weights", "like=5,hide=2", "--out", dir + "/m-drop"])
        let run2 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/m-drop/run.json"))) as! [String: Any]
        XCTAssertEqual((run2["params"] as! [String: Any])["negatives"] as? String, "drop")
        XCTAssertEqual((run2["params"] as! [String: Any])["half_life_days"] as? String, "3")
        XCTAssertEqual((run2["params"] as! [String: Any])["w_like"] as? String, "5")
        let badWeights = try CLIRunner.run(["train", "--events", data, "--event-weights", "poke=1", "--out", dir + "/x"])
        XCTAssertNotEqual(badWeights.status, 0)
        XCTAssertTrue(badWeights.stderr.contains("'poke=1'"), badWeights.stderr)
        let badDecay = try CLIRunner.run(["train", "--events", data, "--half-life-days", "0", "--out", dir + "/x"])
        XCTAssertNotEqual(badDecay.status, 0)
        XCTAssertTrue(badDecay.stderr.contains("--half-life-days"), badDecay.stderr)

        _ = try run(["score-all", "--model", dir + "/m", "--top", "20", "--into", data])
        _ = try run(["score-all", "--model", dir + "/m", "--top", "30", "--into", data])
        _ = try run(["score-all", "--model", dir + "/m", "--top", "40", "--into", data, "--no-activate"])
        var list = try run(["generations", "list", "--data-dir", data]).stdout
        XCTAssertTrue(list.contains("* 2\t"), list)  // the second is live; the third was not activated
        _ = try run(["generations", "activate", "3", "--data-dir", data])
        list = try run(["generations", "list", "--data-dir", data]).stdout
        XCTAssertTrue(list.contains("* 3\t"), list)
        XCTAssertTrue(try run(["generations", "rollback", "--data-dir", data]).stdout.contains("generation 2 is live again"))
        let pruned = try run(["generations", "prune", "--keep", "1", "--data-dir", data]).stdout
        XCTAssertTrue(pruned.contains("removed generations"), pruned)
        list = try run(["generations", "list", "--data-dir", data]).stdout
        XCTAssertTrue(list.contains("* 2\t"), "the live generation is never pruned: \(list)")
        let missing = try CLIRunner.run(["generations", "activate", "99", "--data-dir", data])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("no generation 99"), missing.stderr)
    }

    func testRescoreJobSwitchesOrFailsClearly() throws {
        let data = dir + "/data"
        let empty = try CLIRunner.run(["rescore", "--data-dir", data, "--models", dir + "/models"])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.stderr.contains("rescore failed:") && empty.stderr.contains("no positive interactions"), empty.stderr)
        _ = try run(["world", "--users", "150", "--videos", "60", "--data-dir", data])
        let ok = try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "8", "--iters", "2",
                          "--top", "10"])
        XCTAssertTrue(ok.stdout.contains("generation 1 live"), ok.stdout)
        XCTAssertTrue(ok.stderr.contains("iteration 2/2"), ok.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/models").count, 1)
        // A challenger: written and kept, generation 1 stays live until it is activated.
        let challenger = try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "4", "--iters", "2",
                                  "--top", "10", "--no-activate"])
        XCTAssertTrue(challenger.stdout.contains("generation 2 written, not live"), challenger.stdout)
        let live = try run(["generations", "list", "--data-dir", data]).stdout.split(separator: "\n").filter { $0.hasPrefix("*") }
        XCTAssertEqual(live.count, 1)
        XCTAssertTrue(live[0].hasPrefix("* 1\t"), "\(live)")
        _ = try run(["generations", "activate", "2", "--data-dir", data])
        let now = try run(["generations", "list", "--data-dir", data]).stdout.split(separator: "\n").filter { $0.hasPrefix("*") }
        XCTAssertEqual(now.count, 1)
        XCTAssertTrue(now[0].hasPrefix("* 2\t"), "\(now)")
    }

    func testWorkerFoldsInRetrainsOnScheduleAndServesMetrics() async throws {
        let data = dir + "/data"
        _ = try run(["world", "--users", "150", "--videos", "60", "--data-dir", data])
        _ = try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "8", "--iters", "2", "--top", "10"])
        // The rescore covered the log; 1,200 new events arrive for the worker to fold in.
        let events = try EventLog(directory: data + "/events", access: .append)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        _ = try events.appendSync((0..<1_200).map {
            EventDraft(user: "\($0 % 150)", video: "v\($0 % 60)", type: .view, watchMs: 3_000, timeMs: now + Int64($0))
        })
        events.close()
        let port = Self.freePort()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLIRunner.binary)
        p.arguments = ["worker", "rank", "--data-dir", data, "--models", dir + "/models", "--top", "10", "--factors", "8",
                       "--iters", "2", "--retrain-after-events", "1000", "--keep", "1", "--seconds", "6",
                       "--metrics-port", "\(port)"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        // Metrics while it runs.
        var metrics = ""
        for _ in 0..<50 where !metrics.contains("foryou_worker_retrains_total 1") {
            try await Task.sleep(nanoseconds: 100_000_000)
            metrics = (try? await HTTPClient(port: port).get("/metrics"))?.text ?? ""
        }
        p.waitUntilExit()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("retrained in"), log)
        XCTAssertTrue(metrics.contains("foryou_worker_events_applied_total"), metrics)
        XCTAssertTrue(metrics.contains("foryou_worker_lag_events 0"), metrics)
        XCTAssertTrue(metrics.contains("foryou_worker_retrains_total 1"), metrics)
        // The retrain switched generation 2 live and pruned to one.
        let list = try run(["generations", "list", "--data-dir", data]).stdout
        XCTAssertTrue(list.hasPrefix("* 2\t"), list)
        XCTAssertEqual(list.split(separator: "\n").count, 1, list)
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func testEventsImportAppendsOneEventPerRowAndRescoreTrainsOnThem() throws {
        let data = dir + "/data"
        Fixtures.write("a\tx\t1\na\ty\t1\nb\tx\t1\nb\tz\t1\nc\ty\t1\nc\tz\t1\n", to: dir + "/pairs.tsv")
        let r = try run(["events", "import", dir + "/pairs.tsv", "--type", "like", "--data-dir", data])
        XCTAssertTrue(r.stderr.contains("6 events appended"), r.stderr)
        let tail = try run(["events", "tail", "-n", "6", "--data-dir", data]).stdout.split(separator: "\n")
        let first = try JSONSerialization.jsonObject(with: Data(tail[0].utf8)) as! [String: Any]
        XCTAssertEqual(first["user"] as? String, "a")
        XCTAssertEqual(first["video_id"] as? String, "x")
        XCTAssertEqual(first["type"] as? String, "like")
        let bad = try CLIRunner.run(["events", "import", dir + "/pairs.tsv", "--type", "poke", "--data-dir", data])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--type"), bad.stderr)
        Fixtures.write("a\tx\n", to: dir + "/broken.tsv")
        let broken = try CLIRunner.run(["events", "import", dir + "/broken.tsv", "--data-dir", data])
        XCTAssertNotEqual(broken.status, 0)
        XCTAssertTrue(broken.stderr.contains("broken.tsv:1"), broken.stderr)
        let rescored = try run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "2", "--iters", "2", "--top", "3"])
        XCTAssertTrue(rescored.stdout.contains("3 users"), rescored.stdout)
    }

    func testVideosImportValidatesEachLine() throws {
        let data = dir + "/data"
        Fixtures.write("""
            {"id":"a","caption":"one","topic":"pets","duration_ms":1000}
            {"id":"b","status":"processing"}

            """, to: dir + "/good.jsonl")
        XCTAssertTrue(try run(["videos", "import", dir + "/good.jsonl", "--data-dir", data]).stdout.contains("imported 2 videos"))
        let listed = try run(["videos", "list", "--data-dir", data]).stdout
        XCTAssertTrue(listed.contains(#""id":"a""#) && listed.contains(#""status":"processing""#), listed)
        Fixtures.write("{\"id\":\"c\"}\n{\"id\":\"d\",\"status\":\"dancing\"}\n", to: dir + "/bad.jsonl")
        let bad = try CLIRunner.run(["videos", "import", dir + "/bad.jsonl", "--data-dir", data])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("bad.jsonl:2: unknown status 'dancing'"), bad.stderr)
    }

    /// `--events` picks the log: a bad location stops with the reason; `file:DIR` and a Kafka
    /// topic take an import and report it in `events stats`.
    func testEventsOptionChoosesTheLog() throws {
        for (args, message) in [(["serve", "--data-dir", dir, "--events", "kafka://nohost/t"], "brokers must be HOST:PORT"),
                                (["worker", "rank", "--data-dir", dir, "--events", "kafka://h:1/bad topic"], "a topic is 1 to 249"),
                                (["events", "stats", "--data-dir", dir, "--events", "nfs:/x"], "give file:DIR or kafka://")] {
            let r = try CLIRunner.run(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.stderr.contains(message), "\(args): \(r.stderr)")
        }
        Fixtures.write("a\tv1\t1\nb\tv2\t1\na\tv3\t1\n", to: dir + "/rows.tsv")
        var targets = ["file:" + dir + "/elsewhere"]
        if let topic = try Fixtures.kafkaTopic() { targets.append(topic) }
        for target in targets {
            _ = try run(["events", "import", dir + "/rows.tsv", "--type", "like", "--data-dir", dir, "--events", target])
            let stats = try run(["events", "stats", "--data-dir", dir, "--events", target]).stdout
            XCTAssertTrue(stats.hasPrefix("events 3 in "), "\(target): \(stats)")
            XCTAssertTrue(stats.contains("2 users, 3 videos"), stats)
            XCTAssertTrue(stats.contains("like\t3"), stats)
            let tail = try run(["events", "tail", "-n", "2", "--data-dir", dir, "--events", target]).stdout.split(separator: "\n")
            XCTAssertEqual(tail.count, 2)
            XCTAssertTrue(tail.last?.contains(#""video_id":"v3""#) ?? false, "\(tail)")
            // A retrain reads the same log.
            let r = try run(["rescore", "--data-dir", dir, "--events", target, "--models", dir + "/models", "--factors", "2",
                             "--iters", "2", "--top", "2"])
            XCTAssertTrue(r.stderr.contains("events: 3 events -> 3 interactions, 2 users, 3 videos"), r.stderr)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/elsewhere"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/events"), "the data directory's own log was not touched")
    }

    func testTokenCommand() throws {
        let t = try run(["token", "--user", "u1", "--ttl", "30m", "--data-dir", dir]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(t.split(separator: ".").count, 3)
        Fixtures.write("u1\nu2\n\n", to: dir + "/users.txt")
        let many = try run(["token", "--users-from", dir + "/users.txt", "--data-dir", dir]).stdout.split(separator: "\n")
        XCTAssertEqual(many.map { $0.split(separator: "\t").first.map(String.init) }, ["u1", "u2"])
        XCTAssertEqual(many.map { $0.split(separator: "\t").last!.split(separator: ".").count }, [3, 3])
        let both = try CLIRunner.run(["token", "--user", "u1", "--users-from", dir + "/users.txt", "--data-dir", dir])
        XCTAssertNotEqual(both.status, 0)
        let bad = try CLIRunner.run(["token", "--user", "u1", "--ttl", "soon", "--data-dir", dir])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--ttl"), bad.stderr)
    }
}

/// Text appended from another thread (a pipe's readability handler) and read from the test's.
final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var value = ""
    func append(_ s: String) { lock.lock(); value += s; lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return value }
}
