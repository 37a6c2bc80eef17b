import XCTest
import Interactions
import TestSupport

final class MatrixAndSplitTests: XCTestCase {
    func testCSRSumsDuplicatesAndSortsColumns() {
        let c = CSR(rows: 2, cols: 4, rowIndex: [1, 0, 0, 1, 0], colIndex: [2, 3, 1, 2, 3], values: [1, 2, 3, 4, 5])
        XCTAssertEqual(c.indptr, [0, 2, 3])
        XCTAssertEqual(c.indices, [1, 3, 2])
        XCTAssertEqual(c.values, [3, 7, 5])
        XCTAssertTrue(c.contains(row: 0, col: 3))
        XCTAssertFalse(c.contains(row: 0, col: 2))
    }

    func testTransposeRoundTrip() {
        let c = Fixtures.randomConfidence(users: 13, items: 9, density: 0.3, seed: 5)
        let t = c.transposed()
        XCTAssertEqual(t.rows, 9)
        XCTAssertEqual(t.nnz, c.nnz)
        for r in 0..<c.rows { for p in c.rowRange(r) { XCTAssertTrue(t.contains(row: Int(c.indices[p]), col: Int32(r))) } }
        XCTAssertEqual(t.transposed(), c)
    }

    func testConfidenceSchemes() {
        XCTAssertEqual(Confidence(scheme: .linear, alpha: 2).apply(3), 7)
        XCTAssertEqual(Confidence(scheme: .log, alpha: 1).apply(Float(M_E - 1)), 2, accuracy: 1e-6)
        XCTAssertEqual(Confidence(scheme: .binary, alpha: 40).apply(123), 41)
    }

    func data(users: Int, perUser: Int) -> Interactions {
        var d = Interactions()
        for u in 0..<users {
            for k in 0..<(perUser + u) {
                d.userIndex.append(d.users.index(inserting: "u\(u)"))
                d.itemIndex.append(d.items.index(inserting: "i\(k)"))
                d.weights.append(1)
            }
        }
        // Times run backwards within each user so chronological != file order.
        d.timestamps = (0..<d.count).map { Int64(1_000 - $0) }
        return d
    }

    func testChronologicalTakesEachUsersLatestFloorFraction() throws {
        let d = data(users: 4, perUser: 5)  // users have 5, 6, 7, 8 interactions
        let r = try Splitter(.chronological(fraction: 0.2), dropColdTestItems: false).split(d)
        var perUser = [Int](repeating: 0, count: 4)
        for u in r.test.userIndex { perUser[Int(u)] += 1 }
        XCTAssertEqual(perUser, [1, 1, 1, 1])  // floor(n / 5)
        // The latest is the first row of each user (times decrease).
        for row in 0..<r.test.count {
            let u = Int(r.test.userIndex[row])
            let userTimes = (0..<d.count).filter { Int(d.userIndex[$0]) == u }.map { d.timestamps![$0] }
            XCTAssertEqual(r.test.timestamps![row], userTimes.max())
        }
        XCTAssertEqual(r.train.count + r.test.count, d.count)
    }

    func testRandomSplitIsSeededAndDeterministic() throws {
        let d = data(users: 20, perUser: 10)
        let a = try Splitter(.random(fraction: 0.3, seed: 1), dropColdTestItems: false).split(d)
        let b = try Splitter(.random(fraction: 0.3, seed: 1), dropColdTestItems: false).split(d)
        let c = try Splitter(.random(fraction: 0.3, seed: 2), dropColdTestItems: false).split(d)
        XCTAssertEqual(a.test.itemIndex, b.test.itemIndex)
        XCTAssertNotEqual(a.test.itemIndex, c.test.itemIndex)
        XCTAssertEqual(a.test.count, (0..<20).map { (10 + $0) * 3 / 10 }.reduce(0, +))
    }

    func testLeaveKOut() throws {
        var d = data(users: 3, perUser: 2)  // 2, 3, 4 interactions
        let r = try Splitter(.leaveKOut(k: 2, seed: 0)).split(d)
        var perUser = [Int](repeating: 0, count: 3)
        for u in r.test.userIndex { perUser[Int(u)] += 1 }
        XCTAssertEqual(perUser, [0, 2, 2])
        d.timestamps = nil
        XCTAssertEqual(try Splitter(.leaveKOut(k: 1, seed: 0)).split(d).test.count, 3)
        XCTAssertThrowsError(try Splitter(.chronological(fraction: 0.2)).split(d))
    }

    func testColdTestItemsAreDropped() throws {
        var d = Interactions()
        for (u, i, t) in [("a", "x", 1), ("a", "y", 2), ("b", "x", 1), ("b", "x2", 2), ("b", "z", 3)] as [(String, String, Int64)] {
            d.userIndex.append(d.users.index(inserting: u)); d.itemIndex.append(d.items.index(inserting: i))
            d.weights.append(1); d.timestamps = (d.timestamps ?? []) + [t]
        }
        let r = try Splitter(.leaveKOut(k: 1, seed: 0)).split(d)
        // a's latest is y, b's latest is z: neither occurs in train.
        XCTAssertEqual(r.test.count, 0)
        XCTAssertEqual(r.droppedColdTestRows, 2)
    }

    func testSynthIsSeededAndHasPlantedStructure() {
        var c = SynthConfig()
        c.users = 300; c.items = 400; c.interactions = 6_000; c.topics = 4
        let a = Synth.generate(c), b = Synth.generate(c)
        XCTAssertEqual(a.data.itemIndex, b.data.itemIndex)
        c.seed = 7
        XCTAssertNotEqual(Synth.generate(c).data.itemIndex, a.data.itemIndex)
        // Most of a user's items come from the topics they like.
        var inTaste = 0
        for r in 0..<a.data.count where a.userTopicsContains(row: r) { inTaste += 1 }
        XCTAssertGreaterThan(Double(inTaste) / Double(a.data.count), 0.7)
    }
}

extension Synth.World {
    func userTopicsContains(row r: Int) -> Bool {
        userTopics[Int(data.userIndex[r])].contains(itemTopic[Int(data.itemIndex[r])])
    }
}
