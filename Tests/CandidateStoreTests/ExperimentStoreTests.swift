import XCTest
import Foundation
import CandidateStore
import GRDB
import TestSupport

final class ExperimentStoreTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("experiments") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func testBucketsAreBalancedStableAndIndependentBetweenExperiments() {
        let users = (0..<100_000).map { "user\($0)" }
        let a = Experiment(name: "a", salt: "s1", variants: [.init(name: "c", generation: 1, weight: 20), .init(name: "t1", generation: 2, weight: 30),
                                                             .init(name: "t2", generation: 3, weight: 50)], createdAt: 0)
        var counts: [String: Int] = [:]
        for u in users { counts[a.variant(for: u).name, default: 0] += 1 }
        XCTAssertEqual(Double(counts["c"]!) / 1e5, 0.2, accuracy: 0.005)
        XCTAssertEqual(Double(counts["t1"]!) / 1e5, 0.3, accuracy: 0.005)
        XCTAssertEqual(Double(counts["t2"]!) / 1e5, 0.5, accuracy: 0.005)
        // Stable: the same user, the same variant, from another instance of the same experiment.
        let again = Experiment(name: "a", salt: "s1", variants: a.variants, createdAt: 99)
        XCTAssertTrue(users.prefix(1_000).allSatisfy { a.variant(for: $0) == again.variant(for: $0) })
        XCTAssertEqual(Experiment.bucket(user: "42", salt: "fixed"), Experiment.bucket(user: "42", salt: "fixed"))
        // Independent: another salt splits the same users across the first split's arms evenly.
        let b = Experiment(name: "b", salt: "s2", variants: [.init(name: "x", generation: 1, weight: 1), .init(name: "y", generation: 2, weight: 1)],
                           createdAt: 0)
        var table: [String: Int] = [:]
        for u in users { table[a.variant(for: u).name + "/" + b.variant(for: u).name, default: 0] += 1 }
        for arm in ["c", "t1", "t2"] {
            let x = Double(table[arm + "/x"]!), y = Double(table[arm + "/y"]!)
            XCTAssertEqual(x / (x + y), 0.5, accuracy: 0.01, arm)
        }
        // Sequential ids do not cluster.
        let seq = (0..<1_000).map { a.variant(for: "\($0)").name }
        XCTAssertGreaterThan(Set(seq.prefix(10)).count, 1)
    }

    func testAShardedGenerationIsUsableOnlyWhenEveryShardIsWritten() throws {
        let store = try SQLiteFeedStore(path: dir + "/store.sqlite")
        let live = try store.writeGeneration(model: "als", runId: "r0", items: ["v"], lists: [(user: "u", items: [0], scores: [1])], activate: true)
        let gen = try store.beginShardedGeneration(buildKey: "k", model: "als", runId: "r1", items: ["a", "b"], shards: 2, modelDir: nil,
                                                   eventsThrough: nil)
        XCTAssertEqual(try store.beginShardedGeneration(buildKey: "k", model: "als", runId: "r1", items: ["a", "b"], shards: 2,
                                                        modelDir: nil, eventsThrough: nil), gen, "the second shard joins")
        XCTAssertThrowsError(try store.beginShardedGeneration(buildKey: "k", model: "als", runId: "r1", items: ["a", "c"], shards: 2,
                                                              modelDir: nil, eventsThrough: nil)) {
            XCTAssertTrue("\($0)".contains("another catalog"), "\($0)")
        }
        var p = try store.writeShard(generation: gen, shard: 0, lists: [(user: "u1", items: [1, 0], scores: [2, 1])], activate: true)
        XCTAssertEqual(p, ShardProgress(generation: gen, done: 1, shards: 2, live: false, alreadyWritten: false))
        XCTAssertThrowsError(try store.createExperiment(name: "x", variants: [.init(name: "a", generation: live, weight: 1),
                                                                               .init(name: "b", generation: gen, weight: 1)])) {
            XCTAssertEqual($0 as? ExperimentError, .invalid("variant b: generation \(gen) is incomplete: 1 of 2 shards written"))
        }
        XCTAssertThrowsError(try store.activate(gen))
        // A user another shard already wrote: refused, and nothing of this shard is kept.
        XCTAssertThrowsError(try store.writeShard(generation: gen, shard: 1, lists: [(user: "u2", items: [0], scores: [1]),
                                                                                    (user: "u1", items: [0], scores: [1])], activate: true)) {
            guard case .conflict? = $0 as? StoreError else { return XCTFail("\($0)") }
        }
        XCTAssertNil(try store.candidates(generation: gen, user: "u2"))
        XCTAssertThrowsError(try store.writeShard(generation: gen, shard: 2, lists: [], activate: true))
        p = try store.writeShard(generation: gen, shard: 1, lists: [(user: "u2", items: [0], scores: [1])], activate: true)
        XCTAssertEqual(p, ShardProgress(generation: gen, done: 2, shards: 2, live: true, alreadyWritten: false))
        XCTAssertEqual(try store.candidates(generation: gen, user: "u1"), [Candidate(video: "b", score: 2), Candidate(video: "a", score: 1)])
        let info = try XCTUnwrap(try store.liveGeneration())
        XCTAssertEqual(info.users, 2)
        XCTAssertEqual(info.topN, 2)
        XCTAssertTrue(info.complete)
        XCTAssertTrue(try store.writeShard(generation: gen, shard: 1, lists: [], activate: true).alreadyWritten)
        // A build left incomplete for more than a day is taken for abandoned: prune removes it.
        let stale = try store.beginShardedGeneration(buildKey: "old", model: "als", runId: "r2", items: ["a"], shards: 2, modelDir: nil,
                                                     eventsThrough: nil)
        let fresh = try store.beginShardedGeneration(buildKey: "new", model: "als", runId: "r3", items: ["a"], shards: 2, modelDir: nil,
                                                     eventsThrough: nil)
        try DatabaseQueue(path: dir + "/store.sqlite").write { db in
            try db.execute(sql: "UPDATE generations SET created_at = created_at - ? WHERE id = ?",
                           arguments: [ShardProgress.abandonedAfterMs + 1_000, stale])
        }
        XCTAssertEqual(Set(try store.prune(keep: 1)), [stale, live], "the abandoned build and a generation no longer live")
        XCTAssertTrue(try store.generations().contains { $0.id == fresh })
    }
}
