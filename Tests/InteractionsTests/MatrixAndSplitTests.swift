import XCTest
@testable import Interactions
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

    /// Coordinates already in CSR order (empty rows first, between and last) take the path that
    /// keeps their arrays; the same coordinates shuffled take the sorting one; both give the same
    /// matrix. A repeated or descending column within a row is not "in order".
    func testOrderedCoordinatesGiveTheSameMatrixAsShuffledOnes() {
        let rows: [Int32] = [1, 1, 1, 3, 4, 4, 6], cols: [Int32] = [0, 2, 5, 1, 3, 4, 2], vals: [Float] = [1, 2, 3, 4, 5, 6, 7]
        let ordered = CSR(rows: 8, cols: 6, rowIndex: rows, colIndex: cols, values: vals)
        XCTAssertEqual(ordered.indptr, [0, 0, 3, 3, 4, 6, 6, 7, 7])
        XCTAssertEqual(ordered.indices, cols)
        XCTAssertEqual(ordered.values, vals)
        let perm = [4, 0, 6, 2, 5, 1, 3]
        XCTAssertEqual(CSR(rows: 8, cols: 6, rowIndex: perm.map { rows[$0] }, colIndex: perm.map { cols[$0] }, values: perm.map { vals[$0] }),
                       ordered)
        XCTAssertNotNil(CSR.indptrIfOrdered(rows: 8, rowIndex: rows, colIndex: cols))
        XCTAssertNil(CSR.indptrIfOrdered(rows: 8, rowIndex: [1, 1], colIndex: [2, 2]))
        XCTAssertNil(CSR.indptrIfOrdered(rows: 8, rowIndex: [1, 1], colIndex: [2, 1]))
        XCTAssertNil(CSR.indptrIfOrdered(rows: 8, rowIndex: [2, 1], colIndex: [0, 1]))
        XCTAssertNil(CSR.indptrIfOrdered(rows: 2, rowIndex: [2], colIndex: [0]))
        XCTAssertEqual(CSR(rows: 2, cols: 4, rowIndex: [1, 1], colIndex: [2, 2], values: [1, 2]).values, [3])
        XCTAssertEqual(CSR(rows: 3, cols: 1, rowIndex: [], colIndex: [], values: []).indptr, [0, 0, 0, 0])
    }

    /// The confidence matrix of ordered interactions (computed on every core, past 2^20 entries)
    /// and of the same interactions unordered: both the raw matrix with each value transformed.
    func testConfidenceMatrixOfOrderedAndUnorderedInteractions() {
        var g = SeededGenerator(seed: 3)
        var d = Interactions(users: IdMap(raw: (0..<3_000).map { "u\($0)" }), items: IdMap(raw: (0..<2_000).map { "i\($0)" }))
        for u in 0..<3_000 where u % 7 != 3 {
            for i in stride(from: Int.random(in: 0..<5, using: &g), to: 2_000, by: Int.random(in: 2..<8, using: &g)) {
                d.userIndex.append(Int32(u)); d.itemIndex.append(Int32(i)); d.weights.append(Float.random(in: 0.1..<4, using: &g))
            }
        }
        XCTAssertGreaterThan(d.count, 1 << 20)
        let conf = Confidence(scheme: .log, alpha: 3)
        let want = d.matrix().mapValues { conf.apply($0) }
        XCTAssertEqual(d.confidenceMatrix(conf), want)
        let unordered = d.subset(Array((0..<d.count).reversed()))
        XCTAssertEqual(unordered.confidenceMatrix(conf), want)
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
