import XCTest
import Foundation
import TestSupport
import EventLog
import CandidateStore

/// The server as a separate process, killed with SIGKILL in the middle of a burst of events.
final class CrashTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("crash") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Starts `foryou serve --port 0` and returns the process and its port.
    func startServer() throws -> (Process, Int) {
        let (p, text, match) = try CLIRunner.start(["serve", "--data-dir", dir, "--port", "0", "--rate", "100000", "--burst", "100000"],
                                                   ready: #"listening on http://127\.0\.0\.1:(\d+)"#)
        startupText = text
        return (p, Int(match.split(separator: ":").last!)!)
    }
    var startupText = ""

    func testEveryAcknowledgedEventSurvivesSIGKILL() async throws {
        XCTAssertEqual(try CLIRunner.run(["world", "--users", "50", "--videos", "40", "--data-dir", dir]).status, 0)
        let before = try EventLog(directory: dir + "/events").endId
        let token = try CLIRunner.run(["token", "--user", "crash", "--data-dir", dir]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let (server, port) = try startServer()
        let client = HTTPClient(port: port)
        final class Acks: @unchecked Sendable {
            let lock = NSLock()
            var acked: [UInt64: UInt32] = [:]
            func add(_ id: UInt64, _ w: UInt32) { lock.lock(); acked[id] = w; lock.unlock() }
            var count: Int { lock.lock(); defer { lock.unlock() }; return acked.count }
        }
        let acks = Acks()
        let killer = Task {
            while acks.count < 300 { try await Task.sleep(nanoseconds: 2_000_000) }
            kill(server.processIdentifier, SIGKILL)
        }
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    for n in 0..<400 {
                        let watch = UInt32(worker * 10_000 + n + 1)
                        let body = #"{"video_id":"v\#(n % 40)","type":"view","watch_ms":\#(watch)}"#
                        guard let r = try? await client.post("/api/v1/events", token: token, body) else { return }
                        if r.status == 202, let id = (r.json["event_id"] as? String).flatMap(UInt64.init) { acks.add(id, watch) }
                    }
                }
            }
        }
        _ = try? await killer.value
        server.waitUntilExit()
        XCTAssertEqual(server.terminationReason, .uncaughtSignal)
        XCTAssertGreaterThanOrEqual(acks.count, 300)
        // Every event that got a 202 is in the log, with what was sent.
        let log = try EventLog(directory: dir + "/events")
        var found: [UInt64: UInt32] = [:]
        try log.forEach(from: before) { e in if e.user == "crash" { found[e.id] = e.watchMs } }
        for (id, watch) in acks.acked { XCTAssertEqual(found[id], watch, "acknowledged event \(id) lost") }
        log.close()
    }

    func testTornTailIsRecoveredOnRestart() async throws {
        XCTAssertEqual(try CLIRunner.run(["world", "--users", "20", "--videos", "20", "--data-dir", dir]).status, 0)
        let log = try EventLog(directory: dir + "/events")
        let n = log.endId
        log.close()
        let segs = try FileManager.default.contentsOfDirectory(atPath: dir + "/events").filter { $0.hasSuffix(".log") }.sorted()
        let last = URL(fileURLWithPath: dir + "/events/" + segs.last!)
        let h = try FileHandle(forWritingTo: last)
        try h.seekToEnd()
        h.write(Data([0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]))  // a record cut short by a crash
        try h.close()
        let (server, port) = try startServer()
        XCTAssertTrue(startupText.contains("recovered a torn tail"), startupText)
        let health = try await HTTPClient(port: port).get("/healthz")
        XCTAssertEqual(health.status, 200)
        server.terminate()
        server.waitUntilExit()
        XCTAssertEqual(try EventLog(directory: dir + "/events").endId, n)
    }

    /// A transcode worker killed (with its ffmpeg) mid-job: the lease runs out, a restarted
    /// worker claims the job again and finishes it; one complete ladder, no leftovers.
    func testATranscodeWorkerKilledMidJobIsFinishedOnceByTheNext() throws {
        let store = try DataDirectory(dir).openStore()
        let path = dir + "/upload.mp4"
        let ff = Process()
        ff.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        ff.arguments = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=720x1280:rate=30", "-t", "12",
                        "-pix_fmt", "yuv420p", path]
        try ff.run()
        ff.waitUntilExit()
        XCTAssertEqual(ff.terminationStatus, 0)
        try store.insertUpload(Upload(id: "up", owner: "me", path: path, bytes: 1, durationMs: 12_000, width: 720, height: 1280, createdAt: 0))
        try store.createVideo(Video(id: "vid", createdAt: 0), fromUpload: "up", by: "me")
        let lease = 6.0
        // The claim happens after this instant, so the lease cannot end before startedBefore + lease.
        let startedBefore = Date()
        let (worker, _, _) = try CLIRunner.start(["worker", "transcode", "--data-dir", dir, "--lease", "\(Int(lease))"],
                                                 ready: "waiting for jobs")
        // Mid-job, observed rather than timed: ffmpeg has written a segment into the job's
        // temporary folder. Then freeze the worker, so the job cannot finish behind our back.
        let deadline = Date().addingTimeInterval(60)
        func segmentWritten() -> Bool {
            guard let e = FileManager.default.enumerator(atPath: dir + "/media") else { return false }
            return e.contains { ($0 as? String)?.hasSuffix(".m4s") == true }
        }
        while !segmentWritten() && Date() < deadline { usleep(20_000) }
        XCTAssertTrue(segmentWritten(), "ffmpeg never wrote a segment")
        // Freeze the worker first so it cannot see its ffmpeg die, record a failure and claim
        // the job again before its own SIGKILL lands (a race a slow machine loses).
        kill(worker.processIdentifier, SIGSTOP)
        XCTAssertEqual(try store.transcodeJob(video: "vid")?.status, .running)
        let pkill = Process()
        pkill.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        pkill.arguments = ["pkill", "-KILL", "-P", "\(worker.processIdentifier)"]
        try pkill.run()
        pkill.waitUntilExit()
        kill(worker.processIdentifier, SIGKILL)
        worker.waitUntilExit()
        XCTAssertEqual(try store.video(id: "vid")?.status, .processing, "not ready: the ladder was not finished")
        XCTAssertEqual(try store.transcodeJob(video: "vid")?.attempts, 1)
        // Before the lease runs out nobody else takes it: checked only when this run provably
        // ended inside the lease (on a slow machine it may not have).
        let early = try CLIRunner.run(["worker", "transcode", "--data-dir", dir, "--until-empty"])
        XCTAssertEqual(early.status, 0, early.stderr)
        if Date() < startedBefore.addingTimeInterval(lease) {
            XCTAssertEqual(try store.transcodeJob(video: "vid")?.attempts, 1, "claimed again inside the lease")
        }
        // After it, the next worker does: wait on the store row, not on the clock.
        let claimDeadline = Date().addingTimeInterval(60)
        var finisher = ""
        while try store.transcodeJob(video: "vid")?.attempts == 1 && Date() < claimDeadline {
            let w = try CLIRunner.run(["worker", "transcode", "--data-dir", dir, "--until-empty"])
            XCTAssertEqual(w.status, 0, w.stderr)
            finisher = w.stderr
            usleep(200_000)
        }
        XCTAssertTrue(finisher.contains("vid ready: 4 renditions"), finisher)
        let job = try XCTUnwrap(try store.transcodeJob(video: "vid"))
        XCTAssertEqual(job.status, .done)
        XCTAssertEqual(job.attempts, 2)
        let video = try XCTUnwrap(try store.video(id: "vid"))
        XCTAssertEqual(video.status, .ready)
        let folders = try FileManager.default.contentsOfDirectory(atPath: dir + "/media/vid")
        XCTAssertEqual(folders.count, 1, "one ladder, no temporary folders left: \(folders)")
        XCTAssertTrue(video.streamURL?.contains(folders[0]) == true)
        let again = try CLIRunner.run(["worker", "transcode", "--data-dir", dir, "--until-empty"])
        XCTAssertFalse(again.stderr.contains("ready"), "the job is not done twice")
    }
}
