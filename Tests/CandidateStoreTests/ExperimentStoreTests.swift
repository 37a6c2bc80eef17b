import XCTest
import Foundation
import CandidateStore
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
    }

    func testLifecycleOneRunningAtATimeAndServingGenerationsAreNotPruned() throws {
        let store = try SQLiteFeedStore(path: dir + "/store.sqlite")
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
        XCTAssertThrowsError(try store.startExperiment("exp2")) { XCTAssertEqual($0 as? ExperimentError, .anotherRunning("exp1")) }
        // The control's generation is old, but an experiment serves from it: pruning keeps it.
        let removed = try store.prune(keep: 1)
        XCTAssertEqual(Set(removed), [gens[1], gens[2]])
        XCTAssertNotNil(try store.candidates(generation: gens[0], user: "u"))
        try store.stopExperiment("exp1", at: 2_000)
        XCTAssertNil(try store.runningExperiment())
        XCTAssertEqual(try store.experiment(named: "exp1")?.stoppedAt, 2_000)
        XCTAssertThrowsError(try store.startExperiment("exp1"))  // stopped stays stopped
        try store.startExperiment("exp2")
        XCTAssertEqual(try store.experiments().map(\.name), ["exp1", "exp2"])
        XCTAssertEqual(Experiment.parseAnnotation(e.annotation(for: "u7"))?.experiment, "exp1")
        XCTAssertEqual(Experiment.parseAnnotation(e.annotation(for: "u7"))?.variant, e.variant(for: "u7").name)
        XCTAssertNil(Experiment.parseAnnotation(""))
    }
}
