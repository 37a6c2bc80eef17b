import XCTest
@testable import Evaluation

/// The comparison statistics against cases worked out by hand.
final class StatisticsTests: XCTestCase {
    func testBootstrapOfTwoUsers() {
        // Resamples of [0, 1]: means 0 (1/4), 0.5 (1/2), 1 (1/4): the 95 % interval is [0, 1].
        let i = Paired.bootstrap([0, 1], resamples: 4_000, seed: 3)
        XCTAssertEqual(i.mean, 0.5)
        XCTAssertEqual(i.low, 0)
        XCTAssertEqual(i.high, 1)
        let c = Paired.bootstrap([0.25, 0.25, 0.25])
        XCTAssertEqual(c.low, 0.25); XCTAssertEqual(c.high, 0.25)
        // Seeded: the same interval again.
        XCTAssertEqual(Paired.bootstrap([0.1, -0.3, 0.7, 0.2], seed: 9), Paired.bootstrap([0.1, -0.3, 0.7, 0.2], seed: 9))
    }

    func testRandomisationExactAndSampled() {
        // [1, 2, 3, 4]: only all-plus and all-minus reach |sum| 10: 2 of 16.
        XCTAssertEqual(Paired.randomisationP([1, 2, 3, 4]), 0.125)
        // [3, -1, 2]: sums +-4 and +-6 reach |4|: 4 of 8.
        XCTAssertEqual(Paired.randomisationP([3, -1, 2]), 0.5)
        XCTAssertEqual(Paired.randomisationP([1, -1]), 1)
        // 20 equal differences: only 2 of 2^20 assignments are as extreme; sampled, p is tiny.
        XCTAssertLessThan(Paired.randomisationP([Double](repeating: 1, count: 20), resamples: 5_000), 0.001)
        // Symmetric noise: nothing to find.
        let noise = (0..<40).map { Double($0 % 2 == 0 ? 1 : -1) * Double($0 % 7) }
        XCTAssertGreaterThan(Paired.randomisationP(noise), 0.3)
    }

    func testListStatistics() {
        XCTAssertEqual(ListStats.overlap([1, 2, 3], [3, 4, 5], k: 3), 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(ListStats.rbo([1, 2, 3], [1, 2, 3]), 1, accuracy: 1e-12)
        XCTAssertEqual(ListStats.rbo([1, 2, 3], [4, 5, 6]), 0, accuracy: 1e-12)
        // d=1: x=1 -> 0.9; d=2: x=1 -> 0.405; d=3: x=3 -> 0.729; 0.729 + (0.1/0.9) * 2.034.
        XCTAssertEqual(ListStats.rbo([1, 2, 3], [1, 3, 2]), 0.729 + 2.034 / 9, accuracy: 1e-9)
        XCTAssertEqual(ListStats.gini([0, 0, 0, 4]), 0.75, accuracy: 1e-12)
        XCTAssertEqual(ListStats.gini([1, 1, 1, 1]), 0, accuracy: 1e-12)
        XCTAssertEqual(ListStats.novelty([[0]], popularity: [1], users: 3), 1, accuracy: 1e-12)  // -log2(2/4)
    }
}
