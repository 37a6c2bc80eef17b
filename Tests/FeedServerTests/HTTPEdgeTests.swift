import XCTest
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import FeedServer
import CandidateStore
import Media
import TestSupport

/// Issue 18: the HTTP edge against hostile clients (bounded parsing, protocol limits, the
/// request log) and uploads that must never publish the server's own files.
final class HTTPEdgeTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("edge") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func server(_ tweak: (inout FeedServerConfig) -> Void = { _ in }) async throws -> LiveServer {
        _ = try World.make(dir, lists: ["ann": Array(0..<30)])
        var c = FeedServerConfig()
        c.dataDir = dir
        tweak(&c)
        return try await LiveServer(config: c)
    }

    func parse(_ s: String) throws -> JSONValue {
        var p = StrictJSONParser(Array(s.utf8))
        return try p.document()
    }

    func code(_ s: String) -> String? {
        do { _ = try parse(s); return nil } catch let e as APIError { return e.code } catch { return "\(error)" }
    }

    // MARK: parsing

    func testTheStrictParserAgreesWithJSONOnValidInputAndRefusesTheRest() throws {
        XCTAssertEqual(try parse(#"{"a":[1,-2.5e3,"x\u00e9\ud83d\ude00\n",true,false,null,{}]}"#),
                       .object(["a": .array([.int(1), .double(-2500), .string("xé😀\n"), .bool(true), .bool(false), .null, .object([:])])]))
        XCTAssertEqual(try parse(" [ ] "), .array([]))
        XCTAssertEqual(try parse("9223372036854775807"), .int(.max))
        XCTAssertEqual(try parse("9223372036854775808"), .double(9223372036854775808))
        for bad in ["{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "NaN", "'a'", "\"\u{1}\"", "\"\\ud800\"", "\"\\x\"", "{} x",
                    "{\"a\" 1}", "tru", "1e999"] {
            XCTAssertEqual(code(bad), "malformed_json", bad)
        }
        var invalidUTF8 = StrictJSONParser([0x22, 0xC3, 0x28, 0x22])
        XCTAssertThrowsError(try invalidUTF8.document())
        // Depth: 8 levels parse, 9 do not.
        XCTAssertNil(code(String(repeating: "[", count: 8) + String(repeating: "]", count: 8)))
        XCTAssertEqual(code(String(repeating: "[", count: 9) + String(repeating: "]", count: 9)), "too_deep")
        XCTAssertEqual(code(#"{"type":"view","type":"like"}"#), "duplicate_field")
    }

    func testDeepOrDuplicatedOrUnknownBodiesAre400sNamingTheProblem() async throws {
        let s = try await server()
        defer { Task { await s.stop() } }
        let t = s.token("ann")
        let deep = #"{"video_id":"# + String(repeating: "[", count: 500) + String(repeating: "]", count: 500) + "}"
        let r1 = try await s.client.post("/api/v1/events", token: t, deep)
        XCTAssertEqual(r1.status, 400, r1.text)
        XCTAssertEqual(r1.errorCode, "too_deep")
        // An unknown field is refused as soon as its name is read, before its (deep) value.
        let r2 = try await s.client.post("/api/v1/events", token: t,
                                         #"{"junk":"# + String(repeating: "[", count: 500) + String(repeating: "]", count: 500) + "}")
        XCTAssertEqual(r2.errorCode, "unknown_field")
        XCTAssertEqual(r2.errorField, "junk")
        let r3 = try await s.client.post("/api/v1/events", token: t, #"{"video_id":"v1","type":"view","type":"like"}"#)
        XCTAssertEqual(r3.status, 400)
        XCTAssertEqual(r3.errorCode, "duplicate_field")
        XCTAssertEqual(r3.errorField, "type")
        // Batches: each event's object is held to the same rules.
        let r4 = try await s.client.post("/api/v1/events:batch", token: t,
                                         #"{"events":[{"video_id":"v1","type":"view","video_id":"v2"}]}"#)
        XCTAssertEqual(r4.errorCode, "duplicate_field")
        // Still fine.
        let ok = try await s.client.post("/api/v1/events", token: t, #"{"video_id":"v1","type":"view","watch_ms":1200}"#)
        XCTAssertEqual(ok.status, 202, ok.text)
    }

    func testAnIdempotencyKeyReusedForAnotherRequestIs422() async throws {
        let s = try await server()
        defer { Task { await s.stop() } }
        let t = s.token("ann")
        let body = #"{"video_id":"v1","type":"like"}"#
        let first = try await s.client.post("/api/v1/events", token: t, body, headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(first.status, 202)
        let replay = try await s.client.post("/api/v1/events", token: t, body, headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(replay.status, 202)
        XCTAssertEqual(replay.json["event_id"] as? String, first.json["event_id"] as? String)
        XCTAssertEqual(replay.json["replayed"] as? Bool, true)
        let other = try await s.client.post("/api/v1/events", token: t, #"{"video_id":"v2","type":"like"}"#,
                                            headers: ["Idempotency-Key": "k1"])
        XCTAssertEqual(other.status, 422, other.text)
        XCTAssertEqual(other.errorCode, "idempotency_key_reused")
        XCTAssertEqual(other.errorField, "Idempotency-Key")
        // Only the first event was stored.
        XCTAssertEqual(s.service.idempotencyKeyCount, 1)
    }

    // MARK: protocol

    func raw(_ s: LiveServer, _ text: String) throws -> HTTPClient.Reply {
        try HTTPClient.exchange(port: s.client.port, Array(text.utf8))
    }

    func testHeadWorksWhereverGetDoes() async throws {
        let s = try await server()
        defer { Task { await s.stop() } }
        for path in ["/healthz", "/readyz", "/metrics"] {
            let get = try await s.client.send("GET", path)
            let head = try await s.client.send("HEAD", path)
            XCTAssertEqual(get.status, 200, path)
            XCTAssertEqual(head.status, 200, path)
            XCTAssertEqual(head.body.count, 0, path)
            XCTAssertEqual(head.headers["content-type"], get.headers["content-type"], path)
        }
        let t = s.token("ann")
        let head = try await s.client.send("HEAD", "/api/v1/foryou?limit=5", token: t)
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body.count, 0)
        let healthz = try await s.client.send("HEAD", "/healthz")
        XCTAssertEqual(healthz.headers["content-length"], "15")
    }

    func testAnUnknownTransferCodingIs501() async throws {
        let s = try await server()
        defer { Task { await s.stop() } }
        let t = s.token("ann")
        let r = try raw(s, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(t)\r\nTransfer-Encoding: xchunked\r\n"
                           + "Content-Type: application/json\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n")
        XCTAssertEqual(r.status, 501, r.text)
        XCTAssertEqual(r.errorCode, "unsupported_transfer_coding")
        XCTAssertEqual(r.errorField, "Transfer-Encoding")
        // Chunked itself works.
        let body = #"{"video_id":"v1","type":"view"}"#
        let ok = try raw(s, "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \(t)\r\n"
                            + "Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                            + String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n")
        XCTAssertEqual(ok.status, 202, ok.text)
    }

    /// Seconds until the server closes a connection that sent `prefix` and then nothing.
    func secondsUntilClosed(port: Int, sending prefix: String) throws -> Double {
        let fd = try HTTPClient.connect(port: port, timeoutSeconds: 30)
        defer { close(fd) }
        let bytes = Array(prefix.utf8)
        if !bytes.isEmpty { _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress!, bytes.count, Int32(MSG_NOSIGNAL)) } }
        let t0 = Date()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 4096, 0) }
            if n <= 0 { break }
        }
        return Date().timeIntervalSince(t0)
    }

    func testIdleAndHalfSentConnectionsAreClosed() async throws {
        let s = try await server { $0.idleTimeoutSeconds = 1 }
        defer { Task { await s.stop() } }
        let port = s.client.port
        let results = try await withThrowingTaskGroup(of: Double.self) { g in
            for prefix in ["", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"] {
                g.addTask { try self.secondsUntilClosed(port: port, sending: prefix) }
            }
            var out: [Double] = []
            for try await r in g { out.append(r) }
            return out
        }
        // Closed by the server (recv returned 0 well before the client's own 30 s timeout).
        for r in results { XCTAssertLessThan(r, 15, "connection held \(r) s") }
    }

    func testTheRequestLogIsJSONThatAPathCannotForgeAndNamesTheUser() async throws {
        final class Lines: @unchecked Sendable {
            let lock = NSLock()
            var lines: [[UInt8]] = []
            func add(_ l: [UInt8]) { lock.lock(); lines.append(l); lock.unlock() }
            var all: [[UInt8]] { lock.lock(); defer { lock.unlock() }; return lines }
        }
        let lines = Lines()
        let s = try await server {
            $0.logRequests = true
            $0.requestLogSink = { l in lines.add(l) }
        }
        defer { Task { await s.stop() } }
        _ = try await s.client.get("/media/x%22,%22status%22:200,%22injected%22:%22yes")
        _ = try raw(s, "GET /media/x\",\"status\":200,\"injected\":\"yes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let t = s.token("ann")
        _ = try await s.client.get("/api/v1/foryou?limit=3", token: t)
        let all = lines.all
        XCTAssertGreaterThanOrEqual(all.count, 3)
        for l in all {
            let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(l)) as? [String: Any], String(decoding: l, as: UTF8.self))
            XCTAssertNil(o["injected"], String(decoding: l, as: UTF8.self))
            XCTAssertEqual(Set(o.keys), ["method", "path", "status", "ms", "user"])
        }
        let feed = try XCTUnwrap(all.compactMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
            .first { ($0["path"] as? String) == "/api/v1/foryou" })
        XCTAssertEqual(feed["user"] as? String, "ann")
        XCTAssertEqual(feed["status"] as? Int, 200)
    }

    // MARK: uploads

    func ffmpeg(_ args: [String]) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["ffmpeg", "-v", "error", "-y"] + args
        try? p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "ffmpeg \(args)")
    }

    func testUploadsThatReferToOtherFilesOrURLsAreRefusedAndNeverTranscoded() async throws {
        let s = try await server()
        defer { Task { await s.stop() } }
        let t = s.token("ann")
        // A real segment on the server's disk that a playlist or concat list could point at.
        let secret = dir + "/secret.ts"
        ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10", "-t", "1", "-c:v", "mpeg2video", "-f", "mpegts", secret])
        let attacks = [
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n\(secret)\n#EXT-X-ENDLIST\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:\(secret)\n#EXT-X-ENDLIST\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n",
            "ffconcat version 1.0\nfile '\(secret)'\n",
            "file:\(secret)",
        ]
        for a in attacks {
            let r = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: Array(a.utf8))
            XCTAssertEqual(r.status, 422, "\(a): \(r.text)")
            XCTAssertEqual(r.errorCode, "unsupported_container", a)
            XCTAssertFalse(r.text.contains(dir), r.text)
        }
        // A 16000x16000 GIF header (a decompression bomb): refused before any decoder runs.
        var gif = Array("GIF89a".utf8) + [0x80, 0x3E, 0x80, 0x3E, 0xF0, 0, 0]
        gif += [UInt8](repeating: 0, count: 95)
        let bomb = try await s.client.send("POST", "/api/v1/uploads", token: t, bytes: gif)
        XCTAssertEqual(bomb.status, 422)
        XCTAssertEqual(bomb.errorCode, "unsupported_container")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: DataDirectory(dir).uploads).filter { !$0.hasPrefix(".") }, [])
        // The tools themselves never see such a file as a video, and always run with the demuxer
        // forced and only plain files readable.
        let playlist = dir + "/p.m3u8"
        Fixtures.write(attacks[0], to: playlist)
        XCTAssertThrowsError(try FFprobe.probe(playlist)) { e in
            guard case .unsupportedContainer? = e as? MediaError else { return XCTFail("\(e)") }
        }
        let args = Transcoder.ladderArguments(input: "/x/in", probe: Probe(durationMs: 1000, width: 180, height: 320, hasAudio: false),
                                              outputDir: "/x/out")
        let i = try XCTUnwrap(args.firstIndex(of: "-i"))
        XCTAssertEqual(Array(args[(i - 4)...(i + 1)]), ["-protocol_whitelist", "file", "-f", "mov", "-i", "file:/x/in"])
    }

    func testUploadsOverTheSizeOrRateLimitsAre422sNamingTheLimit() async throws {
        let clip = dir + "/clip.mp4"
        ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=180x320:rate=15", "-t", "1", "-pix_fmt", "yuv420p", clip])
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: clip)))
        for (limit, tweak) in [("width", { (l: inout MediaLimits) in l.maxWidth = 100 }),
                               ("height", { (l: inout MediaLimits) in l.maxHeight = 300 }),
                               ("pixels per frame", { (l: inout MediaLimits) in l.maxPixels = 50_000 }),
                               ("frame rate", { (l: inout MediaLimits) in l.maxFrameRate = 10 })] {
            try? FileManager.default.removeItem(atPath: dir + "/store.sqlite")
            let s = try await server { tweak(&$0.uploadLimits) }
            let r = try await s.client.send("POST", "/api/v1/uploads", token: s.token("ann"), bytes: bytes)
            await s.stop()
            XCTAssertEqual(r.status, 422, limit)
            XCTAssertEqual(r.errorCode, "media_limit", limit)
            XCTAssertTrue(r.text.contains("the video's \(limit) is"), r.text)
        }
        let s = try await server { $0.maxUploadSeconds = 0.5 }
        let r = try await s.client.send("POST", "/api/v1/uploads", token: s.token("ann"), bytes: bytes)
        await s.stop()
        XCTAssertEqual(r.errorCode, "media_limit")
        XCTAssertTrue(r.text.contains("the limit is"), r.text)
        let ok = try await server { _ in }
        let accepted = try await ok.client.send("POST", "/api/v1/uploads", token: ok.token("ann"), bytes: bytes)
        await ok.stop()
        XCTAssertEqual(accepted.status, 201, accepted.text)
    }

    func testMediaNeverFollowsALinkOutOfTheMediaFolder() async throws {
        let s = try await server()
        defer { Task { await s.stop() } }
        let media = DataDirectory(dir).media + "/v1/abc"
        try FileManager.default.createDirectory(atPath: media, withIntermediateDirectories: true)
        Fixtures.write("#EXTM3U\n", to: media + "/master.m3u8")
        Fixtures.write("top secret", to: dir + "/outside.txt")
        try FileManager.default.createSymbolicLink(atPath: media + "/leak.m3u8", withDestinationPath: dir + "/outside.txt")
        try FileManager.default.createSymbolicLink(atPath: media + "/etc", withDestinationPath: "/etc")
        try FileManager.default.createSymbolicLink(atPath: DataDirectory(dir).media + "/v2", withDestinationPath: dir)
        let good = try await s.client.get("/media/v1/abc/master.m3u8")
        XCTAssertEqual(good.status, 200)
        for path in ["/media/v1/abc/leak.m3u8", "/media/v1/abc/etc/hostname", "/media/v2/outside.txt", "/media/v2/store.sqlite"] {
            let r = try await s.client.get(path)
            XCTAssertEqual(r.status, 404, path)
            XCTAssertFalse(r.text.contains("top secret"), path)
        }
    }
}
