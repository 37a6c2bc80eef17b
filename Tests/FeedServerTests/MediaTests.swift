import XCTest
import Foundation
import FeedServer
import CandidateStore
import Training
import Rescoring
import LiveRanking
import Transcoding
import Studies
import Media
import TestSupport

/// Uploads checked by ffprobe, the transcode worker's ladder, and media serving, with real
/// ffmpeg and a real server on 127.0.0.1.
final class MediaTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("media") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// An ffmpeg test-source clip.
    func clip(_ name: String, seconds: Int = 1, size: String = "180x320", audio: Bool = false) throws -> [UInt8] {
        let path = dir + "/" + name
        var args = ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=\(size):rate=15"]
        if audio { args += ["-f", "lavfi", "-i", "sine=frequency=440", "-shortest"] }
        args += ["-t", "\(seconds)", "-pix_fmt", "yuv420p", path]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["ffmpeg"] + args
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "ffmpeg (scripts/setup installs it)")
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func server(maxUpload: Int64 = 10_000_000) async throws -> LiveServer {
        _ = try World.make(dir, lists: ["ann": [1, 2]])
        var c = FeedServerConfig()
        c.dataDir = dir
        c.maxUploadBytes = maxUpload
        return try await LiveServer(config: c)
    }

    func testUploadsAreCheckedAndBadOnesRefusedWithAReason() async throws {
        let video = try clip("ok.mp4")
        let s = try await server(maxUpload: 200_000)
        let t = s.token("ann")
        let ok = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: video)
        XCTAssertEqual(ok.status, 201, ok.text)
        XCTAssertEqual(ok.json["width"] as? Int, 180)
        XCTAssertEqual(ok.json["height"] as? Int, 320)
        XCTAssertEqual(ok.json["duration_ms"] as? Int, 1_000)
        // Not a video, a truncated MP4 (no index), and a file past the size limit.
        let text = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: Array("just some text".utf8))
        XCTAssertEqual(text.status, 422)
        XCTAssertEqual(text.errorCode, "unsupported_container")
        XCTAssertFalse(text.text.contains(dir), "no server paths in messages: \(text.text)")
        let long = try clip("long.mp4", seconds: 4, size: "320x568")
        let truncated = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: Array(long.prefix(long.count / 3)))
        XCTAssertEqual(truncated.status, 422, truncated.text)
        let big = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: [UInt8](repeating: 7, count: 300_000))
        XCTAssertEqual(big.status, 413)
        // Only the accepted upload is on disk.
        let files = try FileManager.default.contentsOfDirectory(atPath: DataDirectory(dir).uploads)
        XCTAssertEqual(files, [ok.json["upload_id"] as! String])
        await s.stop()
    }

    func testAnUploadBecomesAReadyLadderServedWithCacheHeaders() async throws {
        let s = try await server()
        let t = s.token("ann")
        let up = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: try clip("a.mp4", seconds: 3, size: "360x640", audio: true))
        let upload = try XCTUnwrap(up.json["upload_id"] as? String, up.text)
        let other = try await s.client.post("/api/v1/videos", token: s.token("bob"), #"{"upload_id":"\#(upload)"}"#)
        XCTAssertEqual(other.status, 403)
        let made = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"\#(upload)","caption":"hi #Cats"}"#)
        XCTAssertEqual(made.status, 202, made.text)
        let id = try XCTUnwrap(made.json["video_id"] as? String)
        let pending = try await s.client.get("/api/v1/videos/\(id)", token: t)
        XCTAssertEqual(pending.json["status"] as? String, "processing")
        let worker = try TranscodeWorker(config: TranscodeWorker.Config(dataDir: dir))
        let o = try XCTUnwrap(try worker.step())
        XCTAssertEqual(o.status, .done, o.error ?? "")
        XCTAssertEqual(o.renditions, 2, "240p and 360p from a 360x640 source, nothing upscaled")
        XCTAssertNil(try worker.step(), "the queue is empty")
        let shown = try await s.client.get("/api/v1/videos/\(id)", token: t).json
        XCTAssertEqual(shown["status"] as? String, "ready")
        let stream = try XCTUnwrap(shown["stream_url"] as? String)
        let posterURL = try XCTUnwrap(shown["thumbnail_url"] as? String)
        XCTAssertTrue(posterURL.hasSuffix("/poster.jpg"))
        let poster = try await s.client.get(posterURL)
        XCTAssertEqual(poster.status, 200)
        XCTAssertEqual(poster.headers["content-type"], "image/jpeg")
        XCTAssertEqual(Array(poster.body.prefix(2)), [0xFF, 0xD8], "a JPEG")
        // The master playlist names every rendition with bandwidth, resolution and codecs.
        let master = try await s.client.get(stream)
        XCTAssertEqual(master.status, 200)
        XCTAssertEqual(master.headers["content-type"], "application/vnd.apple.mpegurl")
        XCTAssertEqual(master.headers["cache-control"], "public, max-age=60")
        XCTAssertEqual(master.text.components(separatedBy: "#EXT-X-STREAM-INF").count - 1, 2)
        XCTAssertTrue(master.text.contains("RESOLUTION=240x426") && master.text.contains("RESOLUTION=360x640"), master.text)
        XCTAssertTrue(master.text.contains("CODECS=\"avc1"), master.text)
        // A rendition: ~2 s fMP4 segments.
        let base = String(stream.dropLast("master.m3u8".count))
        let playlist = try await s.client.get(base + "r1/index.m3u8").text
        XCTAssertTrue(playlist.contains("#EXT-X-TARGETDURATION:2") && playlist.contains("#EXT-X-MAP:URI="), playlist)
        let segment = base + "r1/" + (playlist.split(separator: "\n").first { $0.hasSuffix(".m4s") }.map(String.init) ?? "?")
        let seg = try await s.client.get(segment)
        XCTAssertEqual(seg.status, 200)
        XCTAssertEqual(seg.headers["content-type"], "video/mp4")
        XCTAssertEqual(seg.headers["cache-control"], "public, max-age=31536000, immutable")
        let etag = try XCTUnwrap(seg.headers["etag"])
        XCTAssertFalse(etag.hasPrefix("W/"), "a strong validator")
        let cached = try await s.client.send("GET", segment, headers: ["If-None-Match": etag])
        XCTAssertEqual(cached.status, 304)
        let part = try await s.client.send("GET", segment, headers: ["Range": "bytes=10-19"])
        XCTAssertEqual(part.status, 206)
        XCTAssertEqual(part.headers["content-range"], "bytes 10-19/\(seg.body.count)")
        XCTAssertEqual(part.body, seg.body.subdata(in: 10..<20))
        let beyond = try await s.client.send("GET", segment, headers: ["Range": "bytes=\(seg.body.count)-"])
        XCTAssertEqual(beyond.status, 416)
        let missing = try await s.client.get("/media/\(id)/nothing.m4s")
        XCTAssertEqual(missing.status, 404)
        // Once the server has reloaded the catalog, the ready upload fills an exploration slot.
        s.service.startBackgroundRefresh()
        var fresh = false
        for _ in 0..<40 where !fresh {
            try await Task.sleep(nanoseconds: 250_000_000)
            let page = try await s.client.get("/api/v1/foryou?limit=10", token: s.token("zoe"))
            fresh = (page.json["videos"] as? [[String: Any]] ?? []).contains { $0["id"] as? String == id && $0["ranker"] as? String == "fresh" }
        }
        XCTAssertTrue(fresh, "the new video reaches a feed as a fresh upload")
        await s.stop()
    }

    func testAPoisonUploadEndsFailedWithTheReason() async throws {
        let s = try await server()
        let t = s.token("ann")
        let up = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: try clip("p.mp4"))
        let upload = try XCTUnwrap(up.json["upload_id"] as? String)
        let made = try await s.client.post("/api/v1/videos", token: t, #"{"upload_id":"\#(upload)"}"#)
        let id = try XCTUnwrap(made.json["video_id"] as? String)
        // The stored file is damaged after it was accepted.
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: DataDirectory(dir).uploads + "/" + upload))
        let o = try XCTUnwrap(try TranscodeWorker(config: TranscodeWorker.Config(dataDir: dir)).step())
        XCTAssertEqual(o.status, .failed)
        let shown = try await s.client.get("/api/v1/videos/\(id)", token: t).json
        XCTAssertEqual(shown["status"] as? String, "failed")
        XCTAssertTrue((shown["failure"] as? String)?.contains("not an accepted video container") == true, "\(shown)")
        await s.stop()
    }
}
