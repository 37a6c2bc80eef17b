import XCTest
import Foundation
import LinearAlgebra
import CandidateStore
import EventLog
import Rankers
import Workers
import World
import TestSupport

final class RankingWorkerTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("worker") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var data: String { dir + "/data" }

    func prepare() throws -> SQLiteFeedStore {
        var w = WorldConfig()
        w.users = 300; w.videos = 120; w.topics = 6
        let d = DataDirectory(data)
        let log = try EventLog(directory: d.events)
        _ = try WorldGenerator.generate(w, store: try d.openStore(), log: log)
        log.close()
        var c = RescoreConfig(dataDir: data)
        c.modelsDir = dir + "/models"
        c.als = ALSConfig(factors: 16, regularization: 0.05, iterations: 6, solver: .cg, threads: 2)
        c.top = 30
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
        let store = try prepare()
        let worker = try RankingWorker(config: config())
        // The rescore covered the whole log; the worker starts from scratch and catches up.
        let catchUp = try worker.step()
        XCTAssertGreaterThan(catchUp.events, 0)
        while try worker.step().events > 0 {}
        let user = "7"
        // The topic this user sees least of, then a burst of likes and completions of it.
        let videos = try store.videos()
        let topics = Set(videos.map(\.topic)).sorted()
        let before = try topics.map { ($0, try topicShare(store, user: user, topic: $0)) }.min { $0.1 < $1.1 }!
        let log = try EventLog(directory: DataDirectory(data).events)
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
        var first: RankingWorker? = try RankingWorker(config: config())
        _ = try first!.step()  // one batch, then "crash"
        let cursor = try XCTUnwrap(try store.consumerCursor("ranker")).nextEvent
        first = nil
        let second = try RankingWorker(config: config())
        XCTAssertEqual(second.nextEvent, cursor)
        while try second.step().events > 0 {}
        let live = try XCTUnwrap(try store.liveGeneration())
        let restarted = try (0..<300).map { try store.candidates(generation: live.id, user: "\($0)")?.map(\.video) }
        // An uninterrupted worker over the same log ends in the same state (the solve is exact and
        // recomputed from each user's whole history).
        try store.replaceLists(generation: live.id, lists: [], consumer: "ranker-clean", nextEvent: 0)
        var clean = config()
        clean.consumer = "ranker-clean"
        let third = try RankingWorker(config: clean)
        while try third.step().events > 0 {}
        let uninterrupted = try (0..<300).map { try store.candidates(generation: live.id, user: "\($0)")?.map(\.video) }
        XCTAssertEqual(restarted, uninterrupted)
        XCTAssertEqual(try third.step().events, 0)
    }
}
