import XCTest
import LinearAlgebra
import Interactions
import Rankers
import Scoring
import Training
import Rescoring
import LiveRanking
import TestSupport

/// The pieces the CLI now hands off to: one training pipeline, the shard ranges, the retrain
/// schedule.
final class TrainingPipelineTests: XCTestCase {
    func toy() -> Interactions {
        var users = IdMap(), items = IdMap()
        var ui: [Int32] = [], ii: [Int32] = [], w: [Float] = []
        var g = SeededGenerator(seed: 5)
        for u in 0..<40 {
            for _ in 0..<8 {
                ui.append(users.index(inserting: "u\(u)"))
                ii.append(items.index(inserting: "i\(Int(g.unit() * 30))"))
                w.append(1 + Float(Int(g.unit() * 3)))
            }
        }
        return Interactions(users: users, items: items, userIndex: ui, itemIndex: ii, weights: w)
    }

    /// The pipeline trains exactly what a direct ALSModel run trains (same factors, bit for bit),
    /// and records the parameters every command records.
    func testALSThroughThePipelineEqualsADirectRun() throws {
        let data = toy()
        let cfg = ALSConfig(factors: 6, regularization: 0.05, iterations: 4, solver: .cg, cgSteps: 3, threads: 2, seed: 9,
                            computeLoss: true)
        let conf = Confidence(scheme: .log, alpha: 4)
        let trained = try TrainingPipeline.fit(data, TrainingSpec(model: .als, als: cfg, confidence: conf))
        let direct = ALSModel(config: cfg, users: data.users.count, items: data.items.count)
        _ = try direct.train(data.confidenceMatrix(conf))
        let m = try XCTUnwrap(trained.ranker as? ALSModel)
        XCTAssertEqual(m.userFactors.values, direct.userFactors.values)
        XCTAssertEqual(m.itemFactors.values, direct.itemFactors.values)
        XCTAssertEqual(trained.losses, direct.losses)
        XCTAssertTrue(trained.completed)
        XCTAssertEqual(trained.outcome, "completed")
        for (k, v) in ["factors": "6", "reg": "0.05", "iters": "4", "solver": "cg", "cg_steps": "3", "seed": "9", "threads": "2",
                       "confidence": "log", "alpha": "4.0"] {
            XCTAssertEqual(trained.params[k], v, k)
        }
        let run = TrainingPipeline.record(id: "r", spec: TrainingSpec(model: .als, als: cfg, confidence: conf), trained: trained,
                                          source: .init(paths: ["x"], format: "split", fingerprint: "f", rows: data.count,
                                                        users: data.users.count, items: data.items.count, nnz: 1),
                                          importSeconds: 0, extraParams: ["job": "rescore"])
        XCTAssertEqual(run.params["job"], "rescore")
        XCTAssertEqual(run.params["factors"], "6")
        XCTAssertEqual(run.model, "als")
        XCTAssertEqual(run.losses, direct.losses)
    }

    /// An interrupted ALS run comes back incomplete, saying after how many iterations.
    func testAnInterruptedRunSaysSo() throws {
        let token = CancellationToken()
        token.cancel()
        let trained = try TrainingPipeline.fit(toy(), TrainingSpec(model: .als, als: ALSConfig(factors: 4, iterations: 5)),
                                               cancel: token)
        XCTAssertFalse(trained.completed)
        XCTAssertTrue(trained.outcome.hasPrefix("interrupted after 0 of 5"), trained.outcome)
    }

    /// Shard ranges: whole user blocks, disjoint, covering every user, in order.
    func testShardRangesAreWholeBlocksCoveringEveryUser() {
        for (users, block, n) in [(301, 64, 3), (10, 64, 2), (1000, 7, 5), (64, 64, 1), (129, 64, 4)] {
            var next = 0
            for i in 0..<n {
                let r = ScoreShards.users(shard: i, of: n, users: users, userBlock: block)
                XCTAssertEqual(r.lowerBound, next, "\(users) users, block \(block), shard \(i)/\(n)")
                XCTAssertTrue(r.lowerBound % block == 0 && (r.upperBound % block == 0 || r.upperBound == users))
                next = r.upperBound
            }
            XCTAssertEqual(next, users)
        }
        // 301 users in blocks of 64 = 5 blocks over 3 shards: blocks [0,1), [1,3), [3,5).
        XCTAssertEqual(ScoreShards.users(shard: 0, of: 3, users: 301, userBlock: 64), 0..<64)
        XCTAssertEqual(ScoreShards.users(shard: 1, of: 3, users: 301, userBlock: 64), 64..<192)
        XCTAssertEqual(ScoreShards.users(shard: 2, of: 3, users: 301, userBlock: 64), 192..<301)
    }

    func testRetrainScheduleIsDueOnItsPeriodOrItsEventCount() {
        let t0 = Date(timeIntervalSince1970: 1_000)
        var s = RetrainSchedule(period: 60, afterEvents: 100, now: t0)
        XCTAssertFalse(s.due(now: t0.addingTimeInterval(59)))
        XCTAssertTrue(s.due(now: t0.addingTimeInterval(60)))
        s.record(events: 99)
        XCTAssertFalse(s.due(now: t0.addingTimeInterval(1)))
        s.record(events: 1)
        XCTAssertTrue(s.due(now: t0.addingTimeInterval(1)))
        s.reset(now: t0.addingTimeInterval(2))
        XCTAssertFalse(s.due(now: t0.addingTimeInterval(61)))
        XCTAssertTrue(s.due(now: t0.addingTimeInterval(62)))
        let never = RetrainSchedule(now: t0)
        XCTAssertFalse(never.due(now: t0.addingTimeInterval(1e9)))
    }
}
