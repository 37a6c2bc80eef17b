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
    /// Scores one GEMM fills per thread: as many rows of the user block as fit (at least 16;
    /// a `WholeRowRanker` takes the whole block).
    public var scoreBufferBytes = 2 << 20

    /// A block of `userBlock` users is scored against `itemBlock` items at a time, a few rows'
    /// scores per GEMM (about 2 MiB); each user's top-N heap carries across the item blocks.
    public init(top: Int, threads: Int = 0, userBlock: Int = 512, itemBlock: Int = 4096) {
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
        let iBlock = itemBlock > 0 && !(ranker is WholeRowRanker) ? min(itemBlock, max(nItems, 1)) : max(nItems, 1)
        // The GEMM fills at most `scoreBufferBytes` of scores per thread at a time (rows of the
        // user block in turn): as fast as the whole block at 2 MiB, and a small run's peak
        // memory is not a block's worth of scores (8 MiB) per thread above its data.
        // A whole-row ranker (the second stage) scores its rows in one call each: its sources
        // and booster cost per call, so it keeps the whole block.
        let gemmRows = ranker is WholeRowRanker ? block : min(block, max(16, scoreBufferBytes / (4 * iBlock)))
        let buffers = (0..<nThreads).map { _ in Matrix(rows: gemmRows, cols: iBlock) }
        let start = Date()
        let doneCounter = ProgressCounter()
        items.withUnsafeMutableBufferPointer { itemsOut in
            scores.withUnsafeMutableBufferPointer { scoresOut in
                counts.withUnsafeMutableBufferPointer { countsOut in
                    let blocks = (userList.count + block - 1) / block
                    Parallel.forEachChunk(count: blocks, chunk: 1, threads: nThreads) { range, worker in
                        if cancel?.isCancelled == true { return }
                        let buf = buffers[worker]
                        var heaps = (0..<block).map { _ in TopK(k: n) }
                        var cursor = [Int](repeating: 0, count: block)
                        for b in range {
                            let lo = b * block, hi = min(userList.count, lo + block)
                            for r in 0..<(hi - lo) {
                                heaps[r].reset()
                                let u = Int(userList[lo + r])
                                cursor[r] = exclude.map { u < $0.rows ? $0.indptr[u] : 0 } ?? 0
                            }
                            var i0 = 0
                            while i0 < nItems {
                                let i1 = min(nItems, i0 + iBlock)
                                var s0 = lo
                                while s0 < hi {
                                    let s1 = min(hi, s0 + gemmRows)
                                    scoreRows(ranker, userList, s0..<s1, items: i0..<i1, into: buf, ld: iBlock)
                                    for row in s0..<s1 {
                                        let u = Int(userList[row])
                                        let scoresRow = buf.row(row - s0)
                                        if let ex = exclude, u < ex.rows {
                                            // Seen items are sorted: advance this user's cursor through the block.
                                            var p = cursor[row - lo]
                                            let end = ex.indptr[u + 1]
                                            while p < end {
                                                let c = Int(ex.indices[p])
                                                if c >= i1 { break }
                                                if c >= i0 { scoresRow[c - i0] = -.infinity }
                                                p += 1
                                            }
                                            cursor[row - lo] = p
                                        }
                                        heaps[row - lo].feed(scoresRow, i1 - i0, offset: Int32(i0))
                                    }
                                    s0 = s1
                                }
                                i0 = i1
                            }
                            for row in lo..<hi {
                                countsOut[row] = Int32(heaps[row - lo].finish(items: itemsOut.baseAddress! + row * n,
                                                                              outScores: scoresOut.baseAddress! + row * n))
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

    private func scoreRows(_ ranker: Ranker, _ users: [Int32], _ rows: Range<Int>, items: Range<Int>,
                           into buf: Matrix, ld: Int) {
        // Contiguous runs of user indices score in one GEMM.
        var runStart = rows.lowerBound
        while runStart < rows.upperBound {
            var runEnd = runStart + 1
            while runEnd < rows.upperBound && users[runEnd] == users[runEnd - 1] + 1 { runEnd += 1 }
            let first = Int(users[runStart])
            ranker.score(users: first..<(first + runEnd - runStart), items: items,
                         into: buf.row(runStart - rows.lowerBound), ld: ld)
            runStart = runEnd
        }
    }
}

final class ProgressCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add(_ n: Int) -> Int { lock.lock(); value += n; let v = value; lock.unlock(); return v }
}
