import XCTest
import CandidateStore

/// The pruning decision on its own, with hand-worked cases (the stores' `prune` runs it on what
/// they read; StoreBehaviourTests checks the deletes on both).
final class GenerationPruningTests: XCTestCase {
    let now: Int64 = 10_000_000_000
    let day = ShardProgress.abandonedAfterMs

    func gen(_ id: Int64, live: Bool = false, createdAt: Int64? = nil, shards: Int? = nil, done: Int? = nil) -> GenerationInfo {
        GenerationInfo(id: id, model: "m", runId: "r\(id)", createdAt: createdAt ?? now - 1000, users: 1, topN: 1, live: live,
                       activatedAt: live ? now : nil, shards: shards, shardsDone: done)
    }

    func experiment(_ status: Experiment.Status, _ generations: Int64...) -> Experiment {
        Experiment(name: "e-\(status.rawValue)", salt: "s", status: status,
                   variants: generations.enumerated().map { Experiment.Variant(name: "v\($0.offset)", generation: $0.element, weight: 1) },
                   createdAt: 0)
    }

    func doomed(_ g: [GenerationInfo], keep: Int, _ e: [Experiment] = []) -> [Int64] {
        GenerationPruning.doomed(g, keep: keep, experiments: e, now: now)
    }

    func testKeepsTheNewestByIdWhateverTheInputOrder() {
        // Ids 1..5, given shuffled; keep 2 keeps 5 and 4, deletes 3, 2, 1 (newest first).
        let g = [3, 1, 5, 2, 4].map { gen(Int64($0)) }
        XCTAssertEqual(doomed(g, keep: 2), [3, 2, 1])
        XCTAssertEqual(doomed(g, keep: 0), [5, 4, 3, 2, 1])
        XCTAssertEqual(doomed(g, keep: -3), [5, 4, 3, 2, 1], "a negative keep counts as 0")
        XCTAssertEqual(doomed(g, keep: 5), [])
        XCTAssertEqual(doomed(g, keep: 9), [])
        XCTAssertEqual(doomed([], keep: 0), [])
    }

    func testNeverTheLiveOne() {
        // 1..4, 2 live, keep 1: 4 kept as newest, 2 kept as live, 3 and 1 go.
        let g = [gen(1), gen(2, live: true), gen(3), gen(4)]
        XCTAssertEqual(doomed(g, keep: 1), [3, 1])
        // The live one does not take a kept slot's place: keep 2 keeps 4 and 3 (and 2, live).
        XCTAssertEqual(doomed(g, keep: 2), [1])
        XCTAssertEqual(doomed(g, keep: 0), [4, 3, 1])
    }

    func testDraftAndRunningExperimentsProtectTheirGenerationsStoppedOnesDoNot() {
        // 1..6, 6 live, keep 1: candidates 5, 4, 3, 2, 1. A draft serves 1 and 4, a running one
        // 2 (and 6), a stopped one 3 and 5: 5 and 3 go.
        let g = (1...5).map { gen(Int64($0)) } + [gen(6, live: true)]
        let e = [experiment(.draft, 1, 4), experiment(.running, 2, 6), experiment(.stopped, 3, 5)]
        XCTAssertEqual(doomed(g, keep: 1, e), [5, 3])
        XCTAssertEqual(doomed(g, keep: 1, [experiment(.stopped, 3, 5)]), [5, 4, 3, 2, 1])
    }

    func testAStoppedExperimentProtectsItsGenerationsForTheRetentionPeriodOnly() {
        // 1..4, 4 live, keep 0; a stopped experiment served 1 and 2.
        let g = (1...3).map { gen(Int64($0)) } + [gen(4, live: true)]
        func stopped(_ at: Int64) -> Experiment {
            Experiment(name: "old", salt: "s", status: .stopped, variants: [.init(name: "a", generation: 1, weight: 1),
                                                                             .init(name: "b", generation: 2, weight: 1)],
                       createdAt: 0, startedAt: 0, stoppedAt: at)
        }
        let r = GenerationPruning.stoppedRetentionMs
        XCTAssertEqual(doomed(g, keep: 0, [stopped(now - 86_400_000)]), [3], "stopped a day ago: 1 and 2 stay")
        XCTAssertEqual(doomed(g, keep: 0, [stopped(now - r + 1)]), [3], "a millisecond inside the retention")
        XCTAssertEqual(doomed(g, keep: 0, [stopped(now - r)]), [3, 2, 1], "exactly the retention: protects nothing")
        XCTAssertEqual(doomed(g, keep: 0, [stopped(now - 8 * 86_400_000)]), [3, 2, 1])
    }

    func testShardedBuildsInProgressStayUntilAbandoned() {
        // keep 0, nothing live:
        //   1 complete sharded (3 of 3)                    -> goes
        //   2 building, started an hour ago (1 of 3)      -> stays
        //   3 building, started exactly a day ago (0 of 2) -> goes (abandoned: created_at > now - day fails)
        //   4 building, started a day and a second ago     -> goes
        //   5 building, started a millisecond short of a day ago -> stays
        //   6 unsharded                                    -> goes
        let g = [gen(1, shards: 3, done: 3),
                 gen(2, createdAt: now - 3_600_000, shards: 3, done: 1),
                 gen(3, createdAt: now - day, shards: 2, done: 0),
                 gen(4, createdAt: now - day - 1000, shards: 2, done: 1),
                 gen(5, createdAt: now - day + 1, shards: 2, done: 1),
                 gen(6)]
        XCTAssertEqual(doomed(g, keep: 0), [6, 4, 3, 1])
        // A kept slot is still counted for a generation in progress: keep 2 keeps 6 and 5.
        XCTAssertEqual(doomed(g, keep: 2), [4, 3, 1])
    }

    func testAllRulesTogether() {
        // 1..8: 8 building (fresh), 7 live, 6 plain, 5 in a running experiment, 4 plain,
        // 3 in a draft, 2 abandoned build, 1 plain. keep 2 keeps 8 and 7 by age; of 6..1, the
        // experiments' 5 and 3 stay: 6, 4, 2, 1 go.
        let g = [gen(1), gen(2, createdAt: now - 2 * day, shards: 4, done: 2), gen(3), gen(4), gen(5), gen(6),
                 gen(7, live: true), gen(8, shards: 2, done: 1)]
        let e = [experiment(.running, 5, 7), experiment(.draft, 3, 7)]
        XCTAssertEqual(doomed(g, keep: 2, e), [6, 4, 2, 1])
        XCTAssertEqual(doomed(g, keep: 1, e), [6, 4, 2, 1], "7 is live anyway")
        XCTAssertEqual(doomed(g, keep: 0, e), [6, 4, 2, 1], "8 is still being built")
    }
}
