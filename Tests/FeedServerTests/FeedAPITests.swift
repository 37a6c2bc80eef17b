import XCTest
import Foundation
import FeedServer
import CandidateStore
import EventLog
import TestSupport

final class FeedAPITests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("feed") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func config(_ tweak: (inout FeedServerConfig) -> Void = { _ in }) -> FeedServerConfig {
        var c = FeedServerConfig()
        c.dataDir = dir
        c.explorationShare = 0
        tweak(&c)
        return c
    }

    func ids(_ r: HTTPClient.Reply) -> [String] {
        (r.json["videos"] as? [[String: Any]] ?? []).map { $0["id"] as! String }
    }

    func query(_ cursor: Any?, limit: Int = 10) -> String {
        guard let c = cursor as? String else { return "/api/v1/foryou?limit=\(limit)" }
        return "/api/v1/foryou?limit=\(limit)&cursor=\(c)"
    }

    func testPagingFollowsTheListAndNeverRepeats() async throws {
        _ = try World.make(dir, lists: ["alice": Array(0..<30)])
        try await pageThroughAlicesList(store: nil)
    }

    /// With the list cache on, pages after the first are built from memory on the event loop
    /// (the first read goes to the blocking pool): the same pages.
    /// Issue 18: the cursor alone decides the next page. On SQLite and the file log (one writer,
    /// so the "other server" is a restarted one with nothing in memory): 20 pages, no repeats,
    /// diversity deferrals and exploration slots included; every cursor retried gives the same page.
    func testTheCursorAloneDecidesThePageAcrossRestartsAndRetries() async throws {
        let store = try DataDirectory(dir).openStore()
        let old = Int64(Date().timeIntervalSince1970 * 1000) - 30 * 86_400_000
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // 260 listed videos in 4 topics (so diversity defers some), 12 fresh uploads nobody listed.
        try store.upsertVideos((0..<260).map {
            Video(id: "v\($0)", caption: "clip", topic: "t\($0 % 4)", creator: "c\($0 % 9)", durationMs: 10_000, status: .ready,
                  streamURL: "/m/\($0)", createdAt: old + Int64($0))
        } + (0..<12).map {
            Video(id: "new\($0)", caption: "new", topic: "t9", creator: "n\($0)", durationMs: 10_000, status: .ready,
                  streamURL: "/m/new\($0)", createdAt: now - Int64($0) * 1000)
        })
        let order = (0..<260).map { ($0 * 7) % 260 }  // topics bunch up in places
        _ = try store.writeGeneration(model: "als", runId: "r", items: (0..<260).map { "v\($0)" },
                                      lists: [(user: "zoe", items: order.map(Int32.init), scores: order.map { Float(1000 - $0) })],
                                      activate: true)
        var servedAll: [String] = []
        var cursors: [String?] = [nil]
        var pages: [[String]] = []
        var s = try await LiveServer(config: config { $0.explorationShare = 0.2 })
        let t = s.token("zoe")
        for page in 0..<20 {
            if page % 5 == 4 {  // a different server process: nothing of the session in memory
                await s.stop()
                s = try await LiveServer(config: config { $0.explorationShare = 0.2 })
            }
            let r = try await s.client.get(query(cursors[page]), token: t)
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(ids(r).count, 10, "page \(page)")
            pages.append(ids(r))
            servedAll += ids(r)
            cursors.append(r.json["next_cursor"] as? String)
            // Retried (a client that timed out): the same page (a first page, without a cursor,
            // starts a new session each time).
            if page > 0 {
                let again = try await s.client.get(query(cursors[page]), token: t)
                XCTAssertEqual(ids(again), ids(r), "page \(page) retried")
                XCTAssertEqual(again.json["next_cursor"] as? String, r.json["next_cursor"] as? String)
            }
        }
        XCTAssertEqual(servedAll.count, 200)
        XCTAssertEqual(Set(servedAll).count, servedAll.count, "repeats: \(Dictionary(grouping: servedAll, by: { $0 }).filter { $1.count > 1 }.keys.sorted())")
        XCTAssertTrue(servedAll.contains { $0.hasPrefix("new") }, "fresh uploads get exploration slots")
        // An early cursor retried after the restarts: still its page.
        let early = try await s.client.get(query(cursors[2]), token: t)
        XCTAssertEqual(ids(early), pages[2])
        // The cursor stays bounded.
        XCTAssertLessThan((cursors.last! ?? "").utf8.count, 600)
        await s.stop()
    }

    func testPagingFromTheListCacheGivesTheSamePages() async throws {
        let store = try World.make(dir, lists: ["alice": Array(0..<30)])
        try store.enableListCache(capacity: 100, ttl: 300, pollSeconds: 0.05)
        try await pageThroughAlicesList(store: store)
        let stats = try XCTUnwrap(store.listCacheStats)
        XCTAssertEqual(stats.misses, 1)
        XCTAssertGreaterThanOrEqual(stats.hits, 3)
    }

    func pageThroughAlicesList(store: (any FeedStore)?) async throws {
        let s = try await LiveServer(config: config(), store: store)
        let t = s.token("alice")
        var seen: [String] = []
        var cursor: Any? = nil
        for page in 0..<3 {
            let r = try await s.client.get(query(cursor), token: t)
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(ids(r), (page * 10..<(page + 1) * 10).map { "v\($0)" })
            let v = (r.json["videos"] as! [[String: Any]])[0]
            XCTAssertEqual(v["ranker"] as? String, "als")
            XCTAssertEqual(v["stream_url"] as? String, "/media/v\(page * 10)/master.m3u8")
            XCTAssertNotNil(v["generation"] as? Int)
            seen += ids(r)
            cursor = r.json["next_cursor"]
        }
        // The list is exhausted: trending fills in, still without repeats.
        let r = try await s.client.get(query(cursor), token: t)
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(ids(r).count, 10)
        XCTAssertTrue(Set(ids(r)).isDisjoint(with: seen))
        XCTAssertEqual((r.json["videos"] as! [[String: Any]])[0]["ranker"] as? String, "trending")
        await s.stop()
    }

    func testSeenAndNotReadyVideosAreFilteredOut() async throws {
        let store = try World.make(dir, lists: ["bob": Array(0..<20)])
        var v3 = try XCTUnwrap(try store.video(id: "v3"))
        v3.status = .processing
        try store.upsertVideos([v3])
        let s = try await LiveServer(config: config())
        let t = s.token("bob")
        for (video, type) in [("v0", "view"), ("v1", "skip")] {
            let r = try await s.client.post("/api/v1/events", token: t, #"{"video_id":"\#(video)","type":"\#(type)","watch_ms":700}"#)
            XCTAssertEqual(r.status, 202, r.text)
            XCTAssertNotNil(r.json["event_id"] as? String)
        }
        let r = try await s.client.get(query(nil, limit: 5), token: t)
        XCTAssertEqual(ids(r), ["v2", "v4", "v5", "v6", "v7"])
        await s.stop()
    }

    func testPagingContinuesTheSameGenerationWhenANewOneGoesLive() async throws {
        let store = try World.make(dir, lists: ["carol": Array(0..<30)])
        let s = try await LiveServer(config: config())
        let t = s.token("carol")
        let p1 = try await s.client.get(query(nil), token: t)
        let g1 = (p1.json["videos"] as! [[String: Any]])[0]["generation"] as! Int
        // A new generation with a different order goes live mid-session.
        let g2 = try store.writeGeneration(model: "als", runId: "r2", items: (0..<60).map { "v\($0)" },
                                           lists: [(user: "carol", items: (30..<60).map { Int32($0) }, scores: Array(repeating: 1, count: 30))],
                                           activate: true)
        try s.service.refreshNow()
        let p2 = try await s.client.get(query(p1.json["next_cursor"]), token: t)
        XCTAssertEqual(ids(p2), (10..<20).map { "v\($0)" })
        XCTAssertEqual((p2.json["videos"] as! [[String: Any]])[0]["generation"] as? Int, g1)
        // A new session starts on the new generation.
        let fresh = try await s.client.get(query(nil, limit: 3), token: t)
        XCTAssertEqual(ids(fresh), ["v30", "v31", "v32"])
        XCTAssertEqual((fresh.json["videos"] as! [[String: Any]])[0]["generation"] as? Int, Int(g2))
        await s.stop()
    }

    func testColdStartGetsTrendingAndFreshUploads() async throws {
        let store = try World.make(dir, lists: ["dave": Array(0..<10)])
        // A brand-new upload becomes ready.
        try store.upsertVideos([Video(id: "new1", caption: "just posted", topic: "tnew", creator: "cnew", durationMs: 5_000,
                                      status: .ready, createdAt: Int64(Date().timeIntervalSince1970 * 1000))])
        let s = try await LiveServer(config: config { $0.explorationShare = 0.2 })
        // Make v7 trending through other users' events.
        for u in 0..<3 {
            let r = try await s.client.post("/api/v1/events", token: s.token("fan\(u)"), #"{"video_id":"v7","type":"like"}"#)
            XCTAssertEqual(r.status, 202)
        }
        s.service.rebuildTrendingNow()
        let r = try await s.client.get(query(nil), token: s.token("stranger"))
        XCTAssertEqual(r.status, 200)
        let vids = r.json["videos"] as! [[String: Any]]
        XCTAssertEqual(vids.count, 10)
        XCTAssertEqual(vids.first { $0["ranker"] as? String == "trending" }?["id"] as? String, "v7")
        XCTAssertTrue(vids.contains { $0["id"] as? String == "new1" && $0["ranker"] as? String == "fresh" }, "\(vids)")
        await s.stop()
    }

    func testDiversityCapsOneTopicPerWindow() async throws {
        // 12 topics; the list puts 8 videos of topic t0 first.
        let list = [0, 12, 24, 36, 48, 60, 72, 84] + Array(1..<12)
        _ = try World.make(dir, videos: 96, lists: ["erin": list])
        let s = try await LiveServer(config: config())
        let r = try await s.client.get(query(nil), token: s.token("erin"))
        let topics = (r.json["videos"] as! [[String: Any]]).map { $0["topic"] as! String }
        XCTAssertEqual(topics.count, 10)
        XCTAssertLessThanOrEqual(topics.filter { $0 == "t0" }.count, 3, "\(topics)")
        // The deferred t0 videos come back on the next page rather than being lost.
        let r2 = try await s.client.get(query(r.json["next_cursor"]), token: s.token("erin"))
        XCTAssertTrue(ids(r2).contains("v36"), "\(ids(r2))")
        await s.stop()
    }

    func testBadRequestsGetClearErrors() async throws {
        _ = try World.make(dir, lists: ["fay": Array(0..<20)])
        let s = try await LiveServer(config: config { $0.maxBodyBytes = 2048 })
        let t = s.token("fay")
        let c = s.client
        for (q, field) in [("limit=0", "limit"), ("limit=51", "limit"), ("limit=ten", "limit"), ("cursor=garbage", "cursor")] {
            let r = try await c.get("/api/v1/foryou?\(q)", token: t)
            XCTAssertEqual(r.status, 400, q)
            XCTAssertEqual(r.errorField, field, q)
        }
        // Another user's cursor does not verify for this user.
        let other = try await c.get(query(nil), token: s.token("mallory"))
        let stolen = try await c.get(query(other.json["next_cursor"]), token: t)
        XCTAssertEqual(stolen.status, 400)
        XCTAssertEqual(stolen.errorField, "cursor")
        let cases: [(String, Int, String?)] = [
            ("{not json", 400, nil),
            ("[1,2]", 400, nil),
            (#"{"video_id":"v1","type":"dance"}"#, 400, "type"),
            (#"{"video_id":"v1","type":"view","watch_ms":-5}"#, 400, "watch_ms"),
            (#"{"video_id":"v1","type":"view","watch_ms":99999999999}"#, 400, "watch_ms"),
            (#"{"video_id":"v1","type":"view","watch_ms":"long"}"#, 400, "watch_ms"),
            (#"{"video_id":"nope","type":"view"}"#, 404, "video_id"),
            (#"{"video_id":"v1","type":"view","user_id":"someone-else"}"#, 400, "user_id"),
            (#"{"video_id":"v1","type":"view","score":9}"#, 400, "score"),
            (#"{"type":"view"}"#, 400, "video_id"),
            (#"{"video_id":"v1","type":"view","watch_ms":null}"#, 400, "watch_ms"),
            (#"{"video_id":"v1","type":"view","watch_ms":1.5}"#, 400, "watch_ms"),
            (#"{"video_id":"v1","type":"view","watch_ms":true}"#, 400, "watch_ms"),
        ]
        for (body, status, field) in cases {
            let r = try await c.post("/api/v1/events", token: t, body)
            XCTAssertEqual(r.status, status, body)
            XCTAssertEqual(r.errorField, field, body)
            XCTAssertNotNil(r.json["error"], body)
        }
        let big = try await c.post("/api/v1/events", token: t, #"{"video_id":"\#(String(repeating: "x", count: 4096))","type":"view"}"#)
        XCTAssertEqual(big.status, 413)
        let many = (0..<101).map { _ in #"{"video_id":"v1","type":"view"}"# }.joined(separator: ",")
        XCTAssertEqual(s.service.fileLog!.endId, 0)
        await s.stop()  // one writer per file log: the second server starts after the first stopped
        let s2 = try await LiveServer(config: config { $0.maxBodyBytes = 64 * 1024 })
        let batch = try await s2.client.post("/api/v1/events:batch", token: s2.token("fay"), #"{"events":[\#(many)]}"#)
        XCTAssertEqual(batch.status, 400)
        XCTAssertEqual(batch.errorField, "events")
        let badItem = try await s2.client.post("/api/v1/events:batch", token: s2.token("fay"),
                                                #"{"events":[{"video_id":"v1","type":"view"},{"video_id":"v2","type":"nap"}]}"#)
        XCTAssertEqual(badItem.errorField, "events[1].type")
        // Nothing from the rejected requests reached the log.
        XCTAssertEqual(s2.service.fileLog!.endId, 0)
        await s2.stop()
    }

    func testTokensAreCheckedStrictly() async throws {
        _ = try World.make(dir, lists: ["gus": Array(0..<20)])
        let s = try await LiveServer(config: config())
        let c = s.client
        let good = s.token("gus")
        do { let reply = try await c.get(query(nil), token: good); XCTAssertEqual(reply.status, 200) }
        do { let reply = try await c.get(query(nil)); XCTAssertEqual(reply.status, 401) }
        do { let reply = try await c.get(query(nil), token: s.token("gus", ttl: -10)); XCTAssertEqual(reply.status, 401) }
        // Tampered claims (another user) with the original signature.
        let parts = good.split(separator: ".").map(String.init)
        let claims = #"{"exp":9999999999,"iat":0,"sub":"admin"}"#
        let forgedBody = Data(claims.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        do { let reply = try await c.get(query(nil), token: parts[0] + "." + forgedBody + "." + parts[2]); XCTAssertEqual(reply.status, 401) }
        // alg: none, unsigned.
        let none = Data(#"{"alg":"none","typ":"JWT"}"#.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
        let r = try await c.get(query(nil), token: none + "." + forgedBody + ".")
        XCTAssertEqual(r.status, 401)
        XCTAssertEqual(r.errorCode, "unauthorized")
        // A token signed with another key.
        let foreign = TokenSigner(key: Array(repeating: 7, count: 32)).issue(user: "gus", ttlSeconds: 100)
        do { let reply = try await c.get(query(nil), token: foreign); XCTAssertEqual(reply.status, 401) }
        await s.stop()
    }

    func testIdempotencyKeyMakesRetriesSafe() async throws {
        _ = try World.make(dir, lists: [:])
        let s = try await LiveServer(config: config())
        let t = s.token("hal")
        let body = #"{"video_id":"v2","type":"complete","watch_ms":10000}"#
        let a = try await s.client.post("/api/v1/events", token: t, body, headers: ["Idempotency-Key": "k-1"])
        let b = try await s.client.post("/api/v1/events", token: t, body, headers: ["Idempotency-Key": "k-1"])
        XCTAssertEqual(a.status, 202)
        XCTAssertEqual(b.status, 202)
        XCTAssertEqual(a.json["event_id"] as? String, b.json["event_id"] as? String)
        XCTAssertEqual(s.service.fileLog!.endId, 1)
        // The same key from another user is another event.
        let c = try await s.client.post("/api/v1/events", token: s.token("ivy"), body, headers: ["Idempotency-Key": "k-1"])
        XCTAssertNotEqual(c.json["event_id"] as? String, a.json["event_id"] as? String)
        let events = try s.service.fileLog!.read(from: 0)
        XCTAssertEqual(events.map(\.user), ["hal", "ivy"])
        XCTAssertEqual(events[0].watchMs, 10_000)
        await s.stop()
        // Keys survive a restart: they are in the log.
        let s2 = try await LiveServer(config: config())
        let d = try await s2.client.post("/api/v1/events", token: s2.token("hal"), body, headers: ["Idempotency-Key": "k-1"])
        XCTAssertEqual(d.json["event_id"] as? String, a.json["event_id"] as? String)
        XCTAssertEqual(s2.service.fileLog!.endId, 2)
        // Past the window the key is forgotten: a retry a day later is a new event.
        XCTAssertEqual(s2.service.idempotencyKeyCount, 2)
        s2.service.expireNow(at: Date().timeIntervalSince1970 + 25 * 3600)
        XCTAssertEqual(s2.service.idempotencyKeyCount, 0)
        let late = try await s2.client.post("/api/v1/events", token: s2.token("hal"), body, headers: ["Idempotency-Key": "k-1"])
        XCTAssertNotEqual(late.json["event_id"] as? String, a.json["event_id"] as? String)
        await s2.stop()
    }

    func testRateLimitAnswers429WithRetryAfter() async throws {
        _ = try World.make(dir, lists: [:])
        let s = try await LiveServer(config: config { $0.ratePerSecond = 0.5; $0.rateBurst = 3 })
        let t = s.token("jay")
        var statuses: [Int] = []
        var retry: String?
        for _ in 0..<5 {
            let r = try await s.client.get(query(nil, limit: 1), token: t)
            statuses.append(r.status)
            if r.status == 429 { retry = r.headers["retry-after"] }
        }
        XCTAssertEqual(Array(statuses.prefix(3)), [200, 200, 200])
        XCTAssertEqual(statuses.last, 429)
        XCTAssertNotNil(retry.flatMap(Int.init))
        // Other users are not affected.
        do { let reply = try await s.client.get(query(nil, limit: 1), token: s.token("kim")); XCTAssertEqual(reply.status, 200) }
        await s.stop()
    }

    func testVideosAndOperationalRoutes() async throws {
        _ = try World.make(dir, lists: ["lee": [1, 2]])
        let s = try await LiveServer(config: config())
        let t = s.token("lee")
        // Uploads as POST /api/v1/uploads records them (the upload route itself is tested with real files).
        let store = try DataDirectory(dir).openStore()
        for (id, owner) in [("up-1", "lee"), ("up-2", "kim")] {
            try store.insertUpload(Upload(id: id, owner: owner, path: dir + "/" + id, bytes: 1, durationMs: 1_000, width: 180, height: 320,
                                          createdAt: 0))
        }
        let unknown = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"up-9"}"#)
        XCTAssertEqual(unknown.status, 404)
        XCTAssertEqual(unknown.errorField, "upload_id")
        let theirs = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"up-2"}"#)
        XCTAssertEqual(theirs.status, 403)
        let created = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"up-1","caption":"my #Clip"}"#)
        XCTAssertEqual(created.status, 202, created.text)
        XCTAssertEqual(created.json["status"] as? String, "processing")
        let id = try XCTUnwrap(created.json["video_id"] as? String)
        let again = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"up-1","caption":"dup"}"#)
        XCTAssertEqual(again.status, 409)
        XCTAssertEqual(again.errorField, "upload_id")
        let shown = try await s.client.get("/api/v1/videos/\(id)", token: t)
        XCTAssertEqual(shown.json["status"] as? String, "processing")
        do { let reply = try await s.client.get("/api/v1/videos/none", token: t); XCTAssertEqual(reply.status, 404) }
        // Processing videos never reach a feed.
        let feed = try await s.client.get(query(nil, limit: 50), token: t)
        XCTAssertFalse(ids(feed).contains(id))
        do { let reply = try await s.client.get("/healthz"); XCTAssertEqual(reply.status, 200) }
        do { let reply = try await s.client.get("/readyz"); XCTAssertEqual(reply.status, 200) }
        let m = try await s.client.get("/metrics")
        for name in ["foryou_http_request_duration_seconds_bucket", "foryou_live_generation", "foryou_events_total",
                     "foryou_event_fsync_batch_events_count", "route=\"GET /api/v1/foryou\""] {
            XCTAssertTrue(m.text.contains(name), name)
        }
        await s.stop()
    }

    func testReadyzWithoutAGenerationIs503() async throws {
        let s = try await LiveServer(config: config())
        let r = try await s.client.get("/readyz")
        XCTAssertEqual(r.status, 503)
        XCTAssertEqual(r.errorCode, "not_ready")
        await s.stop()
    }
}
