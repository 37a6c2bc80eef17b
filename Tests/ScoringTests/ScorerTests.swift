import XCTest
import LinearAlgebra
import Interactions
import Rankers
import Scoring
import TestSupport

final class ScorerTests: XCTestCase {
    /// Brute force: every (score, item) sorted by score desc, item asc, exclusions removed.
    func bruteForce(_ ranker: FactorRanker, user: Int, exclude: CSR?, n: Int) -> [(Int32, Float)] {
        var all: [(Int32, Float)] = []
        for i in 0..<ranker.itemCount {
            if let ex = exclude, ex.contains(row: user, col: Int32(i)) { continue }
            var s: Float = 0
            for f in 0..<ranker.factors { s += ranker.userFactors[user, f] * ranker.itemFactors[i, f] }
            all.append((Int32(i), s))
        }
        all.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        return Array(all.prefix(n))
    }

    func model(users: Int, items: Int, k: Int, seed: UInt64, quantize: Bool = false) -> ALSModel {
        let x = Fixtures.randomMatrix(rows: users, cols: k, seed: seed)
        let y = Fixtures.randomMatrix(rows: items, cols: k, seed: seed + 1)
        if quantize {
            // Small integers make many exact ties.
            for i in 0..<x.count { x.storage[i] = (x.storage[i] * 2).rounded() }
            for i in 0..<y.count { y.storage[i] = (y.storage[i] * 2).rounded() }
        }
        return ALSModel(config: ALSConfig(factors: k), userFactors: x, itemFactors: y)
    }

    func check(_ m: ALSModel, exclude: CSR?, n: Int, users: [Int32]? = nil, block: Int = 7, threads: Int = 2,
               itemBlock: Int = 4096, bufferBytes: Int? = nil) {
        var scorer = BatchScorer(top: n, threads: threads, userBlock: block, itemBlock: itemBlock)
        if let bufferBytes { scorer.scoreBufferBytes = bufferBytes }
        let recs = scorer.recommend(m, users: users, exclude: exclude)
        for (row, u) in recs.users.enumerated() {
            let expected = bruteForce(m, user: Int(u), exclude: exclude, n: n)
            let got = Array(recs.list(row)), scores = Array(recs.scoreList(row))
            XCTAssertEqual(got.count, expected.count, "user \(u)")
            // Same scores in the same order; ids equal up to ties (here ties break by item id, as in brute force).
            for (r, e) in expected.enumerated() where r < got.count {
                XCTAssertEqual(scores[r], e.1, accuracy: 1e-4, "user \(u) rank \(r)")
            }
            XCTAssertEqual(got, expected.map(\.0), "user \(u)")
        }
    }

    func testMatchesBruteForceWithExclusions() {
        let m = model(users: 37, items: 101, k: 8, seed: 1)
        let ex = Fixtures.randomConfidence(users: 37, items: 101, density: 0.1, seed: 2)
        check(m, exclude: ex, n: 10)
        check(m, exclude: nil, n: 25, block: 64, threads: 1)
    }

    /// A user block scored a few rows per GEMM (the score buffer smaller than the block), and
    /// the catalog in item blocks: the same lists as brute force.
    func testScoreBufferSmallerThanTheUserBlock() {
        let m = model(users: 150, items: 101, k: 8, seed: 11)
        let ex = Fixtures.randomConfidence(users: 150, items: 101, density: 0.1, seed: 12)
        // 16 rows of 40 items per GEMM, 64-user blocks; then the whole catalog per GEMM.
        check(m, exclude: ex, n: 10, block: 64, itemBlock: 40, bufferBytes: 16 * 40 * 4)
        check(m, exclude: ex, n: 7, block: 64, itemBlock: 0, bufferBytes: 1)
    }

    func testTiesBreakByLowerItemIndex() {
        let m = model(users: 10, items: 300, k: 3, seed: 4, quantize: true)
        check(m, exclude: nil, n: 40)
    }

    func testUserSubsetsInAnyOrder() {
        let m = model(users: 50, items: 64, k: 5, seed: 6)
        check(m, exclude: nil, n: 5, users: [49, 3, 4, 5, 0, 17])
    }

    func testFewerResultsWhenCatalogRunsOut() {
        let m = model(users: 3, items: 12, k: 4, seed: 8)
        // User 0 has seen 10 of 12 items: only 2 remain, never an error.
        let ex = CSR(rows: 3, cols: 12, rowIndex: [Int32](repeating: 0, count: 10), colIndex: (0..<10).map { Int32($0) },
                     values: [Float](repeating: 1, count: 10))
        let recs = BatchScorer(top: 5, threads: 1).recommend(m, exclude: ex)
        XCTAssertEqual(recs.counts, [2, 5, 5])
        XCTAssertEqual(Set(recs.list(0)), [10, 11])
        check(m, exclude: ex, n: 5)
    }

    func testTopKOverLongRowsUsesTheSIMDPath() {
        var g = SeededGenerator(seed: 12)
        let n = 5_000
        var scores = (0..<n).map { _ in Float(g.unit()) }
        scores[4_321] = -.infinity
        var heap = TopK(k: 50)
        var items = [Int32](repeating: 0, count: 50), out = [Float](repeating: 0, count: 50)
        let got = heap.select(scores, n, items: &items, outScores: &out)
        let expected = scores.enumerated().filter { $0.element > -.infinity }
            .sorted { $0.element != $1.element ? $0.element > $1.element : $0.offset < $1.offset }.prefix(50)
        XCTAssertEqual(got, 50)
        XCTAssertEqual(items, expected.map { Int32($0.offset) })
    }

    func testPopularityRanker() {
        let p = PopularityModel(userCount: 2, itemScores: [3, 9, 1, 9])
        let recs = BatchScorer(top: 3, threads: 1).recommend(p)
        XCTAssertEqual(Array(recs.list(0)), [1, 3, 0])
        XCTAssertEqual(Array(recs.list(1)), [1, 3, 0])
    }
}
