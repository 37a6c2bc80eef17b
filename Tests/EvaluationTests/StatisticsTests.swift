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

    func testReplicateBootstrapByHand() {
        // One replicate per side: exactly the paired bootstrap of the differences (same draws).
        let a = [0.2, 0.5, 0.1, 0.9, 0.4], b = [0.3, 0.4, 0.6, 0.9, 0.8]
        let one = Paired.replicateBootstrap([a], [b], resamples: 3_000, seed: 5)
        let plain = Paired.bootstrap(zip(b, a).map { $0 - $1 }, resamples: 3_000, seed: 5)
        XCTAssertEqual(one.interval.low, plain.low)
        XCTAssertEqual(one.interval.high, plain.high)
        XCTAssertEqual(one.interval.mean, plain.mean, accuracy: 1e-12)
        // One user; A's two replicates score 0 and 0, B's 0 and 1. Drawing B's two replicates
        // with replacement gives means 0 (1/4), 0.5 (1/2), 1 (1/4): interval [0, 1], observed
        // difference 0.5, and a quarter of the resamples at or below zero: p = 2 x 1/4.
        let r = Paired.replicateBootstrap([[0], [0]], [[0], [1]], resamples: 20_000, seed: 11)
        XCTAssertEqual(r.interval.mean, 0.5)
        XCTAssertEqual(r.interval.low, 0)
        XCTAssertEqual(r.interval.high, 1)
        XCTAssertEqual(r.p, 0.5, accuracy: 0.02)
        // Replicates that disagree widen the interval that users alone would give: every user
        // is 0.1 better in B's first replicate and 0.1 worse in its second.
        let users = 200
        let base = (0..<users).map { Double($0 % 10) / 10 }
        let flat = Paired.replicateBootstrap([base], [base.map { $0 + 0.1 }], seed: 2)
        XCTAssertEqual(flat.interval.low, 0.1, accuracy: 1e-9)
        XCTAssertEqual(flat.p, 0)
        let split = Paired.replicateBootstrap([base, base], [base.map { $0 + 0.1 }, base.map { $0 - 0.1 }], seed: 2)
        XCTAssertEqual(split.interval.mean, 0, accuracy: 1e-12)
        XCTAssertEqual(split.interval.low, -0.1, accuracy: 1e-9)
        XCTAssertEqual(split.interval.high, 0.1, accuracy: 1e-9)
        XCTAssertGreaterThan(split.p, 0.5)
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
