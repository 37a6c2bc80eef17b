import Foundation

/// The raw SGEMM rate of the loaded OpenBLAS on a scoring-shaped problem: each thread repeatedly
/// multiplies its own (m x k) block by a shared (k x n) item matrix, OpenBLAS single-threaded
/// inside each thread (as `BatchScorer` runs it). The yardstick benchmarks quote foryou against.
public enum BLASBenchmark {
    /// GFLOP/s over `seconds` of wall time, all threads together.
    public static func sgemm(m: Int, n: Int, k: Int, threads: Int, seconds: Double = 2) -> Double {
        let previous = BLASRuntime.threads
        BLASRuntime.setThreads(1)
        defer { BLASRuntime.setThreads(previous) }
        var state: UInt64 = 7
        func fill(_ x: Matrix) {
            for i in 0..<x.count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                x.storage[i] = Float(state >> 40) / Float(1 << 24)
            }
        }
        let items = Matrix(rows: n, cols: k)
        fill(items)
        let users = (0..<threads).map { _ in Matrix(rows: m, cols: k) }
        users.forEach(fill)
        let outs = (0..<threads).map { _ in Matrix(rows: m, cols: n) }
        let calls = Counter()
        let t0 = Date()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var done = 0
            repeat {
                BLAS.gemm(m: m, n: n, k: k, a: users[t].storage, lda: k, b: items.storage, ldb: k, transB: true,
                          c: outs[t].storage, ldc: n)
                done += 1
            } while Date().timeIntervalSince(t0) < seconds
            calls.add(done)
        }
        let elapsed = Date().timeIntervalSince(t0)
        return 2.0 * Double(m) * Double(n) * Double(k) * Double(calls.value) / elapsed / 1e9
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var value = 0
        func add(_ n: Int) { lock.lock(); value += n; lock.unlock() }
    }
}
