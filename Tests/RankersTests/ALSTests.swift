import XCTest
import LinearAlgebra
import Interactions
import Rankers
import TestSupport

final class ALSTests: XCTestCase {
    let k = 6
    let reg: Float = 0.1

    func problem(seed: UInt64 = 11) -> (CSR, Matrix, Matrix) {
        let c = Fixtures.randomConfidence(users: 12, items: 15, density: 0.3, seed: seed)
        return (c, Fixtures.randomMatrix(rows: 12, cols: k, seed: seed + 1, scale: 0.1),
                Fixtures.randomMatrix(rows: 15, cols: k, seed: seed + 2, scale: 0.1))
    }

    func assertClose(_ a: Matrix, _ b: Matrix, _ tol: Float, file: StaticString = #filePath, line: UInt = #line) {
        var worst: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a.storage[i] - b.storage[i])) }
        XCTAssertLessThan(worst, tol, "max abs difference \(worst)", file: file, line: line)
    }

    func testExactSolverMatchesDenseReference() throws {
        let (c, x, y) = problem()
        let ref = x.copy()
        ALSReference.solveHalf(x: ref, y: y, c: c, regularization: reg)
        try ALSModel.solveHalf(x: x, y: y, c: c, regularization: reg, solver: .exact, cgSteps: 0, threads: 2)
        assertClose(x, ref, 1e-4)
        // And the item side, from the transposed matrix.
        let refY = y.copy()
        ALSReference.solveHalf(x: refY, y: x, c: c.transposed(), regularization: reg)
        try ALSModel.solveHalf(x: y, y: x, c: c.transposed(), regularization: reg, solver: .exact, cgSteps: 0)
        assertClose(y, refY, 1e-4)
    }

    func testExactSolverHandlesNegativeEvidence() throws {
        // Confidences below 1 (e.g. skips) enter as negative rank-1 updates.
        let base = Fixtures.randomConfidence(users: 8, items: 10, density: 0.4, seed: 3)
        let c = CSR(rows: base.rows, cols: base.cols, indptr: base.indptr, indices: base.indices,
                    values: base.values.enumerated().map { $0.offset % 3 == 0 ? 0.5 : $0.element })
        let x = Fixtures.randomMatrix(rows: 8, cols: k, seed: 4, scale: 0.1)
        let y = Fixtures.randomMatrix(rows: 10, cols: k, seed: 5, scale: 0.5)
        let ref = x.copy()
        ALSReference.solveHalf(x: ref, y: y, c: c, regularization: reg)
        try ALSModel.solveHalf(x: x, y: y, c: c, regularization: reg, solver: .exact, cgSteps: 0)
        assertClose(x, ref, 1e-4)
    }

    /// Values stored as -c are explicit negatives: preference 0 with confidence c.
    func negativeProblem() -> (CSR, Matrix, Matrix) {
        let base = Fixtures.randomConfidence(users: 9, items: 11, density: 0.45, seed: 13)
        let c = CSR(rows: base.rows, cols: base.cols, indptr: base.indptr, indices: base.indices,
                    values: base.values.enumerated().map { $0.offset % 3 == 1 ? -(1 + 2 * $0.element) : $0.element })
        XCTAssertTrue(c.values.contains { $0 < 0 } && c.values.contains { $0 > 0 })
        return (c, Fixtures.randomMatrix(rows: 9, cols: k, seed: 14, scale: 0.1),
                Fixtures.randomMatrix(rows: 11, cols: k, seed: 15, scale: 0.5))
    }

    func testExplicitNegativesMatchDenseReferenceInEverySolver() throws {
        let (c, x0, y) = negativeProblem()
        let ref = x0.copy()
        ALSReference.solveHalf(x: ref, y: y, c: c, regularization: reg)
        let exact = x0.copy()
        try ALSModel.solveHalf(x: exact, y: y, c: c, regularization: reg, solver: .exact, cgSteps: 0)
        assertClose(exact, ref, 1e-4)
        let cg = x0.copy()
        try ALSModel.solveHalf(x: cg, y: y, c: c, regularization: reg, solver: .cg, cgSteps: 3 * k)
        assertClose(cg, ref, 1e-3)
    }

    func testLossWithExplicitNegativesMatchesReference() throws {
        let (c, _, _) = negativeProblem()
        var cfg = ALSConfig(factors: 4, regularization: 0.05, iterations: 5, solver: .exact, threads: 1)
        cfg.computeLoss = true
        let (m, _) = try ALSModel.fit(c, config: cfg)
        for (a, b) in zip(m.losses, m.losses.dropFirst()) { XCTAssertLessThanOrEqual(b, a + 1e-7) }
        let ref = ALSReference.loss(x: m.userFactors, y: m.itemFactors, c: c, regularization: 0.05)
        XCTAssertEqual(m.losses.last!, ref, accuracy: 1e-5 * max(1, ref))
    }

    func testConjugateGradientConvergesToExact() throws {
        let (c, x, y) = problem(seed: 21)
        let exact = x.copy()
        try ALSModel.solveHalf(x: exact, y: y, c: c, regularization: reg, solver: .exact, cgSteps: 0)
        try ALSModel.solveHalf(x: x, y: y, c: c, regularization: reg, solver: .cg, cgSteps: 3 * k, threads: 2)
        assertClose(x, exact, 1e-3)
    }

    func testExactSolverLossNeverIncreasesAndMatchesReferenceLoss() throws {
        let c = Fixtures.randomConfidence(users: 30, items: 25, density: 0.2, seed: 8)
        var cfg = ALSConfig(factors: 5, regularization: 0.05, iterations: 8, solver: .exact, threads: 2)
        cfg.computeLoss = true
        let (m, outcome) = try ALSModel.fit(c, config: cfg)
        XCTAssertEqual(outcome, .completed)
        XCTAssertEqual(m.losses.count, 8)
        for (a, b) in zip(m.losses, m.losses.dropFirst()) { XCTAssertLessThanOrEqual(b, a + 1e-7) }
        let ref = ALSReference.loss(x: m.userFactors, y: m.itemFactors, c: c, regularization: 0.05)
        XCTAssertEqual(m.losses.last!, ref, accuracy: 1e-5 * max(1, ref))
    }

    func testCGTrainingLowersLossAndIsSeeded() throws {
        let c = Fixtures.randomConfidence(users: 40, items: 30, density: 0.15, seed: 9)
        let cfg = ALSConfig(factors: 8, regularization: 0.05, iterations: 6, solver: .cg, threads: 2, seed: 3)
        let (a, _) = try ALSModel.fit(c, config: cfg)
        let (b, _) = try ALSModel.fit(c, config: cfg)
        XCTAssertLessThan(a.losses.last!, a.losses.first!)
        XCTAssertEqual(a.userFactors.values, b.userFactors.values)
    }

    func testCancellationStopsBeforeTheNextIteration() throws {
        let c = Fixtures.randomConfidence(users: 20, items: 20, density: 0.2, seed: 10)
        let token = CancellationToken()
        var seen = 0
        let m = ALSModel(config: ALSConfig(factors: 4, iterations: 10, threads: 1), users: 20, items: 20)
        let outcome = try m.train(c, cancel: token) { report in
            seen = report.iteration
            if report.iteration == 2 { token.cancel() }
        }
        XCTAssertEqual(outcome, .cancelled(afterIterations: 2))
        XCTAssertEqual(seen, 2)
        XCTAssertEqual(m.completedIterations, 2)
    }

    func testFoldInEqualsExactSolveOfThatRow() throws {
        let (c, x, y) = problem(seed: 31)
        let m = ALSModel(config: ALSConfig(factors: k, regularization: reg), userFactors: x, itemFactors: y)
        let row = 3
        let items = Array(c.columns(ofRow: row)), conf = Array(c.values[c.rowRange(row)])
        let v = try m.foldIn(items: items, confidences: conf)
        let ref = x.copy()
        ALSReference.solveHalf(x: ref, y: y, c: c, regularization: reg)
        for j in 0..<k { XCTAssertEqual(v[j], ref[row, j], accuracy: 1e-4) }
    }

    func testPopularityCountsDistinctUsers() {
        let c = CSR(rows: 3, cols: 3, rowIndex: [0, 0, 1, 2, 2], colIndex: [0, 1, 1, 1, 1], values: [1, 1, 1, 1, 5])
        let p = PopularityModel(fit: c)
        XCTAssertEqual(p.itemScores, [1, 3, 0])
    }

    func testSimilarItemsIsCosineRanking() {
        let y = Matrix(rows: 4, cols: 2, values: [1, 0, 2, 0.1, 0, 1, -1, 0])
        let m = ALSModel(config: ALSConfig(factors: 2), userFactors: Matrix(rows: 1, cols: 2), itemFactors: y)
        let s = m.similarItems(to: 0, count: 3)
        XCTAssertEqual(s.map(\.item), [1, 2, 3])
        XCTAssertEqual(s[0].score, 2 / (4.01 as Float).squareRoot(), accuracy: 1e-6)
        XCTAssertEqual(s[2].score, -1, accuracy: 1e-6)
    }
}
