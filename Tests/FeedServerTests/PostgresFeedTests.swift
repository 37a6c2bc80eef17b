import XCTest
import Foundation
import FeedServer
import CandidateStore
import PostgresStore
import TestSupport

/// The real server answering from the PostgreSQL store (`serve --store postgres://...`): paging,
/// seen filtering, a generation switch mid-session, and a video created from an upload.
final class PostgresFeedTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("feed-pg") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func ids(_ r: HTTPClient.Reply) -> [String] { (r.json["videos"] as? [[String: Any]] ?? []).map { $0["id"] as! String } }

    func testTheFeedServesFromPostgreSQL() async throws {
        guard let url = try Fixtures.postgresDatabase() else { throw XCTSkip("no PostgreSQL cluster (scripts/test starts one)") }
        let store = try PostgresFeedStore(url: url)
        try World.fill(store, lists: ["erin": Array(0..<30)])
        var c = FeedServerConfig()
        c.dataDir = dir
        c.explorationShare = 0
        let s = try await LiveServer(config: c, store: store)
        let t = s.token("erin")
        let skip = try await s.client.post("/api/v1/events", token: t, #"{"video_id":"v1","type":"skip","watch_ms":300}"#)
        XCTAssertEqual(skip.status, 202)
        let p1 = try await s.client.get("/api/v1/foryou?limit=5", token: t)
        XCTAssertEqual(p1.status, 200, p1.text)
        XCTAssertEqual(ids(p1), ["v0", "v2", "v3", "v4", "v5"], "v1 was skipped")
        let g1 = (p1.json["videos"] as! [[String: Any]])[0]["generation"] as! Int
        // A new generation goes live mid-session: the session keeps its own.
        let g2 = try store.writeGeneration(model: "als", runId: "r2", items: (0..<60).map { "v\($0)" },
                                           lists: [(user: "erin", items: (30..<60).map { Int32($0) }, scores: Array(repeating: 1, count: 30))],
                                           activate: true)
        try s.service.refreshNow()
        let p2 = try await s.client.get("/api/v1/foryou?limit=5&cursor=\(p1.json["next_cursor"] as! String)", token: t)
        XCTAssertEqual(ids(p2), ["v6", "v7", "v8", "v9", "v10"])
        XCTAssertEqual((p2.json["videos"] as! [[String: Any]])[0]["generation"] as? Int, g1)
        let fresh = try await s.client.get("/api/v1/foryou?limit=3", token: t)
        XCTAssertEqual(ids(fresh), ["v30", "v31", "v32"])
        XCTAssertEqual((fresh.json["videos"] as! [[String: Any]])[0]["generation"] as? Int, Int(g2))
        // An upload becomes a processing video with a queued transcode job, once, for its owner only.
        try store.insertUpload(Upload(id: "up1", owner: "erin", path: dir + "/x.mp4", bytes: 10, durationMs: 1_000, width: 720,
                                      height: 1280, createdAt: 1))
        let v = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"up1","caption":"mine"}"#)
        XCTAssertEqual(v.status, 202, v.text)
        let id = try XCTUnwrap(v.json["video_id"] as? String)
        XCTAssertEqual(try store.transcodeJob(video: id)?.status, .queued)
        let got = try await s.client.get("/api/v1/videos/\(id)", token: t)
        XCTAssertEqual(got.json["status"] as? String, "processing")
        let again = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"up1","caption":"again"}"#)
        XCTAssertEqual(again.status, 409, again.text)
        let other = try await s.client.post("/api/v1/videos", token: s.token("mallory"), #"{"upload_id":"up1","caption":"x"}"#)
        XCTAssertEqual(other.status, 403, other.text)
        await s.stop()
    }
}
