import XCTest
import Foundation
import Synchronization
import LinearAlgebra
import Checksum
import TestSupport
import Platform

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

    /// Regions through the spin pool, back to back (helpers still polling) and after a pause
    /// (helpers asleep), nested (refused, so Dispatch runs the inner one) and from two threads
    /// at once (one gets the pool, the other Dispatch): every index exactly once each time,
    /// worker numbers within range.
    func testSpinPoolRegionsVisitEveryIndexOnce() {
        let threads = SpinPool.shared.helpers + 1
        @Sendable func region(_ count: Int, nested: Bool = false) -> Bool {
            let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
            counts.initialize(repeating: 0)
            defer { counts.deallocate() }
            let inner = UnsafeMutableBufferPointer<Int>.allocate(capacity: 64)
            inner.initialize(repeating: 0)
            defer { inner.deallocate() }
            let badWorker = Atomic<Bool>(false)
            Parallel.forEachChunk(count: count, chunk: 3, threads: threads) { range, worker in
                if worker < 0 || worker >= threads { badWorker.store(true, ordering: .relaxed) }
                for i in range { counts[i] += 1 }
                if nested && range.lowerBound == 0 {
                    Parallel.forEachChunk(count: 64, chunk: 5, threads: threads) { r, _ in for i in r { inner[i] += 1 } }
                }
            }
            return counts.allSatisfy { $0 == 1 } && !badWorker.load(ordering: .relaxed) && (!nested || inner.allSatisfy { $0 == 1 })
        }
        for i in 0..<2000 { XCTAssertTrue(region(1 + i % 97), "region \(i)") }
        Thread.sleep(forTimeInterval: 0.01)  // past the polling time: helpers sleep
        XCTAssertTrue(region(500))
        XCTAssertTrue(region(300, nested: true))
        let other = Atomic<Int>(0)
        let t = Thread { for _ in 0..<500 where region(200) { other.add(1, ordering: .relaxed) } }
        t.start()
        var mine = 0
        for _ in 0..<500 where region(200) { mine += 1 }
        while !t.isFinished { Thread.sleep(forTimeInterval: 0.001) }
        XCTAssertEqual(mine, 500)
        XCTAssertEqual(other.load(ordering: .relaxed), 500)
    }

    func testCRC32CKnownVector() {
        XCTAssertEqual(CRC32C.checksum("123456789"), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum(""), 0)
        // Slice-by-8 and the byte loop agree on every length.
        let text = String(repeating: "foryou-crc", count: 7)
        var incremental = CRC32C()
        for ch in text.utf8 { withUnsafeBytes(of: ch) { incremental.update($0) } }
        XCTAssertEqual(incremental.finalValue, CRC32C.checksum(text))
        // The instruction (when this CPU has it) and the tables agree on every length, offset and
        // split of random bytes.
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<4_096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        bytes.withUnsafeBytes { all in
            for n in [0, 1, 7, 8, 9, 63, 64, 65, 1_000, 4_000] {
                for start in [0, 1, 3] where start + n <= all.count {
                    let part = UnsafeRawBufferPointer(rebasing: all[start..<(start + n)])
                    var hw = CRC32C(), sw = CRC32C()
                    hw.update(part)
                    sw.software(part)
                    XCTAssertEqual(hw.finalValue, sw.finalValue, "n \(n) at \(start)")
                    var split = CRC32C()
                    split.update(UnsafeRawBufferPointer(rebasing: part[..<(n / 3)]))
                    split.update(UnsafeRawBufferPointer(rebasing: part[(n / 3)...]))
                    XCTAssertEqual(split.finalValue, sw.finalValue, "n \(n) split")
                }
            }
        }
    }
}

/// Every instruction-set build of the kernels this CPU runs, each against scalar Swift.
final class VectorOpsTests: XCTestCase {
    /// Runs `body` once per kernel build this CPU supports, then restores the chosen one.
    func forEachLevel(_ body: (String) throws -> Void) rethrows {
        let chosen = VectorOps.level
        defer { VectorOps.use(chosen) }
        var ran = 0
        for level in VectorOps.levels where VectorOps.use(level) {
            XCTAssertEqual(VectorOps.level, level)
            try body(level)
            ran += 1
        }
        XCTAssertGreaterThanOrEqual(ran, 1)
        XCTAssertTrue(VectorOps.levels.contains(chosen))
    }

    func testExpMatchesFoundationExp() {
        forEachLevel { level in
            var x: [Float] = []
            var v: Float = -87
            while v < 88 { x.append(v); v += 0.0137 }
            x += [-.infinity, -100, -87.5, 0, .nan]  // a scalar tail as well
            var e = x
            e.withUnsafeMutableBufferPointer { VectorOps.exp($0.baseAddress!, $0.count) }
            var worst: Float = 0
            for (xi, ei) in zip(x, e) where xi >= -87 && xi <= 88 {
                let ref = Float(Foundation.exp(Double(xi)))
                worst = max(worst, abs(ei - ref) / ref)
            }
            XCTAssertLessThan(worst, 3e-7, level)
            XCTAssertEqual(Array(e.suffix(5).prefix(4)), [0, 0, 0, 1], level)
            XCTAssertTrue(e.last!.isNaN, level)
            var body = [Float](repeating: 1, count: 16)
            body[5] = .nan
            body.withUnsafeMutableBufferPointer { VectorOps.exp($0.baseAddress!, 16) }
            XCTAssertTrue(body[5].isNaN, level)
            XCTAssertEqual(body[4], Float(M_E), accuracy: 1e-6, level)
        }
    }

    func testSoftmaxRowMatchesScalarCode() {
        forEachLevel { level in
            for n in [37, 1024] {  // a vector body and a scalar tail; a whole batch row
                let logits = (0..<n).map { Float(sin(Double($0))) * 5 }
                let bias = (0..<n).map { Float($0 % 5) * 0.3 }
                var masked = logits
                masked[3] = -.infinity
                let z = zip(masked, bias).map { Double($0) - Double($1) }
                let mx = z.max()!
                let sum = z.reduce(0) { $0 + Foundation.exp($1 - mx) }
                for gradScale: Float in [0, 0.25] {
                    var row = masked
                    let lse = row.withUnsafeMutableBufferPointer { r in
                        bias.withUnsafeBufferPointer { VectorOps.softmaxRow(r.baseAddress!, bias: $0.baseAddress!, n, gradScale: gradScale) }
                    }
                    XCTAssertEqual(lse, mx + Foundation.log(sum), accuracy: 1e-5, level)
                    for i in 0..<n {
                        let ref = gradScale == 0 ? Foundation.exp(z[i] - mx) : Double(gradScale) * Foundation.exp(z[i] - mx) / sum
                        XCTAssertEqual(Double(row[i]), ref, accuracy: 1e-6 * max(1, ref), "\(level) n \(n) column \(i)")
                    }
                    XCTAssertEqual(row[3], 0, level)
                }
            }
            var y = [Float](repeating: 1, count: 37)
            let x = (0..<37).map { Float($0) * 0.5 }
            x.withUnsafeBufferPointer { r in y.withUnsafeMutableBufferPointer { VectorOps.axpy(37, 2, r.baseAddress!, $0.baseAddress!) } }
            for i in 0..<37 { XCTAssertEqual(y[i], 1 + 2 * x[i], accuracy: 1e-6) }
            y.withUnsafeMutableBufferPointer { VectorOps.scale($0.baseAddress!, 37, 0.5) }
            for i in 0..<37 { XCTAssertEqual(y[i], (1 + 2 * x[i]) * 0.5, accuracy: 1e-6) }
        }
    }

    func testSumRowsMatchesScalarCode() {
        forEachLevel { level in
            for n in [4, 16, 64, 83, 128] {  // every path: 64-wide blocks, 16-wide, scalar tail
                let table = (0..<(10 * n)).map { Float(sin(Double($0) * 0.37)) }
                let rows: [Int32] = [3, 7, 3, 0, 9, 1, 2, 8, 5]  // more rows than the prefetch distance
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
                    XCTAssertEqual(y[j], ref, accuracy: 1e-5, "\(level) n \(n) column \(j)")
                }
            }
        }
    }

    /// AdamW, dense and on scattered rows, against the textbook update in Float64.
    func testAdamMatchesReference() {
        forEachLevel { level in
            let d = 20, tableRows = 6
            let n = d * tableRows
            let p0 = (0..<n).map { Float(sin(Double($0))) }
            let g0 = (0..<n).map { Float(cos(Double($0) * 1.3)) * 0.1 }
            let m0 = (0..<n).map { Float($0 % 7) * 0.01 }
            let v0 = (0..<n).map { Float($0 % 5) * 0.001 }
            let step = VectorOps.AdamStep(lr: 0.01, wd: 0.1, b1: 0.9, b2: 0.999, c1: 1 - 0.9 * 0.9, c2: 1 - 0.999 * 0.999)
            func reference(_ i: Int) -> (p: Double, m: Double, v: Double) {
                let g = Double(g0[i])
                let m = 0.9 * Double(m0[i]) + 0.1 * g, v = 0.999 * Double(v0[i]) + 0.001 * g * g
                let update = (m / Double(step.c1)) / ((v / Double(step.c2)).squareRoot() + 1e-8) + 0.1 * Double(p0[i])
                return (Double(p0[i]) - 0.01 * update, m, v)
            }
            for rowsMode in [false, true] {
                var p = p0, g = g0, m = m0, v = v0
                let rows: [Int32] = [4, 1, 5]
                p.withUnsafeMutableBufferPointer { pp in g.withUnsafeMutableBufferPointer { gp in
                    m.withUnsafeMutableBufferPointer { mp in v.withUnsafeMutableBufferPointer { vp in
                        if rowsMode {
                            rows.withUnsafeBufferPointer {
                                VectorOps.adamRows(pp.baseAddress!, gp.baseAddress!, mp.baseAddress!, vp.baseAddress!, d: d,
                                                   rows: $0.baseAddress!, count: rows.count, step)
                            }
                        } else {
                            VectorOps.adam(pp.baseAddress!, gp.baseAddress!, mp.baseAddress!, vp.baseAddress!, n, step)
                        }
                    } }
                } }
                for i in 0..<n {
                    let updated = !rowsMode || rows.contains(Int32(i / d))
                    let ref = updated ? reference(i) : (p: Double(p0[i]), m: Double(m0[i]), v: Double(v0[i]))
                    XCTAssertEqual(Double(p[i]), ref.p, accuracy: 2e-5, "\(level) \(i)")  // steps are ~lr = 0.01
                    XCTAssertEqual(Double(m[i]), ref.m, accuracy: 1e-7, "\(level) \(i)")
                    XCTAssertEqual(Double(v[i]), ref.v, accuracy: 1e-9, "\(level) \(i)")
                    XCTAssertEqual(g[i], updated ? 0 : g0[i], "\(level) \(i)")
                }
            }
        }
    }

    /// The towers' element-wise passes against scalar Swift, on widths with a vector body and
    /// a scalar tail.
    func testTowerPassesMatchScalarCode() {
        forEachLevel { level in
            let rows = 3, n = 21
            let x = (0..<(rows * n)).map { Float(sin(Double($0) * 0.7)) }
            let y0 = (0..<(rows * n)).map { Float(cos(Double($0) * 0.3)) }
            let bias = (0..<n).map { Float($0 % 4) * 0.2 - 0.3 }
            // h = max(h + bias, 0)
            var h = y0
            h.withUnsafeMutableBufferPointer { VectorOps.biasReLU($0.baseAddress!, bias: bias, rows: rows, n) }
            for i in 0..<(rows * n) { XCTAssertEqual(h[i], max(y0[i] + bias[i % n], 0), accuracy: 1e-7, level) }
            // dH masked where h <= 0, column sums added.
            var dh = x
            var colsum = [Float](repeating: 1, count: n)
            dh.withUnsafeMutableBufferPointer { VectorOps.reluBackward(h: h, $0.baseAddress!, rows: rows, n, colsum: &colsum) }
            for i in 0..<(rows * n) { XCTAssertEqual(dh[i], h[i] > 0 ? x[i] : 0, level) }
            for j in 0..<n {
                XCTAssertEqual(colsum[j], 1 + (0..<rows).reduce(Float(0)) { $0 + dh[$1 * n + j] }, accuracy: 1e-6, level)
            }
            // out = normalize(y + bias + x)
            var out = y0
            var norms = [Float](repeating: 0, count: rows)
            out.withUnsafeMutableBufferPointer { VectorOps.residualNormalize($0.baseAddress!, bias: bias, x: x, rows: rows, n, norms: &norms) }
            for r in 0..<rows {
                let pre = (0..<n).map { Double(y0[r * n + $0]) + Double(bias[$0]) + Double(x[r * n + $0]) }
                let nrm = pre.reduce(0) { $0 + $1 * $1 }.squareRoot()
                XCTAssertEqual(Double(norms[r]), nrm, accuracy: 1e-5, level)
                for j in 0..<n { XCTAssertEqual(Double(out[r * n + j]), pre[j] / nrm, accuracy: 1e-6, level) }
            }
            // Backward through the normalisation.
            var dOut = x
            var db = [Float](repeating: 0, count: n)
            dOut.withUnsafeMutableBufferPointer { VectorOps.normalizeBackward(out: out, $0.baseAddress!, norms: norms, rows: rows, n, colsum: &db) }
            for r in 0..<rows {
                let dp = (0..<n).reduce(0.0) { $0 + Double(out[r * n + $1]) * Double(x[r * n + $1]) }
                for j in 0..<n {
                    let ref = (Double(x[r * n + j]) - Double(out[r * n + j]) * dp) / Double(norms[r])
                    XCTAssertEqual(Double(dOut[r * n + j]), ref, accuracy: 1e-6, level)
                }
            }
            for j in 0..<n { XCTAssertEqual(db[j], (0..<rows).reduce(Float(0)) { $0 + dOut[$1 * n + j] }, accuracy: 1e-6, level) }
        }
    }
}
