import XCTest
import Foundation
import FeedServer
import CandidateStore
import PostgresStore
import EventLog
import KafkaLog
import TestSupport

/// Two feed servers on one PostgreSQL store and one Kafka topic, behind a round-robin client:
/// paging continues across them, an event posted to one is filtered by the other, an
/// Idempotency-Key retry that lands on the other server replays the first event, and a server
/// started later replays the whole topic.
final class KafkaFeedTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("feed-kafka") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func ids(_ r: HTTPClient.Reply) -> [String] { (r.json["videos"] as? [[String: Any]] ?? []).map { $0["id"] as! String } }

    /// Waits until `s` has applied `count` events (its own and those it followed).
    func waitApplied(_ s: LiveServer, _ count: Int) async throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            let m = try await s.client.get("/metrics").text
            let line = m.split(separator: "\n").first { $0.hasPrefix("foryou_events_total ") }
            if let v = line.flatMap({ Double($0.split(separator: " ")[1]) }), Int(v) >= count { return }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTFail("server did not apply \(count) events in 15 s")
    }

    /// Issue 18: two servers on one store and topic, each request to the other one: 20 pages
    /// never repeat a video, and a cursor retried on the other server gets the identical page.
    func testPagingAlternatingBetweenTwoServersNeverRepeatsAndRetriesAreIdempotent() async throws {
        guard let url = try Fixtures.postgresDatabase() else { throw XCTSkip("no PostgreSQL cluster (scripts/test starts one)") }
        guard let topic = try Fixtures.kafkaTopic() else { throw XCTSkip("no Kafka broker (scripts/test starts one)") }
        let store = try PostgresFeedStore(url: url)
        try World.fill(store, videos: 300, topics: 5, lists: ["gia": (0..<280).map { ($0 * 11) % 280 }])
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try store.upsertVideos((0..<10).map {
            Video(id: "new\($0)", caption: "new", topic: "t9", creator: "n\($0)", durationMs: 10_000, status: .ready,
                  streamURL: "/m/new\($0)", createdAt: now - Int64($0) * 1000)
        })
        var c = FeedServerConfig()
        c.dataDir = dir
        c.explorationShare = 0.2
        c.kafka = try KafkaLocation(url: topic, environment: [:])
        let a = try await LiveServer(config: c, store: store)
        let b = try await LiveServer(config: c, store: try PostgresFeedStore(url: url))
        let servers = [a, b]
        let t = a.token("gia")
        var cursor: String? = nil
        var served: [String] = []
        for page in 0..<20 {
            let path = "/api/v1/foryou?limit=10" + (cursor.map { "&cursor=\($0)" } ?? "")
            let r = try await servers[page % 2].client.get(path, token: t)
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(ids(r).count, 10, "page \(page)")
            if cursor != nil {
                let retried = try await servers[(page + 1) % 2].client.get(path, token: t)
                XCTAssertEqual(ids(retried), ids(r), "page \(page) retried on the other server")
            }
            served += ids(r)
            cursor = r.json["next_cursor"] as? String
        }
        XCTAssertEqual(Set(served).count, 200, "repeats: \(Dictionary(grouping: served, by: { $0 }).filter { $1.count > 1 }.keys.sorted())")
        await a.stop()
        await b.stop()
    }

    func testTwoServersShareOneStoreAndOneTopic() async throws {
        guard let url = try Fixtures.postgresDatabase() else { throw XCTSkip("no PostgreSQL cluster (scripts/test starts one)") }
        guard let topic = try Fixtures.kafkaTopic() else { throw XCTSkip("no Kafka broker (scripts/test starts one)") }
        let store = try PostgresFeedStore(url: url)
        try World.fill(store, lists: ["erin": Array(0..<40), "finn": Array(10..<50)])
        var c = FeedServerConfig()
        c.dataDir = dir  // the same secret.key: each server verifies the other's tokens and cursors
        c.explorationShare = 0
        c.kafka = try KafkaLocation(url: topic, environment: [:])
        let a = try await LiveServer(config: c, store: store)
        let b = try await LiveServer(config: c, store: try PostgresFeedStore(url: url))
        a.service.startBackgroundRefresh()
        b.service.startBackgroundRefresh()
        let servers = [a, b]
        let t = a.token("erin")

        // Round robin: page 1 from a, page 2 from b with a's cursor, page 3 from a with b's.
        let p1 = try await servers[0].client.get("/api/v1/foryou?limit=5", token: t)
        XCTAssertEqual(ids(p1), ["v0", "v1", "v2", "v3", "v4"])
        // erin skips v6 and likes v1 through a; b must filter v6 out of the next page.
        let e1 = try await a.client.post("/api/v1/events", token: t, #"{"video_id":"v6","type":"skip","watch_ms":200}"#)
        XCTAssertEqual(e1.status, 202, e1.text)
        let e2 = try await a.client.post("/api/v1/events", token: t, #"{"video_id":"v1","type":"like","watch_ms":9000}"#,
                                         headers: ["Idempotency-Key": "like-1"])
        XCTAssertEqual(e2.status, 202, e2.text)
        try await waitApplied(b, 2)
        let p2 = try await servers[1].client.get("/api/v1/foryou?limit=5&cursor=\(p1.json["next_cursor"] as! String)", token: t)
        XCTAssertEqual(p2.status, 200, p2.text)
        XCTAssertEqual(ids(p2), ["v5", "v7", "v8", "v9", "v10"], "b filters what erin skipped through a, and continues a's page")
        let p3 = try await servers[0].client.get("/api/v1/foryou?limit=5&cursor=\(p2.json["next_cursor"] as! String)", token: t)
        XCTAssertEqual(ids(p3), ["v11", "v12", "v13", "v14", "v15"])
        // The client retries the like on b (it never saw a's 202): the same event, not a second one.
        let retry = try await b.client.post("/api/v1/events", token: t, #"{"video_id":"v1","type":"like","watch_ms":9000}"#,
                                            headers: ["Idempotency-Key": "like-1"])
        XCTAssertEqual(retry.status, 202, retry.text)
        XCTAssertEqual(retry.json["event_id"] as? String, e2.json["event_id"] as? String)
        XCTAssertEqual(retry.json["replayed"] as? Bool, true)

        // finn posts through b (a batch) and a: both servers end with every event, once.
        let tf = b.token("finn")
        let batch = try await b.client.post("/api/v1/events:batch", token: tf,
                                            #"{"events":[{"video_id":"v10","type":"view","watch_ms":3000},{"video_id":"v11","type":"hide","watch_ms":0}]}"#)
        XCTAssertEqual(batch.status, 202, batch.text)
        let one = try await a.client.post("/api/v1/events", token: tf, #"{"video_id":"v12","type":"skip","watch_ms":100}"#)
        XCTAssertEqual(one.status, 202)
        try await waitApplied(a, 5)
        try await waitApplied(b, 5)
        for s in servers {
            let f = try await s.client.get("/api/v1/foryou?limit=3", token: tf)
            XCTAssertEqual(ids(f), ["v13", "v14", "v15"], "finn's view, hide and skip are filtered on both servers")
        }
        // Every acknowledged event is on the topic once, finn's in the order they were acknowledged.
        let reader = try KafkaReader(location: c.kafka!)
        try reader.assignAll()
        var all: [Event] = []
        while !reader.caughtUp { all += try reader.poll(max: 100, timeoutMs: 2_000) }
        XCTAssertEqual(all.count, 5)
        XCTAssertEqual(all.filter { $0.user == "finn" }.map(\.video), ["v10", "v11", "v12"])

        // A third server started now replays the topic: seen filtering from its first request.
        let late = try await LiveServer(config: c, store: try PostgresFeedStore(url: url))
        XCTAssertTrue(late.service.startupNotes.contains { $0.contains("replayed 5 events") }, "\(late.service.startupNotes)")
        let f = try await late.client.get("/api/v1/foryou?limit=3", token: tf)
        XCTAssertEqual(ids(f), ["v13", "v14", "v15"])
        let r = try await late.client.get("/readyz")
        XCTAssertEqual(r.status, 200, r.text)
        await late.stop()
        await a.stop()
        await b.stop()
    }

    /// A broker that stops answering for a while (SIGSTOP: connections stay open, requests time
    /// out) delays acknowledgements but stops nothing: the POST made meanwhile gets its 202 once
    /// the broker is back, the follower goes on, /readyz stays 200.
    func testAStalledBrokerDelaysButDoesNotStopTheServer() async throws {
        guard try Fixtures.kafkaTopic() != nil else { throw XCTSkip("no Kafka broker (scripts/test starts one)") }
        // A broker of this test's own, to stall without disturbing the others.
        let kdir = "/tmp/foryou-stall-\(getpid())"
        let start = CLIRunner.shell("'\(Fixtures.repoRoot)/scripts/kafka-broker' start \(kdir)")
        XCTAssertEqual(start.status, 0)
        let brokers = start.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = pid_t(try String(contentsOfFile: kdir + "/pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))!
        defer {
            kill(pid, SIGCONT)
            _ = CLIRunner.shell("'\(Fixtures.repoRoot)/scripts/kafka-broker' stop \(kdir)")
            try? FileManager.default.removeItem(atPath: kdir)
        }
        let store = try World.make(dir, lists: ["gus": Array(0..<30)])
        _ = store
        var c = FeedServerConfig()
        c.dataDir = dir
        c.explorationShare = 0
        c.kafka = try KafkaLocation(url: "kafka://\(brokers)/stall", environment: [:])
        let s = try await LiveServer(config: c)
        s.service.startBackgroundRefresh()
        let t = s.token("gus")
        let before = try await s.client.post("/api/v1/events", token: t, #"{"video_id":"v0","type":"view","watch_ms":100}"#)
        XCTAssertEqual(before.status, 202, before.text)
        kill(pid, SIGSTOP)
        async let during = s.client.post("/api/v1/events", token: t, #"{"video_id":"v1","type":"skip","watch_ms":100}"#)
        try await Task.sleep(nanoseconds: 3_000_000_000)
        kill(pid, SIGCONT)
        let d = try await during
        XCTAssertEqual(d.status, 202, d.text)
        try await waitApplied(s, 2)
        let page = try await s.client.get("/api/v1/foryou?limit=3", token: t)
        XCTAssertEqual(ids(page), ["v2", "v3", "v4"])
        XCTAssertNil(s.service.followFailure)
        let r = try await s.client.get("/readyz")
        XCTAssertEqual(r.status, 200, r.text)
        await s.stop()
    }

    /// With a Kafka log, what a server served under an experiment goes to `<topic>.exposures`
    /// (shared by every server, like the events), never to the events topic.
    func testExposuresGoToTheirOwnTopic() async throws {
        guard let topic = try Fixtures.kafkaTopic() else { throw XCTSkip("no Kafka broker (scripts/test starts one)") }
        let store = try World.make(dir, lists: ["hal": Array(0..<30)])
        let live = try store.generations().first!.id
        let other = try store.writeGeneration(model: "pop", runId: "r2", items: (0..<60).map { "v\($0)" },
                                              lists: [(user: "hal", items: (30..<60).map(Int32.init), scores: (0..<30).map { Float(60 - $0) })],
                                              activate: false)
        _ = try store.createExperiment(name: "k", variants: [.init(name: "a", generation: live, weight: 1),
                                                              .init(name: "b", generation: other, weight: 1)])
        try store.startExperiment("k", at: Int64(Date().timeIntervalSince1970 * 1000))
        var c = FeedServerConfig()
        c.dataDir = dir
        c.explorationShare = 0
        c.kafka = try KafkaLocation(url: topic, environment: [:])
        let s = try await LiveServer(config: c)
        let t = s.token("hal")
        let p1 = try await s.client.get("/api/v1/foryou?limit=5", token: t)
        let p2 = try await s.client.get("/api/v1/foryou?limit=5&cursor=\(p1.json["next_cursor"] as! String)", token: t)
        let posted = try await s.client.post("/api/v1/events", token: t, #"{"video_id":"v1","type":"like","watch_ms":0}"#)
        XCTAssertEqual(posted.status, 202)
        let k = try KafkaLocation(url: topic, environment: [:])
        let exposuresTopic = KafkaLocation(brokers: k.brokers, topic: k.topic + ".exposures")
        var got: [Exposure] = []
        let deadline = Date().addingTimeInterval(20)
        while got.count < 2 && Date() < deadline {
            got = (try? Exposure.read(KafkaTopicSource(location: exposuresTopic), experiment: "k")) ?? []
            if got.count < 2 { try await Task.sleep(nanoseconds: 200_000_000) }
        }
        await s.stop()
        let variant = got.first?.variant ?? "?"
        XCTAssertEqual(got.map(\.videos), [ids(p1), ids(p2)])
        XCTAssertTrue(["a", "b"].contains(variant) && got.allSatisfy { $0.user == "hal" && $0.variant == variant })
        // The events topic holds the like only.
        var events: [Event] = []
        try KafkaTopicSource(location: k).forEachEvent { events.append($0) }
        XCTAssertEqual(events.map(\.video), ["v1"])
    }
}
