import XCTest
import Interactions
import Rankers
import Evaluation
import TestSupport

final class MetricsTests: XCTestCase {
    func testHandComputedCase() {
        // User A: list [1, 2, 3], truth {2, 5}: one hit at rank 1 (0-based).
        // User B: list [4, 5] (short), truth {4}: one hit at rank 0.
        let (s, per) = Metrics.atK(3, lists: [[1, 2, 3], [4, 5]], truth: [[2, 5], [4]], catalogSize: 10)
        let ndcgA = (1 / log2(3.0)) / (1 + 1 / log2(3.0))  // 0.3868528...
        XCTAssertEqual(per.precision, [1.0 / 3, 1.0 / 3])
        XCTAssertEqual(per.recall, [0.5, 1])
        XCTAssertEqual(per.ndcg[0], ndcgA, accuracy: 1e-12)
        XCTAssertEqual(per.ndcg[1], 1, accuracy: 1e-12)
        XCTAssertEqual(per.ap, [0.25, 1])  // A: (1/2) / min(3, 2); B: 1 / 1
        XCTAssertEqual(s.precision, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(s.recall, 0.75, accuracy: 1e-12)
        XCTAssertEqual(s.ndcg, (ndcgA + 1) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.map, 0.625, accuracy: 1e-12)
        XCTAssertEqual(s.coverage, 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.testUsers, 2)
    }

    func testAveragePrecisionWithSeveralHits() {
        // Hits at ranks 0 and 2 of 4, |T| = 3: AP = (1/1 + 2/3) / 3.
        let (s, _) = Metrics.atK(4, lists: [[7, 8, 9, 10]], truth: [[7, 9, 99]], catalogSize: 20)
        XCTAssertEqual(s.map, (1 + 2.0 / 3) / 3, accuracy: 1e-12)
        let idcg = 1 + 1 / log2(3.0) + 1 / log2(4.0)
        XCTAssertEqual(s.ndcg, (1 + 1 / log2(4.0)) / idcg, accuracy: 1e-12)
    }

    func testEmptyListsCountAsZero() {
        let (s, _) = Metrics.atK(10, lists: [[], [1]], truth: [[1], [1]], catalogSize: 2)
        XCTAssertEqual(s.precision, 0.05, accuracy: 1e-12)
        XCTAssertEqual(s.ndcg, 0.5, accuracy: 1e-12)
    }

    func testEvaluatorExcludesSeenAndCountsUnknownUsers() {
        var users = IdMap(), items = IdMap()
        for u in ["a", "b"] { _ = users.index(inserting: u) }
        for i in ["x", "y", "z"] { _ = items.index(inserting: i) }
        // Popularity z > y > x; user a has seen z.
        let p = PopularityModel(userCount: 2, itemScores: [1, 2, 3])
        let seen = CSR(rows: 2, cols: 3, rowIndex: [0], colIndex: [2], values: [1])
        var test = Interactions()
        for (u, i) in [("a", "y"), ("b", "x"), ("ghost", "x"), ("a", "nope")] {
            test.userIndex.append(test.users.index(inserting: u)); test.itemIndex.append(test.items.index(inserting: i))
            test.weights.append(1)
        }
        let r = Evaluator(k: 1, threads: 1).evaluate(p, users: users, items: items, seen: seen, test: test)
        XCTAssertEqual(r.unknownUsers, 1)
        XCTAssertEqual(r.droppedTestItems, 1)
        XCTAssertEqual(r.summary.testUsers, 3)
        // a gets y (hit), b gets z (miss), ghost gets nothing.
        XCTAssertEqual(r.summary.precision, 1.0 / 3, accuracy: 1e-12)
    }
}
