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

/// The two-tower on the serving path: rescore, score-all's catalog extension and the ranking
/// worker embed videos and users the model never saw, from features and history.
final class TwoTowerServingTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("tt-serving") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    var data: String { dir + "/data" }

    /// A world, one video of `topic` nobody has touched, and a two-tower generation live.
    func prepare(_ model: RescoreConfig.Model = .twoTower) throws -> (SQLiteFeedStore, RescoreResult, topic: String) {
        var w = WorldConfig()
        w.users = 300; w.videos = 120; w.topics = 6
        let d = DataDirectory(data)
        let log = try EventLog(directory: d.events, access: .append)
        _ = try WorldGenerator.generate(w, store: try d.openStore(), log: log)
        log.close()
        let store = try d.openStore()
        let topic = try XCTUnwrap(try store.videos().first?.topic)
        try store.upsertVideos([Video(id: "untouched", caption: "brand new \(topic) #\(topic)", tags: [topic, "brand"], topic: topic,
                                      durationMs: 20_000)])
        var c = RescoreConfig(dataDir: data)
        c.modelsDir = dir + "/models"
        c.model = model
        c.twoTower.dim = 16; c.twoTower.hidden = 32; c.twoTower.epochs = 12; c.twoTower.batch = 256
        c.twoTower.featureBuckets = 512; c.twoTower.threads = 2; c.twoTower.patience = 12; c.twoTower.learningRate = 0.01
        c.top = 30
        let r = try RescoreJob.run(c)
        return (store, r, topic)
    }

    func top10(_ store: SQLiteFeedStore, _ user: String) throws -> [String] {
        let live = try XCTUnwrap(try store.liveGeneration())
        return try store.candidates(generation: live.id, user: user)?.prefix(10).map(\.video) ?? []
    }

    func topicShare(_ store: SQLiteFeedStore, user: String, topic: String) throws -> Double {
        let list = try top10(store, user)
        let topics = try list.map { try store.video(id: $0)?.topic }
        return Double(topics.filter { $0 == topic }.count) / Double(max(1, list.count))
    }

    /// Users ordered by how much of `topic` their live top 10 holds.
    func usersByTopic(_ store: SQLiteFeedStore, _ topic: String) throws -> [String] {
        try (0..<300).map { ("\($0)", try topicShare(store, user: "\($0)", topic: topic)) }
            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.map(\.0)
    }

    func testRescoreRanksACatalogVideoNobodyWatchedFromItsTags() throws {
        let (store, r, topic) = try prepare()
        let run = try ModelStore.readRun(r.modelDirectory)
        XCTAssertEqual(run.model, "two-tower")
        XCTAssertEqual(run.params["features"], "catalog")
        let fans = try usersByTopic(store, topic)
        func holders(_ users: ArraySlice<String>) throws -> Int { try users.count { try top10(store, $0).contains("untouched") } }
        let fanCount = try holders(fans.prefix(40)), strangerCount = try holders(fans.suffix(40))
        XCTAssertGreaterThanOrEqual(fanCount, 10, "fans with the untouched video in their top 10 (strangers: \(strangerCount))")
        XCTAssertGreaterThan(fanCount, strangerCount + 8, "fans \(fanCount), strangers \(strangerCount)")
        // The stored model reloads with its towers and its items' training features.
        let m = try ModelStore.load(r.modelDirectory)
        let tt = try XCTUnwrap(m.ranker as? TwoTowerRanker)
        XCTAssertNotNil(tt.model)
        XCTAssertEqual(tt.itemFeatures.count, m.items.count)
        XCTAssertTrue(tt.itemFeatures.allSatisfy { !$0.isEmpty })
    }

    func testTheWorkerEmbedsNewVideosAndNewUsersWithoutRetraining() throws {
        let (store, _, _) = try prepare()
        let videos = try store.videos()
        let topics = Set(videos.map(\.topic)).sorted()
        let topic = topics[2]
        // An upload after the training, and a person the model never saw who likes six videos of `topic`.
        try store.upsertVideos([Video(id: "upload", caption: "just posted \(topic) #\(topic)", tags: [topic], topic: topic,
                                      durationMs: 15_000)])
        let worker = try RankingWorker(config: { var c = RankingWorker.Config(dataDir: data); c.top = 30; return c }())
        XCTAssertNil(worker.idleReason)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let liked = videos.filter { $0.topic == topic }.prefix(6)
        let log = try EventLog(directory: DataDirectory(data).events, access: .append)
        _ = try log.appendSync(liked.enumerated().flatMap { n, v in
            [EventDraft(user: "newcomer", video: v.id, type: .complete, watchMs: UInt32(v.durationMs), timeMs: now + Int64(n)),
             EventDraft(user: "newcomer", video: v.id, type: .like, timeMs: now + Int64(n))]
        })
        log.close()
        XCTAssertNil(try top10(store, "newcomer").first)
        let s = try worker.step()
        XCTAssertEqual(s.usersUpdated, 1)
        XCTAssertEqual(s.foldedVideos, 2, "the untouched video and the upload, embedded from their tags")
        let list = try top10(store, "newcomer")
        XCTAssertEqual(list.count, 10)
        XCTAssertTrue(Set(list).isDisjoint(with: liked.map(\.id)), "liked videos are seen and never recommended back")
        let share = try topicShare(store, user: "newcomer", topic: topic)
        XCTAssertGreaterThanOrEqual(share, 0.6, "share of \(topic) in the newcomer's top 10")
        XCTAssertTrue(list.contains("upload"), "the upload of the newcomer's topic in their top 10: \(list)")
    }

    func testWithAModelWithoutVectorsLiveTheWorkerWaitsAndSaysWhy() throws {
        let (store, _, _) = try prepare(.als)
        let worker = try RankingWorker(config: RankingWorker.Config(dataDir: data))
        try worker.step()
        XCTAssertNil(worker.idleReason)
        let p = PopularityModel(userCount: 1, itemScores: [1])
        let run = RunRecord(id: "pop", model: "popularity", createdAt: "now", codeVersion: "test", params: [:],
                            data: .init(paths: [], format: "split", fingerprint: "0", rows: 0, users: 1, items: 1, nnz: 0),
                            losses: [], timings: .init(importSeconds: 0, fitSeconds: 0, iterationSeconds: [], lossSeconds: nil),
                            outcome: "completed", environment: [:], metrics: [:], files: [:])
        try ModelStore.save(p, users: IdMap(raw: ["0"]), items: IdMap(raw: ["v0"]),
                            seen: CSR(rows: 1, cols: 1, rowIndex: [], colIndex: [], values: []), run: run, to: dir + "/pop")
        let gen = try store.writeGeneration(model: "popularity", runId: "pop", items: ["v0"], lists: [(user: "0", items: [0], scores: [1])],
                                            activate: true, modelDir: dir + "/pop", eventsThrough: nil)
        XCTAssertEqual(try worker.step().events, 0)
        XCTAssertEqual(worker.idleReason, "live generation \(gen) is a popularity model; the worker updates ALS, EASE, second-stage and two-tower generations")
        _ = try store.rollback()
        try worker.step()
        XCTAssertNil(worker.idleReason)
    }
}
