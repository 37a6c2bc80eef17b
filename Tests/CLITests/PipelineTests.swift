import XCTest
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestSupport
import ForYou

/// The online and offline halves as the separate processes they are in production: `foryou serve`
/// takes events over HTTP and appends them to the log; `foryou worker rank` folds them into the
/// candidate store; the next page shows it.
final class PipelineTests: XCTestCase {
    var dir = ""
    var processes: [Process] = []
    override func setUp() { dir = Fixtures.tempDir("pipeline") }
    override func tearDown() {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Starts a `foryou` process (killed at tear-down) and waits for `ready` on its stderr.
    func start(_ args: [String], ready: String) throws -> (Process, String) {
        let (p, _, match) = try CLIRunner.start(args, ready: ready)
        processes.append(p)
        return (p, match)
    }

    func prepare(users: Int = 300, videos: Int = 120, model: String = "als") throws -> String {
        let data = dir + "/data"
        XCTAssertEqual(try CLIRunner.run(["world", "--users", "\(users)", "--videos", "\(videos)", "--topics", "6",
                                          "--data-dir", data]).status, 0)
        let r = try CLIRunner.run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "16", "--iters", "6",
                                   "--top", "60", "--model", model, "--lambda", "20", "--trees", "60"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return data
    }

    func topicShare(_ reply: HTTPClient.Reply, _ topic: String) -> Double {
        let videos = reply.json["videos"] as? [[String: Any]] ?? []
        return Double(videos.count { $0["topic"] as? String == topic }) / Double(max(1, videos.count))
    }

    func testLikesOfOneTopicRaiseItsShareOfTheNextPageWithinSeconds() async throws {
        try await likesOfOneTopicRaiseItsShare(try prepare())
    }

    /// A learned second stage (rescore --model rerank: ALS, EASE, ease-recent and popularity
    /// candidates, LambdaMART) serves pages through the feed, and the worker re-ranks a
    /// folded-in user's candidates after their likes.
    func testASecondStageGenerationServesPagesAndTheWorkerReranksAfterLikes() async throws {
        let data = try prepare(model: "rerank")
        let store = try DataDirectory(data).openStore()
        let live = try XCTUnwrap(try store.liveGeneration())
        XCTAssertEqual(live.model, "rerank")
        let src = try XCTUnwrap(try store.source(generation: live.id)?.modelDir)
        let run = try ModelStore.readRun(src)
        XCTAssertEqual(run.params["sources"], "als,ease,ease-recent,popularity")
        XCTAssertFalse((run.featureImportance ?? [:]).isEmpty)
        // Two pages through the cursor: full, and no video twice.
        let (_, listening) = try start(["serve", "--data-dir", data, "--port", "0"], ready: #"listening on http://127\.0\.0\.1:\d+"#)
        let client = HTTPClient(port: Int(listening.split(separator: ":").last!)!)
        let token = try CLIRunner.run(["token", "--user", "11", "--data-dir", data]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let p1 = try await client.get("/api/v1/foryou?limit=10", token: token)
        XCTAssertEqual(p1.status, 200, p1.text)
        let cursor = try XCTUnwrap(p1.json["next_cursor"] as? String)
        let p2 = try await client.get("/api/v1/foryou?limit=10&cursor=\(cursor)", token: token)
        let ids = { (r: HTTPClient.Reply) in (r.json["videos"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String } }
        XCTAssertEqual(ids(p1).count, 10)
        XCTAssertEqual(ids(p2).count, 10)
        XCTAssertTrue(Set(ids(p1)).isDisjoint(with: ids(p2)), "\(ids(p1)) / \(ids(p2))")
        // The page comes from the second stage's list (the feed may mix in a few exploration slots).
        let list = try XCTUnwrap(try store.candidates(generation: live.id, user: "11")).map(\.video)
        XCTAssertGreaterThanOrEqual(Set(ids(p1)).intersection(list.prefix(20)).count, 6, "page 1 \(ids(p1)) vs list \(list.prefix(20))")
        try await likesOfOneTopicRaiseItsShare(data, client: client, minimumRise: 0.1)
    }

    /// The A/B flow with a second-stage challenger: rescore --model rerank --no-activate keeps
    /// ALS live, an experiment serves both, the simulator's people see both, the report has both.
    func testASecondStageChallengerRunsInAnABTest() throws {
        let data = try prepare()  // generation 1: ALS, live
        func ok(_ args: [String]) throws -> String {
            let r = try CLIRunner.run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            return r.stdout
        }
        let challenger = try ok(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "16", "--iters", "6",
                                 "--top", "60", "--model", "rerank", "--lambda", "20", "--trees", "60", "--no-activate"])
        XCTAssertTrue(challenger.contains("generation 2 written, not live"), challenger)
        XCTAssertEqual(try DataDirectory(data).openStore().liveGeneration()?.id, 1)
        _ = try ok(["experiment", "create", "als-vs-rerank", "--data-dir", data, "--variant", "control=1:1", "--variant", "treatment=2:1"])
        _ = try ok(["experiment", "start", "als-vs-rerank", "--data-dir", data])
        let (_, listening) = try start(["serve", "--data-dir", data, "--port", "0"], ready: #"listening on http://127\.0\.0\.1:\d+"#)
        let port = Int(listening.split(separator: ":").last!)!
        let sim = try ok(["simulate", "--data-dir", data, "--url", "http://127.0.0.1:\(port)", "--users", "300", "--seconds", "5",
                          "--rate", "30"])
        XCTAssertTrue(sim.contains("0 errors") && sim.contains("served under als-vs-rerank/treatment"), sim)
        let report = try JSONSerialization.jsonObject(with: Data(try ok(["experiment", "report", "als-vs-rerank", "--data-dir", data,
                                                                          "--json"]).utf8)) as! [String: Any]
        let arms = report["arms"] as! [[String: Any]]
        XCTAssertEqual(arms.map { $0["name"] as! String }, ["control", "treatment"])
        XCTAssertTrue(arms.allSatisfy { ($0["users"] as! Int) > 5 }, "\(arms)")
    }

    func likesOfOneTopicRaiseItsShare(_ data: String, client existing: HTTPClient? = nil, minimumRise: Double = 0.2) async throws {
        let client: HTTPClient
        if let existing { client = existing } else {
            let (_, listening) = try start(["serve", "--data-dir", data, "--port", "0"], ready: #"listening on http://127\.0\.0\.1:\d+"#)
            client = HTTPClient(port: Int(listening.split(separator: ":").last!)!)
        }
        let user = "7"
        let token = try CLIRunner.run(["token", "--user", user, "--data-dir", data]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let store = try DataDirectory(data).openStore()
        let catalog = try store.videos()
        let topics = Set(catalog.map(\.topic)).sorted()
        // The topic this user's first page shows least of.
        let first = try await client.get("/api/v1/foryou?limit=10", token: token)
        XCTAssertEqual(first.status, 200, first.text)
        let (topic, before) = topics.map { ($0, topicShare(first, $0)) }.min { $0.1 < $1.1 }!
        // The person completes and likes a dozen videos of it.
        for v in catalog.filter({ $0.topic == topic }).prefix(12) {
            for (type, watch) in [("complete", v.durationMs), ("like", 0)] {
                let r = try await client.send("POST", "/api/v1/events", token: token,
                                              body: #"{"video_id":"\#(v.id)","type":"\#(type)","watch_ms":\#(watch)}"#)
                XCTAssertEqual(r.status, 202, r.text)
            }
        }
        // Without the worker, the page does not move that way (only the watched videos drop out).
        let unranked = topicShare(try await client.get("/api/v1/foryou?limit=10", token: token), topic)
        XCTAssertLessThan(unranked, before + 0.2, "share of \(topic) rose without the worker: \(before) -> \(unranked)")
        _ = try start(["worker", "rank", "--data-dir", data, "--top", "60", "--idle", "0.05"], ready: "worker rank: starting")
        let posted = Date()
        var after = before, elapsed = 0.0
        while Date().timeIntervalSince(posted) < 15 {
            let page = try await client.get("/api/v1/foryou?limit=10", token: token)  // a new session each time
            after = topicShare(page, topic)
            elapsed = Date().timeIntervalSince(posted)
            if after >= before + minimumRise { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTAssertGreaterThanOrEqual(after, before + minimumRise, "share of \(topic): \(before) -> \(after) after \(elapsed)s")
        XCTAssertLessThan(elapsed, 5, "the next page reflected the likes only \(elapsed)s after the worker started")
        print(String(format: "pipeline: share of %@ %.1f -> %.1f, %.2fs after the worker started", topic, before, after, elapsed))
    }

    /// Every user's list in the live generation and the worker's cursor.
    func state(_ data: String, users: [String]) throws -> ([String: [String]], UInt64?) {
        let store = try DataDirectory(data).openStore()
        let gen = try XCTUnwrap(try store.liveGeneration()).id
        var lists: [String: [String]] = [:]
        for u in users { lists[u] = try store.candidates(generation: gen, user: u)?.map(\.video) }
        return (lists, try store.consumerCursor("ranker")?.nextEvent)
    }

    func testAWorkerKilledMidBatchAndRestartedEndsWhereAnUninterruptedOneDoes() throws {
        let data = try prepare(users: 400, videos: 150)
        // A backlog after what the live generation was trained on, including new users.
        let log = try EventLog(directory: data + "/events", access: .append)
        var g = SeededGenerator(seed: 5)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let types: [EventType] = [.view, .view, .complete, .like, .skip]
        _ = try log.appendSync((0..<12_000).map { n in
            EventDraft(user: "\(g.next() % 450)", video: "v\(g.next() % 150)", type: types[Int(g.next() % 5)],
                       watchMs: UInt32(g.next() % 30_000), timeMs: now + Int64(n))
        })
        let end = log.endId
        log.close()
        let copy = dir + "/copy"
        try FileManager.default.copyItem(atPath: data, toPath: copy)
        let users = (0..<450).map { "\($0)" }

        // Uninterrupted.
        let clean = try CLIRunner.run(["worker", "rank", "--data-dir", copy, "--top", "60", "--batch", "100", "--seconds", "60",
                                       "--until-caught-up"])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        let expected = try state(copy, users: users)
        XCTAssertEqual(expected.1, end)

        // SIGKILLed at varied moments while it works through the same backlog in the same batches.
        var kills = 0, delay = 0.15
        while try state(data, users: []).1 != end && kills < 25 {
            let (p, _) = try start(["worker", "rank", "--data-dir", data, "--top", "60", "--batch", "100", "--seconds", "60",
                                    "--until-caught-up"], ready: "worker rank: starting")
            usleep(useconds_t(delay * 1e6))
            if p.isRunning { kill(p.processIdentifier, SIGKILL); kills += 1 }
            p.waitUntilExit()
            delay = delay >= 0.4 ? 0.1 : delay + 0.07
        }
        XCTAssertGreaterThanOrEqual(kills, 3, "the worker finished before it could be killed")
        print("pipeline: worker SIGKILLed \(kills) times over a backlog of \(end) events")
        // Let the last one finish.
        let last = try CLIRunner.run(["worker", "rank", "--data-dir", data, "--top", "60", "--batch", "100", "--seconds", "60",
                                      "--until-caught-up"])
        XCTAssertEqual(last.status, 0, last.stderr)
        let got = try state(data, users: users)
        XCTAssertEqual(got.1, end)
        XCTAssertEqual(got.0.count, expected.0.count)
        var differing: [String] = []
        for u in users where got.0[u] != expected.0[u] { differing.append(u) }
        XCTAssertEqual(differing, [], "users whose lists differ after \(kills) kills")
    }

    /// The same guarantee on Kafka: workers of one consumer group read the topic, each
    /// partition's cursor commits with the lists its events produced; SIGKILLed mid-backlog and
    /// restarted (a new group member, after the dead one's session expired), the worker ends with
    /// the lists of an uninterrupted run, every partition's cursor at the topic's end.
    func testAKafkaWorkerKilledAndRestartedNeitherLosesNorRepeatsEvents() throws {
        guard let topic = try Fixtures.kafkaTopic() else { throw XCTSkip("no Kafka broker (scripts/test starts one)") }
        let data = try prepare(users: 300, videos: 120)
        let producer = try KafkaProducer(location: try KafkaLocation(url: topic, environment: [:]))
        var g = SeededGenerator(seed: 9)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let types: [EventType] = [.view, .view, .complete, .like, .skip]
        var ends: [Int32: Int64] = [:]
        for chunk in 0..<8 {
            let ids = try producer.appendSync((0..<2_500).map { n in
                EventDraft(user: "\(g.next() % 340)", video: "v\(g.next() % 120)", type: types[Int(g.next() % 5)],
                           watchMs: UInt32(g.next() % 30_000), timeMs: now + Int64(chunk * 2_500 + n))
            })
            for id in ids { ends[KafkaEventID.partition(id)] = max(ends[KafkaEventID.partition(id)] ?? 0, KafkaEventID.offset(id) + 1) }
        }
        producer.close()
        let copy = dir + "/copy"
        try FileManager.default.copyItem(atPath: data, toPath: copy)
        let users = (0..<340).map { "\($0)" }
        func positions(_ data: String, _ consumer: String) throws -> [Int32: Int64] {
            let store = try DataDirectory(data).openStore()
            var out: [Int32: Int64] = [:]
            for p in ends.keys {
                if let c = try store.consumerCursor("\(consumer)@\(topic.split(separator: "/").last!)/\(p)") {
                    out[p] = KafkaEventID.offset(c.nextEvent)
                }
            }
            return out
        }
        let args = ["--top", "60", "--batch", "50", "--seconds", "120", "--until-caught-up", "--events", topic]

        // Uninterrupted, as its own group.
        let clean = try CLIRunner.run(["worker", "rank", "--data-dir", copy, "--consumer", "clean"] + args)
        XCTAssertEqual(clean.status, 0, clean.stderr)
        XCTAssertEqual(try positions(copy, "clean"), ends)
        let expected = try state(copy, users: users).0

        // Killed three times, each time once it has stored some batches and not all.
        var kills = 0
        for round in 0..<3 {
            let before = try positions(data, "ranker").values.reduce(0, +)
            let (p, _) = try start(["worker", "rank", "--data-dir", data] + args, ready: "worker rank: starting")
            let deadline = Date().addingTimeInterval(60)
            while p.isRunning, Date() < deadline, try positions(data, "ranker").values.reduce(0, +) <= before + 100 { usleep(5_000) }
            usleep(useconds_t(round * 40_000))
            if p.isRunning { kill(p.processIdentifier, SIGKILL); kills += 1 }
            p.waitUntilExit()
        }
        XCTAssertGreaterThanOrEqual(kills, 2, "the worker finished before it could be killed")
        let killedAt = try positions(data, "ranker")
        XCTAssertNotEqual(killedAt, ends, "the kills left work to do")
        let last = try CLIRunner.run(["worker", "rank", "--data-dir", data] + args)
        XCTAssertEqual(last.status, 0, last.stderr)
        XCTAssertEqual(try positions(data, "ranker"), ends)
        let got = try state(data, users: users).0
        var differing: [String] = []
        for u in users where got[u] != expected[u] { differing.append(u) }
        XCTAssertEqual(differing, [], "users whose lists differ after \(kills) kills")
        print("pipeline: kafka worker SIGKILLed \(kills) times over \(ends.values.reduce(0, +)) events; stopped at \(killedAt)")
    }

    /// Popularity against ALS as an online experiment: the simulator's people (known tastes)
    /// use the real server; the report, read from the event log, finds ALS ahead.
    func testAnABTestOfPopularityAgainstALSThroughTheSimulator() throws {
        let data = try prepare(users: 400, videos: 150)  // generation 1: ALS, live
        func ok(_ args: [String]) throws -> String {
            let r = try CLIRunner.run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            return r.stdout
        }
        _ = try ok(["train", "--events", data, "--model", "popularity", "--out", dir + "/models/pop"])
        _ = try ok(["score-all", "--model", dir + "/models/pop", "--into", data, "--no-activate", "--top", "60"])
        _ = try ok(["experiment", "create", "pop-vs-als", "--data-dir", data, "--variant", "control=2:50", "--variant", "treatment=1:50"])
        // Before any event: "no data", not nan and p = 1; JSON carries nulls (it cannot carry NaN).
        XCTAssertTrue(try ok(["experiment", "report", "pop-vs-als", "--data-dir", data]).contains("no data: the experiment has not started"))
        let none = try JSONSerialization.jsonObject(with: Data(try ok(["experiment", "report", "pop-vs-als", "--data-dir", data, "--json"]).utf8))
            as! [String: Any]
        XCTAssertEqual(none["status"] as? String, "no data")
        XCTAssertTrue(none["srm_p"] is NSNull)
        // A mistaken draft is deleted; a started experiment is not.
        _ = try ok(["experiment", "create", "typo", "--data-dir", data, "--variant", "a=2:1", "--variant", "b=1:1"])
        XCTAssertTrue(try ok(["experiment", "delete", "typo", "--data-dir", data]).contains("experiment typo deleted"))
        XCTAssertFalse(try ok(["experiment", "list", "--data-dir", data]).contains("typo"))
        _ = try ok(["experiment", "start", "pop-vs-als", "--data-dir", data])
        let notDraft = try CLIRunner.run(["experiment", "delete", "pop-vs-als", "--data-dir", data])
        XCTAssertNotEqual(notDraft.status, 0)
        XCTAssertTrue(notDraft.stderr.contains("only a draft"), notDraft.stderr)
        let (_, listening) = try start(["serve", "--data-dir", data, "--port", "0"], ready: #"listening on http://127\.0\.0\.1:\d+"#)
        let port = Int(listening.split(separator: ":").last!)!
        let sim = try ok(["simulate", "--data-dir", data, "--url", "http://127.0.0.1:\(port)", "--users", "400", "--seconds", "8",
                          "--rate", "30"])
        XCTAssertTrue(sim.contains("0 errors"), sim)
        XCTAssertTrue(sim.contains("served under pop-vs-als/control"), sim)
        XCTAssertTrue(sim.contains("served under pop-vs-als/treatment"), sim)
        let running = try ok(["experiment", "report", "pop-vs-als", "--data-dir", data])
        XCTAssertTrue(running.contains("warning: the experiment is still running") && running.contains("MDE (80 %)"), running)
        _ = try ok(["experiment", "stop", "pop-vs-als", "--data-dir", data])
        let report = try JSONSerialization.jsonObject(with: Data(try ok(["experiment", "report", "pop-vs-als", "--data-dir", data, "--json"]).utf8))
            as! [String: Any]
        let arms = report["arms"] as! [[String: Any]]
        XCTAssertEqual(arms.map { $0["name"] as! String }, ["control", "treatment"])
        XCTAssertTrue(arms.allSatisfy { ($0["users"] as! Int) > 10 }, "\(arms)")
        XCTAssertEqual(report["srm_mismatch"] as? Bool, false)
        XCTAssertNotNil(ISO8601DateFormatter().date(from: ((report["started_at"] as? String) ?? "").replacingOccurrences(
            of: #"\.\d+Z$"#, with: "Z", options: .regularExpression)), "\(report["started_at"] ?? "nil")")
        // The server logged what it served: impressions are its exposures, and its own health is a guardrail.
        XCTAssertEqual(report["from_exposures"] as? Bool, true)
        XCTAssertTrue(arms.allSatisfy { ($0["pages"] as! Int) > 0 && ($0["latency_p99_ms"] as? Double ?? 0) > 0 }, "\(arms)")
        XCTAssertEqual((report["guardrails"] as? [[String: Any]])?.map { $0["metric"] as! String },
                       ["skip_rate", "hide_rate", "fallback_share", "error_rate", "latency_p99_ms"])
        XCTAssertEqual(report["primary"] as? String, "completion_rate")
        let completion = (report["effects"] as! [[String: Any]]).first { $0["metric"] as? String == "completion_rate" }!
        XCTAssertGreaterThan(completion["low"] as! Double, 0, "ALS completion rate minus popularity's: \(completion)")
        // Stopped: pages carry no experiment any more (once the server refreshed).
        let human = try ok(["experiment", "report", "pop-vs-als", "--data-dir", data, "--html", dir + "/ab.html"])
        XCTAssertTrue(human.contains("consistent with the weights") && human.contains("always-valid"), human)
        let page = try String(contentsOfFile: dir + "/ab.html", encoding: .utf8)
        XCTAssertTrue(page.contains("<svg") && page.contains("completion_rate: treatment minus control"), page)

        // The same pair interleaved: everyone gets pages drafted from both, and ALS (A) is preferred.
        _ = try ok(["experiment", "create", "als-x-pop", "--data-dir", data, "--interleave", "als=1", "pop=2"])
        _ = try ok(["experiment", "start", "als-x-pop", "--data-dir", data])
        Thread.sleep(forTimeInterval: 3)  // the server's refresh picks it up
        let sim2 = try ok(["simulate", "--data-dir", data, "--url", "http://127.0.0.1:\(port)", "--users", "400", "--seconds", "6",
                           "--rate", "30"])
        XCTAssertTrue(sim2.contains("0 errors") && sim2.contains("served under als-x-pop/als") && sim2.contains("served under als-x-pop/pop"), sim2)
        _ = try ok(["experiment", "stop", "als-x-pop", "--data-dir", data])
        let il = try JSONSerialization.jsonObject(with: Data(try ok(["experiment", "report", "als-x-pop", "--data-dir", data, "--json"]).utf8))
            as! [String: Any]
        let pref = il["interleaving"] as! [String: Any]
        XCTAssertGreaterThan(pref["users"] as! Int, 10, "\(pref)")
        XCTAssertLessThan(pref["high"] as! Double, 0, "popularity (B) minus ALS (A) preference: \(pref)")
        XCTAssertGreaterThan(pref["credit_a"] as! Int, pref["credit_b"] as! Int)
        XCTAssertTrue(try ok(["experiment", "report", "als-x-pop", "--data-dir", data]).contains("(A preferred)"))
    }

    /// The web client in headless Chromium (Playwright, Debian's chromium): the first clip plays,
    /// the next three preload and the fourth does not, moving on posts events into the log.
    func testTheWebClientPlaysTheFirstClipAndPreloadsTheNextThree() throws {
        let data = dir + "/data"
        XCTAssertEqual(try CLIRunner.run(["world", "--users", "40", "--videos", "16", "--topics", "4", "--data-dir", data]).status, 0)
        let r = try CLIRunner.run(["rescore", "--data-dir", data, "--models", dir + "/models", "--factors", "8", "--iters", "4", "--top", "16"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let media = try CLIRunner.run(["media", "demo-clips", "--data-dir", data, "--clips", "16", "--seconds", "3", "--size", "180x320"])
        XCTAssertEqual(media.status, 0, media.stderr)
        let (_, listening) = try start(["serve", "--data-dir", data, "--port", "0"], ready: #"listening on http://127\.0\.0\.1:\d+"#)
        let port = Int(listening.split(separator: ":").last!)!
        // A new person: no history, so every clip is unseen.
        let token = try CLIRunner.run(["token", "--user", "newcomer", "--data-dir", data]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let before = try EventLog(directory: data + "/events").endId
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let out = try CLIRunner.python([root + "/scripts/check-web-client", "http://127.0.0.1:\(port)", token])
        let r2 = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out)
        XCTAssertEqual(r2["page_errors"] as? [String], [])
        XCTAssertEqual(r2["console_errors"] as? [String], [])
        XCTAssertGreaterThanOrEqual(r2["ready_state"] as? Int ?? 0, 3)
        XCTAssertGreaterThan(r2["current_time"] as? Double ?? 0, 0.5)
        XCTAssertEqual(r2["video_width"] as? Int, 180)
        XCTAssertEqual(r2["segments_requested"] as? [Bool], [true, true, true, true, false], "current + next 3, not the 4th: \(out)")
        XCTAssertEqual(r2["fifth_has_source"] as? Bool, false)
        XCTAssertEqual(r2["after_move_sixth_has_source"] as? Bool, true, "moving on extends the preload window")
        XCTAssertEqual(r2["event_posts"] as? [Int], [202])
        let log = try EventLog(directory: data + "/events")
        var mine: [Event] = []
        try log.forEach(from: before) { if $0.user == "newcomer" { mine.append($0) } }
        log.close()
        XCTAssertFalse(mine.isEmpty, "the first clip's view or skip is in the log")
        XCTAssertTrue(mine.allSatisfy { [.view, .skip, .complete].contains($0.type) && $0.watchMs > 0 }, "\(mine)")
        print("web client: first frame after \(r2["first_frame_ms"] ?? "?") ms")
    }
}
