import Foundation
import LinearAlgebra
import Interactions
import Rankers

/// Top-N lists for many users: fixed-size lists in flat arrays (slot = -1 when a user has
/// fewer than N candidates left after exclusions).
public struct Recommendations: Sendable {
    public let top: Int
    /// Which users (model indices), in output order.
    public let users: [Int32]
    public var items: [Int32]
    public var scores: [Float]
    public var counts: [Int32]

    public func list(_ row: Int) -> ArraySlice<Int32> { items[(row * top)..<(row * top + Int(counts[row]))] }
    public func scoreList(_ row: Int) -> ArraySlice<Float> { scores[(row * top)..<(row * top + Int(counts[row]))] }
}

/// Full-catalog scoring: user blocks x all items through the ranker's GEMM, exclusions set to
/// -inf, then a top-N selection; blocks are spread over all cores with OpenBLAS single-threaded
/// inside each.
public struct BatchScorer: Sendable {
    public var top: Int
    public var threads: Int
    public var userBlock: Int
    public var itemBlock: Int

    public init(top: Int, threads: Int = 0, userBlock: Int = 256, itemBlock: Int = 0) {
        self.top = top
        self.threads = threads
        self.userBlock = userBlock
        self.itemBlock = itemBlock
    }

    public struct Progress: Sendable {
        public let done: Int
        public let total: Int
        public let elapsed: Double
        public var eta: Double { done == 0 ? 0 : elapsed / Double(done) * Double(total - done) }
    }

    /// Scores `users` (nil = every user of the ranker), excluding each user's items in `exclude`
    /// (a user x item matrix over the same indices, e.g. the training interactions).
    public func recommend(_ ranker: Ranker, users: [Int32]? = nil, exclude: CSR? = nil,
                          cancel: CancellationToken? = nil,
                          progress: ((Progress) -> Void)? = nil) -> Recommendations {
        let userList = users ?? (0..<Int32(ranker.userCount)).map { $0 }
        let nItems = ranker.itemCount
        let n = top
        let nThreads = threads > 0 ? threads : BLASRuntime.availableCores
        let block = max(1, userBlock)
        var items = [Int32](repeating: -1, count: userList.count * n)
        var scores = [Float](repeating: 0, count: userList.count * n)
        var counts = [Int32](repeating: 0, count: userList.count)
        let previousBLASThreads = BLASRuntime.threads
        BLASRuntime.setThreads(1)
        defer { BLASRuntime.setThreads(previousBLASThreads) }
        let buffers = (0..<nThreads).map { _ in Matrix(rows: block, cols: max(nItems, 1)) }
        let start = Date()
        let doneCounter = ProgressCounter()
        // Contiguous runs of user indices score in one GEMM; arbitrary subsets are gathered.
        items.withUnsafeMutableBufferPointer { itemsOut in
            scores.withUnsafeMutableBufferPointer { scoresOut in
                counts.withUnsafeMutableBufferPointer { countsOut in
                    let blocks = (userList.count + block - 1) / block
                    Parallel.forEachChunk(count: blocks, chunk: 1, threads: nThreads) { range, worker in
                        if cancel?.isCancelled == true { return }
                        let buf = buffers[worker]
                        var heap = TopK(k: n)
                        for b in range {
                            let lo = b * block, hi = min(userList.count, lo + block)
                            scoreRows(ranker, userList, lo..<hi, into: buf, nItems: nItems)
                            for row in lo..<hi {
                                let u = Int(userList[row])
                                let scoresRow = buf.row(row - lo)
                                if let ex = exclude, u < ex.rows {
                                    for p in ex.rowRange(u) {
                                        let c = Int(ex.indices[p])
                                        if c < nItems { scoresRow[c] = -.infinity }
                                    }
                                }
                                let got = heap.select(scoresRow, nItems, items: itemsOut.baseAddress! + row * n,
                                                      outScores: scoresOut.baseAddress! + row * n)
                                countsOut[row] = Int32(got)
                            }
                            let done = doneCounter.add(hi - lo)
                            if let progress, worker == 0 {
                                progress(Progress(done: done, total: userList.count, elapsed: Date().timeIntervalSince(start)))
                            }
                        }
                    }
                }
            }
        }
        return Recommendations(top: n, users: userList, items: items, scores: scores, counts: counts)
    }

    private func scoreRows(_ ranker: Ranker, _ users: [Int32], _ rows: Range<Int>, into buf: Matrix, nItems: Int) {
        var runStart = rows.lowerBound
        while runStart < rows.upperBound {
            var runEnd = runStart + 1
            while runEnd < rows.upperBound && users[runEnd] == users[runEnd - 1] + 1 { runEnd += 1 }
            let first = Int(users[runStart])
            ranker.score(users: first..<(first + runEnd - runStart), items: 0..<nItems,
                         into: buf.row(runStart - rows.lowerBound), ld: nItems)
            runStart = runEnd
        }
    }
}

final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add(_ n: Int) -> Int { lock.lock(); value += n; let v = value; lock.unlock(); return v }
}
