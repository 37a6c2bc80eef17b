import XCTest
import Foundation
import CandidateStore
import PostgresStore
import TestSupport

/// One behaviour suite, two stores: every test runs against a fresh SQLite file and a fresh
/// PostgreSQL database (the throw-away cluster `scripts/test` starts), through `FeedStore`.
final class StoreBehaviourTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("store") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var backend = ""

    /// Runs `body` on each backend; failures name the backend.
    func onEachStore(_ body: (any FeedStore) throws -> Void) throws {
        try onEachStore { store, _ in try body(store) }
    }

    /// The same, with a way to open a second handle on the same store (another process's view).
    func onEachStore(_ body: (any FeedStore, () throws -> any FeedStore) throws -> Void) throws {
        var stores: [(String, () throws -> any FeedStore)] = [("sqlite", { try SQLiteFeedStore(path: self.dir + "/store.sqlite") })]
        if let url = try Fixtures.postgresDatabase() { stores.append(("postgres", { try PostgresFeedStore(url: url) })) }
        for (name, make) in stores {
            backend = name
            defer { backend = "" }
            do { try body(try make(), make) } catch { XCTFail("\(error)"); throw error }
        }
    }

    override func recordFailure(withDescription description: String, inFile filePath: String, atLine lineNumber: Int, expected: Bool) {
        super.recordFailure(withDescription: backend.isEmpty ? description : "[\(backend)] " + description, inFile: filePath,
                            atLine: lineNumber, expected: expected)
    }

    func lists(_ users: Int, _ n: Int, shift: Int32 = 0) -> [(user: String, items: [Int32], scores: [Float])] {
        (0..<users).map { u in
            (user: "u\(u)", items: (0..<Int32(n)).map { ($0 + shift + Int32(u)) % 50 }, scores: (0..<n).map { Float(n - $0) })
        }
    }

    func testVideosInsertUpsertAndConflicts() throws {
        try onEachStore { store in
            let v = Video(id: "v1", caption: "cats", tags: ["pets", "fun"], topic: "pets", creator: "c1", durationMs: 15_000,
                          status: .processing, createdAt: 5, uploadId: "up1", owner: "alice")
            try store.insertVideo(v)
            XCTAssertEqual(try store.video(id: "v1"), v)
            XCTAssertThrowsError(try store.insertVideo(v)) { e in
                guard case .conflict? = e as? StoreError else { return XCTFail("\(e)") }
            }
            var ready = v
            ready.status = .ready
            ready.streamURL = "/media/v1/master.m3u8"
            try store.upsertVideos([ready, Video(id: "v2", createdAt: 6)])
            XCTAssertEqual(try store.video(id: "v1")?.status, .ready)
            XCTAssertEqual(try store.videos().map(\.id), ["v1", "v2"])
            XCTAssertNil(try store.video(id: "nope"))
        }
    }

    /// The catalog comes back oldest first, ties by id (a server numbers its videos in this order).
    func testVideosComeOldestFirstTiesById() throws {
        try onEachStore { store in
            let ids = ["v3", "v10", "w1", "v2", "a9", "v0"], created: [Int64] = [5, 5, 9, 5, 1, 9]
            try store.upsertVideos(zip(ids, created).map { Video(id: $0, status: .ready, createdAt: $1) })
            XCTAssertEqual(try store.videos().map(\.id), ["a9", "v10", "v2", "v3", "v0", "w1"])
        }
    }

    func testGenerationRoundTripAndSwitch() throws {
        try onEachStore { store in
            let items = (0..<50).map { "v\($0)" }
            let g1 = try store.writeGeneration(model: "als", runId: "r1", items: items, lists: lists(3, 5), activate: true)
            XCTAssertEqual(try store.liveGeneration()?.id, g1)
            let c = try XCTUnwrap(try store.candidates(generation: g1, user: "u1"))
            XCTAssertEqual(c.map(\.video), ["v1", "v2", "v3", "v4", "v5"])
            XCTAssertEqual(c.map(\.score), [5, 4, 3, 2, 1])
            XCTAssertNil(try store.candidates(generation: g1, user: "ghost"))
            let g2 = try store.writeGeneration(model: "als", runId: "r2", items: items, lists: lists(3, 5, shift: 10), activate: false)
            XCTAssertEqual(try store.liveGeneration()?.id, g1)  // written, not live
            try store.activate(g2)
            XCTAssertEqual(try store.liveGeneration()?.id, g2)
            XCTAssertEqual(try store.candidates(generation: g2, user: "u0")?.first?.video, "v10")
            XCTAssertEqual(try store.rollback().id, g1)
            XCTAssertEqual(try store.liveGeneration()?.id, g1)
            XCTAssertThrowsError(try store.activate(999))
        }
    }

    func testPruneKeepsTheNewestAndTheLiveOne() throws {
        try onEachStore { store in
            let items = (0..<50).map { "v\($0)" }
            var ids: [Int64] = []
            for r in 0..<5 { ids.append(try store.writeGeneration(model: "als", runId: "r\(r)", items: items, lists: lists(2, 3), activate: r == 0)) }
            let removed = try store.prune(keep: 2)
            XCTAssertEqual(Set(removed), Set([ids[1], ids[2]]))
            XCTAssertEqual(try store.generations().map(\.id), [ids[0], ids[3], ids[4]])
            XCTAssertNil(try store.candidates(generation: ids[1], user: "u0"))
        }
    }

    func testRejectsListsOutsideTheGenerationCatalog() throws {
        try onEachStore { store in
            XCTAssertThrowsError(try store.writeGeneration(model: "als", runId: "r", items: ["a"],
                                                           lists: [(user: "u", items: [3], scores: [1])], activate: true))
        }
    }

    func testReadersNeverSeeAHalfWrittenGeneration() throws {
        try onEachStore { store in
            let items = (0..<50).map { "v\($0)" }
            _ = try store.writeGeneration(model: "als", runId: "r0", items: items, lists: lists(400, 20), activate: true)
            let stop = DispatchSemaphore(value: 0)
            final class Flag: @unchecked Sendable { var problems: [String] = []; var reads = 0; var done = false }
            let flag = Flag()
            let reader = Thread {
                while !flag.done {
                    do {
                        guard let live = try store.liveGeneration() else { flag.problems.append("no live generation"); continue }
                        // Every user of the live generation has a complete list.
                        for u in ["u0", "u199", "u399"] {
                            let c = try store.candidates(generation: live.id, user: u)
                            if c?.count != 20 { flag.problems.append("gen \(live.id) user \(u): \(c?.count ?? -1)") }
                        }
                        flag.reads += 1
                    } catch { flag.problems.append("\(error)") }
                }
                stop.signal()
            }
            reader.start()
            for r in 1...5 { _ = try store.writeGeneration(model: "als", runId: "r\(r)", items: items, lists: lists(400, 20, shift: Int32(r)), activate: true) }
            flag.done = true
            stop.wait()
            XCTAssertEqual(flag.problems, [])
            XCTAssertGreaterThan(flag.reads, 0)
        }
    }

    func testShardedGenerationsGoLiveOnlyWhenComplete() throws {
        try onEachStore { store in
            let live = try store.writeGeneration(model: "als", runId: "r0", items: ["v"], lists: [(user: "u", items: [0], scores: [1])],
                                                 activate: true)
            let items = (0..<50).map { "v\($0)" }
            let gen = try store.beginShardedGeneration(buildKey: "k", model: "als", runId: "r1", items: items, shards: 3, modelDir: "/m",
                                                       eventsThrough: 7)
            XCTAssertEqual(try store.beginShardedGeneration(buildKey: "k", model: "als", runId: "r1", items: items, shards: 3,
                                                            modelDir: "/m", eventsThrough: 7), gen, "a later shard joins")
            XCTAssertThrowsError(try store.beginShardedGeneration(buildKey: "k", model: "als", runId: "r1", items: items, shards: 2,
                                                                  modelDir: "/m", eventsThrough: 7)) {
                XCTAssertEqual($0 as? StoreError, .conflict("build k is generation \(gen) with 3 shards, not 2"))
            }
            XCTAssertThrowsError(try store.beginShardedGeneration(buildKey: "k", model: "als", runId: "r1", items: ["x"], shards: 3,
                                                                  modelDir: "/m", eventsThrough: 7)) { XCTAssertTrue("\($0)".contains("another catalog")) }
            let all = lists(30, 5)
            var p = try store.writeShard(generation: gen, shard: 0, lists: Array(all[0..<10]), activate: true)
            XCTAssertEqual(p, ShardProgress(generation: gen, done: 1, shards: 3, live: false, alreadyWritten: false))
            XCTAssertThrowsError(try store.activate(gen)) {
                XCTAssertEqual($0 as? StoreError, .conflict("generation \(gen) is incomplete: 1 of 3 shards written"))
            }
            XCTAssertEqual(try store.prune(keep: 1), [], "a generation being built is not pruned")
            XCTAssertFalse(try XCTUnwrap(try store.generations().first { $0.id == gen }).complete)
            // A shard overlapping another's users is refused whole.
            XCTAssertThrowsError(try store.writeShard(generation: gen, shard: 1, lists: Array(all[9..<20]), activate: true)) {
                guard case .conflict? = $0 as? StoreError else { return XCTFail("\($0)") }
            }
            XCTAssertNil(try store.candidates(generation: gen, user: "u15"))
            XCTAssertThrowsError(try store.writeShard(generation: gen, shard: 1, lists: [(user: "x", items: [50], scores: [1])], activate: true))
            XCTAssertThrowsError(try store.writeShard(generation: gen, shard: 3, lists: [], activate: true))
            // The last two shards at once, from two threads: exactly one of them completes it.
            final class Box: @unchecked Sendable { var results: [Result<ShardProgress, any Error>] = []; let lock = NSLock() }
            let box = Box()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let r = Result { try store.writeShard(generation: gen, shard: i + 1, lists: Array(all[(10 * (i + 1))..<(10 * (i + 2))]),
                                                      activate: true) }
                box.lock.lock(); box.results.append(r); box.lock.unlock()
            }
            let done = try box.results.map { try $0.get() }
            XCTAssertEqual(done.map(\.done).sorted(), [2, 3])
            XCTAssertEqual(done.filter(\.complete).count, 1)
            let info = try XCTUnwrap(try store.liveGeneration())
            XCTAssertEqual(info.id, gen)
            XCTAssertEqual(info.users, 30)
            XCTAssertEqual(info.topN, 5)
            XCTAssertTrue(info.complete)
            for l in all { XCTAssertEqual(try store.candidates(generation: gen, user: l.user)?.map(\.video), l.items.map { "v\($0)" }) }
            XCTAssertEqual(try store.source(generation: gen)?.modelDir, "/m")
            XCTAssertEqual(try store.source(generation: gen)?.eventsThrough, 7)
            XCTAssertEqual(try store.packedCandidates(generation: gen, user: "u3")?.throughEvent, 7)
            p = try store.writeShard(generation: gen, shard: 1, lists: [], activate: true)
            XCTAssertTrue(p.alreadyWritten)
            XCTAssertNotEqual(live, gen)
            XCTAssertEqual(try store.rollback().id, live)
        }
    }

    func testTheCatalogVersionMovesWithEveryChange() throws {
        try onEachStore { store in
            let v0 = try store.catalogVersion()
            try store.insertVideo(Video(id: "a", createdAt: 1))
            let v1 = try store.catalogVersion()
            XCTAssertGreaterThan(v1, v0)
            try store.upsertVideos([Video(id: "a", caption: "new", createdAt: 1)])
            XCTAssertGreaterThan(try store.catalogVersion(), v1)
            XCTAssertNil(try store.runningExperiment())
            XCTAssertNil(try store.source(generation: 12345))
        }
    }

    func testUploadsBecomeVideosOnceAndTranscodeJobsAreLeasedRetriedAndFinished() throws {
        try onEachStore { store in
            try store.insertUpload(Upload(id: "up", owner: "ann", path: "/d/up.mp4", bytes: 99, durationMs: 12_000, width: 720,
                                          height: 1280, createdAt: 3))
            XCTAssertEqual(try store.upload(id: "up")?.durationMs, 12_000)
            XCTAssertNil(try store.upload(id: "nope"))
            XCTAssertThrowsError(try store.createVideo(Video(id: "x", createdAt: 1), fromUpload: "nope", by: "ann")) {
                XCTAssertEqual($0 as? UploadError, .unknownUpload("nope"))
            }
            XCTAssertThrowsError(try store.createVideo(Video(id: "x", createdAt: 1), fromUpload: "up", by: "bob")) {
                XCTAssertEqual($0 as? UploadError, .notYours("up"))
            }
            let version = try store.catalogVersion()
            try store.createVideo(Video(id: "vid", caption: "hi", status: .ready, createdAt: 5), fromUpload: "up", by: "ann")
            XCTAssertGreaterThan(try store.catalogVersion(), version)
            let v = try XCTUnwrap(try store.video(id: "vid"))
            XCTAssertEqual(v.status, .processing)
            XCTAssertEqual(v.uploadId, "up")
            XCTAssertEqual(v.owner, "ann")
            XCTAssertThrowsError(try store.createVideo(Video(id: "vid2", createdAt: 1), fromUpload: "up", by: "ann")) {
                XCTAssertEqual($0 as? UploadError, .alreadyUsed("up"))
            }
            XCTAssertEqual(try store.transcodeJob(video: "vid")?.status, .queued)
            // Claimed and leased: nobody else gets it until the lease runs out.
            let job = try XCTUnwrap(try store.claimTranscodeJob(leaseSeconds: 10, now: 1_000))
            XCTAssertEqual(job.status, .running)
            XCTAssertEqual(job.attempts, 1)
            XCTAssertNil(try store.claimTranscodeJob(leaseSeconds: 10, now: 5_000))
            let again = try XCTUnwrap(try store.claimTranscodeJob(leaseSeconds: 10, now: 12_000), "the lease ran out")
            XCTAssertEqual(again.attempts, 2)
            XCTAssertEqual(try store.failTranscode(job: job.id, error: "ffmpeg: boom", permanent: false, maxAttempts: 3), .queued)
            XCTAssertEqual(try store.transcodeJob(video: "vid")?.error, "ffmpeg: boom")
            _ = try XCTUnwrap(try store.claimTranscodeJob(leaseSeconds: 10, now: 13_000))
            try store.completeTranscode(job: job.id, video: "vid", streamURL: "/media/vid/abc/master.m3u8", posterURL: "/media/vid/abc/poster.jpg",
                                        durationMs: 11_900)
            let ready = try XCTUnwrap(try store.video(id: "vid"))
            XCTAssertEqual(ready.status, .ready)
            XCTAssertEqual(ready.streamURL, "/media/vid/abc/master.m3u8")
            XCTAssertEqual(ready.durationMs, 11_900)
            XCTAssertEqual(try store.transcodeJob(video: "vid")?.status, .done)
            XCTAssertNil(try store.claimTranscodeJob(leaseSeconds: 10, now: 99_000))
            // A poison file: permanent failure ends the job and its video failed, with the reason.
            try store.insertUpload(Upload(id: "bad", owner: "ann", path: "/d/bad", bytes: 1, durationMs: 1, width: 1, height: 1, createdAt: 4))
            try store.createVideo(Video(id: "vbad", createdAt: 6), fromUpload: "bad", by: "ann")
            let b = try XCTUnwrap(try store.claimTranscodeJob(leaseSeconds: 10, now: 100_000))
            XCTAssertEqual(try store.failTranscode(job: b.id, error: "not a video", permanent: true, maxAttempts: 3), .failed)
            XCTAssertEqual(try store.video(id: "vbad")?.status, .failed)
            XCTAssertEqual(try store.transcodeJob(video: "vbad")?.error, "not a video")
            XCTAssertThrowsError(try store.failTranscode(job: 999, error: "x", permanent: true, maxAttempts: 1))
        }
    }

    func testExperimentsOneRunningAtATimeAndTheirGenerationsAreNotPruned() throws {
        try onEachStore { store in
                var gens: [Int64] = []
            for n in 0..<4 {
                gens.append(try store.writeGeneration(model: "als", runId: "r\(n)", items: ["v"], lists: [(user: "u", items: [0], scores: [1])],
                                                      activate: true))
            }
            XCTAssertThrowsError(try store.createExperiment(name: "bad name", variants: [.init(name: "a", generation: gens[0], weight: 1),
                                                                                           .init(name: "b", generation: gens[1], weight: 1)]))
            XCTAssertThrowsError(try store.createExperiment(name: "x", variants: [.init(name: "a", generation: 999, weight: 1),
                                                                                   .init(name: "b", generation: gens[1], weight: 1)])) {
                XCTAssertEqual($0 as? ExperimentError, .invalid("variant a: no generation 999"))
            }
            let e = try store.createExperiment(name: "exp1", variants: [.init(name: "control", generation: gens[0], weight: 1),
                                                                         .init(name: "treatment", generation: gens[3], weight: 1)])
            XCTAssertEqual(e.status, .draft)
            XCTAssertThrowsError(try store.createExperiment(name: "exp1", variants: e.variants)) { XCTAssertEqual($0 as? ExperimentError, .exists("exp1")) }
            XCTAssertNil(try store.runningExperiment())
            try store.startExperiment("exp1", at: 1_000)
            XCTAssertEqual(try store.runningExperiment()?.name, "exp1")
            XCTAssertEqual(try store.runningExperiment()?.salt, e.salt)
            _ = try store.createExperiment(name: "exp2", variants: e.variants)
            XCTAssertThrowsError(try store.startExperiment("exp2", at: 1_500)) { XCTAssertEqual($0 as? ExperimentError, .anotherRunning("exp1")) }
            // The control's generation is old, but an experiment serves from it: pruning keeps it.
            let removed = try store.prune(keep: 1)
            XCTAssertEqual(Set(removed), [gens[1], gens[2]])
            XCTAssertNotNil(try store.candidates(generation: gens[0], user: "u"))
            try store.stopExperiment("exp1", at: 2_000)
            XCTAssertNil(try store.runningExperiment())
            XCTAssertEqual(try store.experiment(named: "exp1")?.stoppedAt, 2_000)
            XCTAssertThrowsError(try store.startExperiment("exp1", at: 2_500))  // stopped stays stopped
            // A draft can be deleted (and its generations are then no longer held); one that ran cannot.
            _ = try store.createExperiment(name: "typo", variants: e.variants)
            try store.deleteExperiment("typo")
            XCTAssertNil(try store.experiment(named: "typo"))
            XCTAssertThrowsError(try store.deleteExperiment("typo")) { XCTAssertEqual($0 as? ExperimentError, .notFound("typo")) }
            XCTAssertThrowsError(try store.deleteExperiment("exp1")) { XCTAssertTrue("\($0)".contains("only a draft"), "\($0)") }
            try store.startExperiment("exp2", at: 3_000)
            XCTAssertThrowsError(try store.deleteExperiment("exp2"))
            XCTAssertEqual(try store.experiments().map(\.name), ["exp1", "exp2"])
            XCTAssertEqual(try store.experiment(named: "exp1")?.kind, .ab)
            XCTAssertNil(try store.experiment(named: "exp1")?.primary)
            // An interleaving test and a declared primary metric are stored with the experiment.
            let il = try store.createExperiment(name: "il", variants: [.init(name: "a", generation: gens[0], weight: 1),
                                                                        .init(name: "b", generation: gens[3], weight: 1)],
                                                kind: .interleave, primary: "like_rate")
            XCTAssertEqual(try store.experiment(named: "il"), il)
            XCTAssertEqual(il.annotation(for: "u7"), #"{"exp":"il","var":"interleaved"}"#)
            XCTAssertThrowsError(try store.createExperiment(name: "il3", variants: e.variants + [.init(name: "c", generation: gens[0], weight: 1)],
                                                            kind: .interleave, primary: nil)) {
                XCTAssertEqual($0 as? ExperimentError, .invalid("an interleaving test compares exactly two variants"))
            }
            try store.deleteExperiment("il")
            XCTAssertEqual(Experiment.parseAnnotation(e.annotation(for: "u7"))?.experiment, "exp1")
            XCTAssertEqual(Experiment.parseAnnotation(e.annotation(for: "u7"))?.variant, e.variant(for: "u7").name)
            XCTAssertNil(Experiment.parseAnnotation(""))
        }
    }

    func testReplacingListsCommitsTheConsumerCursorInTheSameTransaction() throws {
        try onEachStore { store, reopen in
            let items = (0..<50).map { "v\($0)" }
            let g = try store.writeGeneration(model: "als", runId: "r", items: items, lists: lists(3, 5), activate: true)
            // Another reader (the server) has the item table cached already.
            let server = try reopen()
            XCTAssertEqual(try server.candidates(generation: g, user: "u1")?.first?.video, "v1")
            XCTAssertNil(try store.consumerCursor("ranker"))
            try store.replaceLists(generation: g, lists: [(user: "u1", videos: ["vNEW", "v7"], scores: [2, 1]),
                                                          (user: "u9", videos: ["v3"], scores: [1])],
                                   consumer: "ranker", nextEvent: 42)
            XCTAssertEqual(try server.candidates(generation: g, user: "u1")?.map(\.video), ["vNEW", "v7"])
            XCTAssertEqual(try server.candidates(generation: g, user: "u9")?.map(\.video), ["v3"])
            XCTAssertEqual(try server.candidates(generation: g, user: "u0")?.count, 5)  // untouched
            let c = try XCTUnwrap(try store.consumerCursor("ranker"))
            XCTAssertEqual(c.generation, g)
            XCTAssertEqual(c.nextEvent, 42)
            XCTAssertThrowsError(try store.replaceLists(generation: 999, lists: [], consumer: "ranker", nextEvent: 50))
            XCTAssertEqual(try store.consumerCursor("ranker")?.nextEvent, 42)  // a failed write moved nothing
        }
    }

    /// Two workers that both read cursor 0 and both write: the compare-and-set lets exactly one
    /// through, from two handles (two processes' views) and from threads racing on them.
    func testReplacingListsIsACompareAndSetOnTheCursor() throws {
        try onEachStore { store, reopen in
            let items = (0..<50).map { "v\($0)" }
            let g = try store.writeGeneration(model: "als", runId: "r", items: items, lists: lists(3, 5), activate: true)
            let other = try reopen()
            XCTAssertTrue(try store.replaceLists(generation: g, lists: [(user: "u1", videos: ["v4"], scores: [1])],
                                                 consumer: "ranker", nextEvent: 10, expecting: 0))
            XCTAssertFalse(try other.replaceLists(generation: g, lists: [(user: "u1", videos: ["v9"], scores: [1])],
                                                  consumer: "ranker", nextEvent: 10, expecting: 0))
            XCTAssertEqual(try other.candidates(generation: g, user: "u1")?.map(\.video), ["v4"])  // the loser wrote nothing
            XCTAssertEqual(try other.consumerCursor("ranker")?.nextEvent, 10)
            XCTAssertTrue(try other.replaceLists(generation: g, lists: [(user: "u1", videos: ["v9"], scores: [1])],
                                                 consumer: "ranker", nextEvent: 20, expecting: 10))
            // A scratch cursor's writes fenced on the real one: refused while it moved, and the
            // real cursor is never written by them.
            XCTAssertFalse(try store.replaceLists(generation: g, lists: [(user: "u3", videos: ["v1"], scores: [1])],
                                                  consumer: "ranker#refold", nextEvent: 10, expecting: 10, fence: "ranker"))
            XCTAssertNil(try store.consumerCursor("ranker#refold"))
            XCTAssertTrue(try store.replaceLists(generation: g, lists: [(user: "u3", videos: ["v1"], scores: [1])],
                                                 consumer: "ranker#refold", nextEvent: 20, expecting: 20, fence: "ranker"))
            XCTAssertEqual(try store.consumerCursor("ranker#refold")?.nextEvent, 20)
            XCTAssertEqual(try store.consumerCursor("ranker")?.nextEvent, 20)
            // Racing: 8 writers on 2 handles, each expecting the cursor it saw (20); one wins.
            final class Wins: @unchecked Sendable { let lock = NSLock(); var n = 0; var errors: [String] = [] }
            let wins = Wins()
            let handles: [any FeedStore] = [store, other]
            DispatchQueue.concurrentPerform(iterations: 8) { i in
                do {
                    if try handles[i % 2].replaceLists(generation: g, lists: [(user: "u2", videos: ["v\(i)"], scores: [1])],
                                                       consumer: "ranker", nextEvent: UInt64(100 + i), expecting: 20) {
                        wins.lock.lock(); wins.n += 1; wins.lock.unlock()
                    }
                } catch {
                    wins.lock.lock(); wins.errors.append("\(error)"); wins.lock.unlock()
                }
            }
            XCTAssertEqual(wins.errors, [])
            XCTAssertEqual(wins.n, 1)
            let cursor = try XCTUnwrap(try store.consumerCursor("ranker")?.nextEvent)
            let winner = Int(cursor) - 100
            XCTAssertEqual(try store.candidates(generation: g, user: "u2")?.map(\.video), ["v\(winner)"])
        }
    }
}

/// The feed server's list cache on PostgreSQL: lists are served from memory and dropped as soon
/// as another process replaces them (LISTEN/NOTIFY), including users that had no list yet.
final class PostgresListCacheTests: XCTestCase {
    func waitFor(_ what: String, _ ok: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(5)
        while !(try ok()) {
            guard Date() < deadline else { return XCTFail("not within 5 s: \(what)") }
            usleep(10_000)
        }
    }

    func testCachedListsFollowAnotherProcessesReplacements() throws {
        guard let url = try Fixtures.postgresDatabase() else { throw XCTSkip("no PostgreSQL cluster (scripts/test starts one)") }
        let server = try PostgresFeedStore(url: url)
        try server.enableListCache(capacity: 3, ttl: 300)
        let worker = try PostgresFeedStore(url: url)  // another process's handle
        try worker.upsertVideos((0..<20).map { Video(id: "v\($0)", status: .ready, createdAt: Int64($0)) })
        let gen = try worker.writeGeneration(model: "als", runId: "r", items: (0..<20).map { "v\($0)" },
                                             lists: [(user: "ann", items: [1, 2, 3], scores: [3, 2, 1])], activate: true)
        func list(_ u: String) throws -> [String]? { try server.candidates(generation: gen, user: u)?.map(\.video) }
        XCTAssertEqual(try list("ann"), ["v1", "v2", "v3"])
        XCTAssertNil(try list("bob"))
        XCTAssertEqual(try list("ann"), ["v1", "v2", "v3"])
        XCTAssertNil(try list("bob"))
        let s = try XCTUnwrap(server.listCacheStats)
        XCTAssertEqual(s.hits, 2, "the second reads came from memory")
        XCTAssertEqual(s.misses, 2)
        // The worker replaces ann's list and gives bob his first: both show on the next read.
        try worker.replaceLists(generation: gen, lists: [(user: "ann", videos: ["v9", "v8"], scores: [2, 1]),
                                                         (user: "bob", videos: ["v7"], scores: [1])], consumer: "ranker", nextEvent: 5)
        try waitFor("ann's new list") { try list("ann") == ["v9", "v8"] }
        try waitFor("bob's first list") { try list("bob") == ["v7"] }
        // Capacity 3: the oldest entries give way, and reads stay correct.
        for u in ["c1", "c2", "c3", "c4"] { XCTAssertNil(try list(u)) }
        XCTAssertLessThanOrEqual(server.listCacheStats!.lists, 3)
        XCTAssertEqual(try list("ann"), ["v9", "v8"])
        // Many users at once: notices in chunks under PostgreSQL's payload limit.
        XCTAssertNil(try list("m5"))  // no list yet, and held as such
        try worker.replaceLists(generation: gen, lists: (0..<300).map { (user: "m\($0)", videos: ["v1"], scores: [1]) } +
                                [(user: "ann", videos: ["v4"], scores: [1])], consumer: "ranker", nextEvent: 6)
        try waitFor("ann's list after a large replacement") { try list("ann") == ["v4"] }
        try waitFor("m5's first list") { try list("m5") == ["v1"] }
    }
}

/// The same cache on the embedded store: another process's commit (seen through
/// `PRAGMA data_version`) drops what the server holds.
final class SQLiteListCacheTests: XCTestCase {
    func testCachedListsFollowAnotherConnectionsReplacements() throws {
        let dir = Fixtures.tempDir("store-cache")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let worker = try SQLiteFeedStore(path: dir + "/store.sqlite")
        try worker.upsertVideos((0..<20).map { Video(id: "v\($0)", status: .ready, createdAt: Int64($0)) })
        let gen = try worker.writeGeneration(model: "als", runId: "r", items: (0..<20).map { "v\($0)" },
                                             lists: [(user: "ann", items: [1, 2, 3], scores: [3, 2, 1])], activate: true)
        let server = try SQLiteFeedStore(path: dir + "/store.sqlite")  // another process's handle
        try server.enableListCache(capacity: 10, ttl: 300, pollSeconds: 0.01)
        func list(_ u: String) throws -> [String]? { try server.candidates(generation: gen, user: u)?.map(\.video) }
        // Memory only: nothing is known before a read; afterwards the list, or its absence.
        XCTAssertNil(server.memoryCandidates(generation: gen, user: "ann"))
        XCTAssertEqual(try list("ann"), ["v1", "v2", "v3"])
        XCTAssertNil(try list("bob"))
        XCTAssertEqual(server.memoryCandidates(generation: gen, user: "ann")??.count, 3)
        XCTAssertNotNil(server.memoryCandidates(generation: gen, user: "bob"))
        XCTAssertNil(server.memoryCandidates(generation: gen, user: "bob")!, "bob has no list, and that is cached too")
        XCTAssertEqual(try list("ann"), ["v1", "v2", "v3"])
        XCTAssertEqual(server.listCacheStats?.hits, 4)
        XCTAssertEqual(server.listCacheStats?.misses, 2)
        try worker.replaceLists(generation: gen, lists: [(user: "ann", videos: ["v9"], scores: [1]), (user: "bob", videos: ["v7"], scores: [1])],
                                consumer: "ranker", nextEvent: 5)
        let deadline = Date().addingTimeInterval(5)
        while try list("ann") != ["v9"] || list("bob") != ["v7"] {
            guard Date() < deadline else { return XCTFail("the replacement did not show within 5 s") }
            usleep(5_000)
        }
        // The uncached store never answers from memory.
        XCTAssertNil(worker.memoryCandidates(generation: gen, user: "ann"))
    }
}
