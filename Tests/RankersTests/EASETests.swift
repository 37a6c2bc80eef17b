import XCTest
import LinearAlgebra
import Interactions
import Rankers
import TestSupport

final class EASETests: XCTestCase {
    /// B from the definition in double precision: P = (X'X + lambda I)^-1 by Gauss-Jordan,
    /// B_ij = -P_ij / P_jj, zero diagonal.
    func referenceB(_ x: CSR, lambda: Double) -> [[Double]] {
        let n = x.cols
        var g = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for u in 0..<x.rows {
            let items = x.columns(ofRow: u).map(Int.init)
            for a in items { for b in items { g[a][b] += 1 } }
        }
        for i in 0..<n { g[i][i] += lambda }
        var inv = (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
        for c in 0..<n {
            let p = (c..<n).max { abs(g[$0][c]) < abs(g[$1][c]) }!
            g.swapAt(c, p); inv.swapAt(c, p)
            let d = g[c][c]
            for j in 0..<n { g[c][j] /= d; inv[c][j] /= d }
            for r in 0..<n where r != c {
                let f = g[r][c]
                if f == 0 { continue }
                for j in 0..<n { g[r][j] -= f * g[c][j]; inv[r][j] -= f * inv[c][j] }
            }
        }
        return (0..<n).map { i in (0..<n).map { j in i == j ? 0 : -inv[i][j] / inv[j][j] } }
    }

    func problem(seed: UInt64 = 5) -> CSR {
        Fixtures.randomConfidence(users: 40, items: 25, density: 0.25, seed: seed)
    }

    func testWeightsAndScoresMatchDoublePrecisionDefinitionInBothGramPaths() throws {
        let x = problem()
        let lambda = 3.0
        let ref = referenceB(x.filteredBinary(), lambda: lambda)
        for gram in [EASEConfig.Gram.dense, .sparse] {
            let m = try EASEModel.fit(x, config: EASEConfig(lambda: Float(lambda), threads: 2, gram: gram))
            var worst = 0.0
            for i in 0..<x.cols { for j in 0..<x.cols { worst = max(worst, abs(Double(m.weights[i, j]) - ref[i][j])) } }
            XCTAssertLessThan(worst, 1e-5, "\(gram): max |B - B_ref| \(worst)")
            // Scores X_u B through the ranker contract, against the reference, to 1e-4 relative.
            let s = Matrix(rows: x.rows, cols: x.cols)
            m.score(users: 0..<x.rows, items: 0..<x.cols, into: s.storage, ld: x.cols)
            var scale = 0.0, err = 0.0
            for u in 0..<x.rows {
                for j in 0..<x.cols {
                    let r = x.columns(ofRow: u).reduce(0.0) { $0 + ref[Int($1)][j] }
                    scale = max(scale, abs(r)); err = max(err, abs(r - Double(s[u, j])))
                }
            }
            XCTAssertGreaterThan(scale, 0.01)
            XCTAssertLessThan(err / scale, 1e-4, "\(gram)")
            XCTAssertEqual(m.weights[3, 3], 0)
        }
    }

    func testScoringABlockOfItemsEqualsTheFullRow() throws {
        let x = problem(seed: 9)
        let m = try EASEModel.fit(x, config: EASEConfig(lambda: 2))
        let full = Matrix(rows: 5, cols: x.cols), part = Matrix(rows: 5, cols: 10)
        m.score(users: 10..<15, items: 0..<x.cols, into: full.storage, ld: x.cols)
        m.score(users: 10..<15, items: 7..<17, into: part.storage, ld: 10)
        for r in 0..<5 { for c in 0..<10 { XCTAssertEqual(part[r, c], full[r, 7 + c]) } }
    }

    func testFoldInScoresANewRowWithTheSameWeights() throws {
        let x = problem(seed: 13)
        let m = try EASEModel.fit(x, config: EASEConfig(lambda: 2))
        // A user who interacted with items 2 and 7 only: scores are rows 2 + 7 of B.
        let row = CSR(rows: 1, cols: x.cols, indptr: [0, 2], indices: [2, 7], values: [1, 1])
        let s = [Float](unsafeUninitializedCapacity: x.cols) { b, n in
            m.scoring(users: row).score(users: 0..<1, items: 0..<x.cols, into: b.baseAddress!, ld: x.cols); n = x.cols
        }
        for j in 0..<x.cols { XCTAssertEqual(s[j], m.weights[2, j] + m.weights[7, j], accuracy: 1e-6) }
    }

    func testSimilarItemsAreTheLargestWeightsOfTheRow() throws {
        let m = try EASEModel.fit(problem(seed: 17), config: EASEConfig(lambda: 2))
        let sim = m.similarItems(to: 4, count: 5)
        XCTAssertEqual(sim.count, 5)
        XCTAssertFalse(sim.contains { $0.item == 4 })
        let best = (0..<m.itemCount).filter { $0 != 4 }.max { m.weights[4, $0] < m.weights[4, $1] }!
        XCTAssertEqual(sim[0].item, best)
        XCTAssertTrue(zip(sim, sim.dropFirst()).allSatisfy { $0.score >= $1.score })
    }

    func testRefusesACatalogPastTheMemoryBoundNamingItsSize() {
        let x = problem()
        XCTAssertThrowsError(try EASEModel.fit(x, config: EASEConfig(lambda: 1, maxBytes: 1000))) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("25 items"), text)
            XCTAssertTrue(text.contains("--ease-max-memory"), text)
        }
    }
}
