import XCTest
import Foundation
import LinearAlgebra
import CandidateStore
import EventLog
import Rankers
import Interactions
import Artifacts
import Training
import Rescoring
import LiveRanking
import Transcoding
import Studies
import World
import TestSupport

final class RankingWorkerTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("worker") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var data: String { dir + "/data" }

    func prepare(model: RescoreConfig.Model = .als) throws -> SQLiteFeedStore {
        var w = WorldConfig()
        w.users = 300; w.videos = 120; w.topics = 6
        let d = DataDirectory(data)
        let log = try EventLog(directory: d.events, access: .append)
        _ = try WorldGenerator.generate(w, store: try d.openStore(), log: log)
        log.close()
        var c = RescoreConfig(dataDir: data)
        c.modelsDir = dir + "/models"
        c.als = ALSConfig(factors: 16, regularization: 0.05, iterations: 6, solver: .cg, threads: 2)
        c.top = 30
        c.model = model
        c.ease.lambda = 20
        c.ease.threads = 2
        c.rerankDefaults.maxTrees = 60
        _ = try RescoreJob.run(c)
        return try d.openStore()
    }

    func config() -> RankingWorker.Config {
        var c = RankingWorker.Config(dataDir: data)
        c.top = 30
        return c
    }

    func topicShare(_ store: SQLiteFeedStore, user: String, topic: String) throws -> Double {
        let live = try XCTUnwrap(try store.liveGeneration())
        let list = try XCTUnwrap(try store.candidates(generation: live.id, user: user)).prefix(10)
        let topics = try list.map { try store.video(id: $0.video)?.topic }
        return Double(topics.filter { $0 == topic }.count) / Double(max(1, list.count))
    }

    func testNewEventsReshapeTheUsersListAndCommitTheCursor() throws {
        try newEventsReshapeTheUsersList(model: .als)
    }

    /// An EASE generation: the user's new row of X times the trained B, no retrain.
    func testNewEventsReshapeAnEASEUsersList() throws {
        try newEventsReshapeTheUsersList(model: .ease)
    }

    /// A second-stage generation: sources rebuilt from the user's events, the trained ranker re-ranks.
    func testNewEventsReshapeASecondStageUsersList() throws {
        try newEventsReshapeTheUsersList(model: .rerank)
    }

    func newEventsReshapeTheUsersList(model: RescoreConfig.Model) throws {
        let store = try prepare(model: model)
        XCTAssertEqual(try store.liveGeneration()?.model, model.rawValue)
        let worker = try RankingWorker(config: config())
        // The rescore covered the whole log: a first start begins where its training ended.
        XCTAssertEqual(worker.nextEvent, try store.source(generation: try XCTUnwrap(try store.liveGeneration()).id)?.eventsThrough)
        XCTAssertEqual(try worker.step().events, 0)
        let user = "7"
        // The topic this user sees least of, then a burst of likes and completions of it.
        let videos = try store.videos()
        let topics = Set(videos.map(\.topic)).sorted()
        let before = try topics.map { ($0, try topicShare(store, user: user, topic: $0)) }.min { $0.1 < $1.1 }!
        let log = try EventLog(directory: DataDirectory(data).events, access: .append)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var drafts: [EventDraft] = []
        for (n, v) in videos.filter({ $0.topic == before.0 }).prefix(12).enumerated() {
            drafts.append(EventDraft(user: user, video: v.id, type: .complete, watchMs: UInt32(v.durationMs), timeMs: now + Int64(n)))
            drafts.append(EventDraft(user: user, video: v.id, type: .like, timeMs: now + Int64(n)))
        }
        _ = try log.appendSync(drafts)
        let end = log.endId
        log.close()
        let step = try worker.step()
        XCTAssertEqual(step.events, drafts.count)
        XCTAssertEqual(step.usersUpdated, 1)
        XCTAssertEqual(try store.consumerCursor("ranker")?.nextEvent, end)
        let after = try topicShare(store, user: user, topic: before.0)
        XCTAssertGreaterThan(after, before.1 + 0.2, "share of \(before.0): \(before.1) -> \(after)")
        // The liked videos themselves are now seen and never recommended back.
        let live = try XCTUnwrap(try store.liveGeneration())
        let list = try XCTUnwrap(try store.candidates(generation: live.id, user: user)).map(\.video)
        XCTAssertTrue(Set(list).isDisjoint(with: drafts.map(\.video)))
    }

    func testARestartedWorkerNeitherLosesNorRepeatsWork() throws {
        let store = try prepare()
        let gen = try XCTUnwrap(try store.liveGeneration()).id
        // Replay the whole log, in small batches.
        try store.replaceLists(generation: gen, lists: [], consumer: "ranker", nextEvent: 0)
        var c = config()
        c.batch = 500
        var first: RankingWorker? = try RankingWorker(config: c)
        _ = try first!.step()  // one batch, then "crash"
        let cursor = try XCTUnwrap(try store.consumerCursor("ranker")).nextEvent
        first = nil
        let second = try RankingWorker(config: c)
        XCTAssertEqual(second.nextEvent, cursor)
        while try second.step().events > 0 {}
        let live = try XCTUnwrap(try store.liveGeneration())
        let restarted = try (0..<300).map { try store.candidates(generation: live.id, user: "\($0)")?.map(\.video) }
        // An uninterrupted worker over the same log ends in the same state (the solve is exact and
        // recomputed from each user's whole history).
        try store.replaceLists(generation: live.id, lists: [], consumer: "ranker-clean", nextEvent: 0)
        var clean = c
        clean.consumer = "ranker-clean"
        let third = try RankingWorker(config: clean)
        while try third.step().events > 0 {}
        let uninterrupted = try (0..<300).map { try store.candidates(generation: live.id, user: "\($0)")?.map(\.video) }
        XCTAssertEqual(restarted, uninterrupted)
        XCTAssertEqual(try third.step().events, 0)
    }

    func appendEvents(_ drafts: [EventDraft]) throws {
        let log = try EventLog(directory: DataDirectory(data).events, access: .append)
        _ = try log.appendSync(drafts)
        log.close()
    }

    /// Users whose live top-10 is most / least made of `topic`.
    func usersByTopic(_ store: SQLiteFeedStore, _ topic: String) throws -> [String] {
        try (0..<300).map { ("\($0)", try topicShare(store, user: "\($0)", topic: topic)) }
            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.map(\.0)
    }

    func testANewVideoIsPlacedFromItsFirstInteractions() throws {
        let store = try prepare()
        let topic = try XCTUnwrap(try store.videos().first?.topic)
        let fans = try usersByTopic(store, topic)
        try store.upsertVideos([Video(id: "fresh", caption: "new \(topic)", topic: topic, durationMs: 20_000)])
        let worker = try RankingWorker(config: config())
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // Eight of the topic's fans complete and like it.
        try appendEvents(fans.prefix(8).flatMap { u in
            [EventDraft(user: u, video: "fresh", type: .complete, watchMs: 20_000, timeMs: now),
             EventDraft(user: u, video: "fresh", type: .like, timeMs: now)]
        })
        let placed = try worker.step()
        XCTAssertEqual(placed.foldedVideos, 1)
        // Other fans and the users who care least for the topic do something unrelated.
        let others = Array(fans.dropFirst(8).prefix(15)), strangers = Array(fans.suffix(15))
        let unrelated = try XCTUnwrap(try store.videos().first { $0.topic != topic })
        try appendEvents((others + strangers).map { EventDraft(user: $0, video: unrelated.id, type: .view, watchMs: 1_000, timeMs: now + 1) })
        try worker.step()
        let gen = try XCTUnwrap(try store.liveGeneration()).id
        func holders(_ users: [String]) throws -> Int {
            try users.count { try store.candidates(generation: gen, user: $0)?.prefix(10).contains { $0.video == "fresh" } == true }
        }
        let fanCount = try holders(others), strangerCount = try holders(strangers)
        XCTAssertGreaterThanOrEqual(fanCount, 3, "fans with the new video in their top 10 (strangers: \(strangerCount))")
        XCTAssertGreaterThan(fanCount, strangerCount + 2, "fans \(fanCount), strangers \(strangerCount)")
        // The users who watched it never get it back.
        XCTAssertEqual(try holders(Array(fans.prefix(8))), 0)
        // A restart rebuilds the same placement from the log.
        let again = try RankingWorker(config: config())
        XCTAssertEqual(try again.step().foldedVideos, 1)
    }

    func testASwitchToAGenerationTrainedOnLessFoldsTheMissingEventsIn() throws {
        let store = try prepare()
        let first = try XCTUnwrap(try store.liveGeneration()).id
        let user = "11"
        let videos = try store.videos()
        let topics = Set(videos.map(\.topic)).sorted()
        let least = try topics.map { ($0, try topicShare(store, user: user, topic: $0)) }.min { $0.1 < $1.1 }!
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let burst = videos.filter { $0.topic == least.0 }.prefix(12).flatMap { v in
            [EventDraft(user: user, video: v.id, type: .complete, watchMs: UInt32(v.durationMs), timeMs: now),
             EventDraft(user: user, video: v.id, type: .like, timeMs: now)]
        }
        try appendEvents(burst)
        // A retrain sees the burst; the worker starts after it.
        var c = RescoreConfig(dataDir: data)
        c.modelsDir = dir + "/models"
        c.als = ALSConfig(factors: 16, regularization: 0.05, iterations: 6, solver: .cg, threads: 2)
        c.top = 30
        _ = try RescoreJob.run(c)
        let worker = try RankingWorker(config: config())
        XCTAssertEqual(try worker.step().refolded, 0)
        // Rolling back to the first generation, trained before the burst: the worker folds the
        // burst's user into it before anything else.
        XCTAssertEqual(try store.rollback().id, first)
        XCTAssertLessThan(try topicShare(store, user: user, topic: least.0), least.1 + 0.2)
        let s = try worker.step()
        XCTAssertEqual(s.refolded, 1)
        XCTAssertEqual(try store.consumerCursor("ranker")?.generation, first)
        XCTAssertGreaterThan(try topicShare(store, user: user, topic: least.0), least.1 + 0.2)
        XCTAssertEqual(try worker.step().refolded, 0)
    }
    /// The worker's start reads the newest interaction table and the log after it: the same lists
    /// as a start that reads the whole log, and it still works once the log before the table is
    /// pruned (a whole read is then impossible).
    func testAStartReadsTheInteractionTableAndKeepsWorkingOnAPrunedLog() throws {
        setenv("FORYOU_SEGMENT_BYTES", "8192", 1)
        defer { unsetenv("FORYOU_SEGMENT_BYTES") }
        let store = try prepare()  // the rescore wrote a table at the log's end
        let d = DataDirectory(data)
        let gen = try XCTUnwrap(try store.liveGeneration()).id
        let trained = try XCTUnwrap(try store.source(generation: gen)?.eventsThrough)
        let tables = try FileManager.default.contentsOfDirectory(atPath: d.interactions).filter { $0.hasPrefix("table-") }
        XCTAssertEqual(tables.count, 1)
        // New events for 40 users.
        let videos = try store.videos()
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try appendEvents((0..<40).flatMap { u in
            (0..<3).map { k in EventDraft(user: "\(u * 7)", video: videos[(u * 13 + k * 5) % videos.count].id, type: .like, timeMs: now + Int64(k)) }
        })
        let users = (0..<40).map { "\($0 * 7)" }
        // 1: the whole log (the table moved aside).
        try FileManager.default.moveItem(atPath: d.interactions, toPath: dir + "/tables-aside")
        try store.replaceLists(generation: gen, lists: [], consumer: "ranker", nextEvent: trained)
        let whole = try RankingWorker(config: config())
        XCTAssertEqual(try whole.step().usersUpdated, 40)
        let fromWhole = try users.map { try store.candidates(generation: gen, user: $0)?.map(\.video) }
        // 2: the table and the tail, on a log pruned up to the table.
        try FileManager.default.moveItem(atPath: dir + "/tables-aside", toPath: d.interactions)
        let log = try EventLog(directory: d.events)
        let cut = log.pruneCut(before: trained)
        log.close()
        XCTAssertGreaterThan(cut, 0)
        XCTAssertGreaterThan(try EventLog.prune(directory: d.events, to: cut).segments, 0)
        XCTAssertThrowsError(try EventLog(directory: d.events).forEachEvent { _ in })
        try store.replaceLists(generation: gen, lists: users.map { (user: $0, videos: [], scores: []) }, consumer: "ranker", nextEvent: trained)
        let fromTable = try RankingWorker(config: config())
        let s = try fromTable.step()
        XCTAssertEqual(s.usersUpdated, 40)
        XCTAssertEqual(try users.map { try store.candidates(generation: gen, user: $0)?.map(\.video) }, fromWhole)
        XCTAssertEqual(try store.consumerCursor("ranker")?.nextEvent, trained + 120)
        // 3: a table ahead of the cursor (compacted at the log's end while the worker was at
        // `trained`): the 120 events below it are only marked touched, not added again.
        let durations = Dictionary(try store.videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        let pruned = try EventLog(directory: d.events)
        let (h, at, _) = try InteractionTable.history(log: pruned, directory: d.interactions, mapping: EventMapping(),
                                                      durations: durations, through: pruned.endId)
        XCTAssertEqual(at, trained + 120)
        try InteractionTable.write(h, position: at, logFingerprint: try XCTUnwrap(pruned.fingerprint(of: at - 1)), durations: durations,
                                   to: d.interactions)
        pruned.close()
        try store.replaceLists(generation: gen, lists: users.map { (user: $0, videos: [], scores: []) }, consumer: "ranker", nextEvent: trained)
        let ahead = try RankingWorker(config: config())
        XCTAssertEqual(try ahead.step().usersUpdated, 40)
        XCTAssertEqual(try users.map { try store.candidates(generation: gen, user: $0)?.map(\.video) }, fromWhole,
                       "a history ahead of the cursor must not count the events below it twice")
        // Without any table, a pruned log is an error naming the cause, not a silent partial history.
        try FileManager.default.removeItem(atPath: d.interactions)
        XCTAssertThrowsError(try RankingWorker(config: config())) { e in
            XCTAssertTrue("\(e)".contains("pruned"), "\(e)")
        }
    }
}
