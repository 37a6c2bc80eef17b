import XCTest
import LinearAlgebra
import Checksum
import TestSupport

final class BLASTests: XCTestCase {
    func testGemmMatchesNaiveProduct() {
        let a = Fixtures.randomMatrix(rows: 7, cols: 5, seed: 1)
        let b = Fixtures.randomMatrix(rows: 9, cols: 5, seed: 2)
        let c = Matrix(rows: 7, cols: 9)
        BLAS.gemm(m: 7, n: 9, k: 5, a: a.storage, lda: 5, b: b.storage, ldb: 5, transB: true, c: c.storage, ldc: 9)
        for i in 0..<7 {
            for j in 0..<9 {
                var s: Float = 0
                for p in 0..<5 { s += a[i, p] * b[j, p] }
                XCTAssertEqual(c[i, j], s, accuracy: 1e-5)
            }
        }
    }

    func testPosvSolvesSPDSystem() {
        // A = M^T M + I is SPD; check A x = b.
        let m = Fixtures.randomMatrix(rows: 6, cols: 4, seed: 3)
        var a = [Float](repeating: 0, count: 16)
        BLAS.syrkTransposed(n: 4, k: 6, a: m.storage, lda: 4, beta: 0, c: &a, ldc: 4)
        for i in 0..<4 { a[i * 4 + i] += 1; for j in 0..<i { a[i * 4 + j] = a[j * 4 + i] } }
        let full = a
        var b: [Float] = [1, -2, 3, 0.5]
        let rhs = b
        XCTAssertEqual(BLAS.posv(n: 4, a: &a, b: &b), 0)
        for i in 0..<4 {
            var s: Float = 0
            for j in 0..<4 { s += full[i * 4 + j] * b[j] }
            XCTAssertEqual(s, rhs[i], accuracy: 1e-4)
        }
    }

    func testPosvReportsNonPositiveDefinite() {
        var a: [Float] = [1, 2, 2, 1]  // eigenvalues 3 and -1
        var b: [Float] = [1, 1]
        XCTAssertNotEqual(BLAS.posv(n: 2, a: &a, b: &b), 0)
    }

    func testKernelSelectionUpgradesWastefulCores() {
        let avx512: Set<String> = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
        XCTAssertEqual(KernelSelection(core: "Prescott", cpuFlags: avx512).recommendedCore, "SkylakeX")
        XCTAssertEqual(KernelSelection(core: "Prescott", cpuFlags: avx512.union(["avx512_bf16"])).recommendedCore, "Cooperlake")
        XCTAssertEqual(KernelSelection(core: "Sandybridge", cpuFlags: ["avx", "avx2", "fma"]).recommendedCore, "Haswell")
        XCTAssertNil(KernelSelection(core: "SkylakeX", cpuFlags: avx512).recommendedCore)
        XCTAssertNil(KernelSelection(core: "Haswell", cpuFlags: ["avx", "avx2", "fma"]).recommendedCore)
        XCTAssertNil(KernelSelection(core: "Prescott", cpuFlags: ["sse2"]).recommendedCore)
        // Unknown names are left alone rather than guessed at.
        XCTAssertNil(KernelSelection(core: "NeoverseN1", cpuFlags: avx512).recommendedCore)
    }

    func testKernelSelfCheckPassesOnLoadedKernels() {
        XCTAssertTrue(KernelSelection.selfCheck())
    }

    func testParallelVisitsEveryIndexOnce() {
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: 1000)
        counts.initialize(repeating: 0)
        defer { counts.deallocate() }
        Parallel.forEachChunk(count: 1000, chunk: 7, threads: 3) { range, _ in
            for i in range { counts[i] += 1 }
        }
        XCTAssertTrue(counts.allSatisfy { $0 == 1 })
    }

    func testCRC32CKnownVector() {
        XCTAssertEqual(CRC32C.checksum("123456789"), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum(""), 0)
        // Slice-by-8 and the byte loop agree on every length.
        let text = String(repeating: "foryou-crc", count: 7)
        var incremental = CRC32C()
        for ch in text.utf8 { withUnsafeBytes(of: ch) { incremental.update($0) } }
        XCTAssertEqual(incremental.finalValue, CRC32C.checksum(text))
    }
}

final class VectorOpsTests: XCTestCase {
    func testSIMDExpMatchesFoundationExp() {
        var worst: Float = 0
        var x = SIMD16<Float>()
        var v: Float = -87
        while v < 88 {
            for l in 0..<16 { x[l] = v + Float(l) * 0.0137 }
            let e = VectorOps.exp(x)
            for l in 0..<16 where x[l] <= 88 {
                let ref = Float(Foundation.exp(Double(x[l])))
                worst = max(worst, abs(e[l] - ref) / ref)
            }
            v += 0.21
        }
        XCTAssertLessThan(worst, 3e-7)
        var dead = SIMD16<Float>(repeating: -.infinity)
        dead[1] = -100
        dead[2] = 0
        let e = VectorOps.exp(dead)
        XCTAssertEqual(e[0], 0); XCTAssertEqual(e[1], 0); XCTAssertEqual(e[2], 1, accuracy: 1e-7)
    }

    func testSoftmaxHelpersMatchScalarCode() {
        let n = 37  // a SIMD body and a scalar tail
        var row = (0..<n).map { Float(sin(Double($0))) * 5 }
        let bias = (0..<n).map { Float($0 % 5) * 0.3 }
        let expected = zip(row, bias).map { $0 - $1 }
        let mx = row.withUnsafeMutableBufferPointer { r in bias.withUnsafeBufferPointer { VectorOps.subtractMax(r.baseAddress!, $0.baseAddress!, n) } }
        XCTAssertEqual(mx, expected.max()!)
        for i in 0..<n { XCTAssertEqual(row[i], expected[i], accuracy: 1e-6) }
        let sum = row.withUnsafeMutableBufferPointer { VectorOps.expShifted($0.baseAddress!, n, shift: mx) }
        let ref = expected.map { Foundation.exp(Double($0 - mx)) }
        XCTAssertEqual(Double(sum), ref.reduce(0, +), accuracy: 1e-5)
        for i in 0..<n { XCTAssertEqual(Double(row[i]), ref[i], accuracy: 1e-6) }
        var y = [Float](repeating: 1, count: n)
        row.withUnsafeBufferPointer { r in y.withUnsafeMutableBufferPointer { VectorOps.axpy(n, 2, r.baseAddress!, $0.baseAddress!) } }
        for i in 0..<n { XCTAssertEqual(y[i], 1 + 2 * row[i], accuracy: 1e-6) }
    }

    func testSumRowsMatchesScalarCode() {
        for n in [4, 16, 64, 83, 128] {  // every path: 64-wide blocks, 16-wide, scalar tail
            let table = (0..<(10 * n)).map { Float(sin(Double($0) * 0.37)) }
            let rows: [Int32] = [3, 7, 3, 0, 9]
            var y = (0..<n).map { Float($0) * 0.01 }
            let before = y
            table.withUnsafeBufferPointer { t in
                rows.withUnsafeBufferPointer { r in
                    y.withUnsafeMutableBufferPointer {
                        VectorOps.sumRows(n, 0.5, table: t.baseAddress!, rows: r.baseAddress!, count: rows.count, into: $0.baseAddress!)
                    }
                }
            }
            for j in 0..<n {
                let ref = before[j] + 0.5 * rows.reduce(Float(0)) { $0 + table[Int($1) * n + j] }
                XCTAssertEqual(y[j], ref, accuracy: 1e-5, "n \(n) column \(j)")
            }
        }
    }
}
