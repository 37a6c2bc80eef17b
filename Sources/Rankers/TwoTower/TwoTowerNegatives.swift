import Foundation
import LinearAlgebra
import Interactions

// Negative sampling: every batch's other positives are its negatives (in-batch sampled
// softmax), corrected by each item's log expected count in a batch (log-Q), optionally joined
// by items drawn uniformly from the catalog; a column holding a row's own item is masked, not
// counted as a negative.

extension TwoTowerTrainer {
    /// log(expected in-batch count) per item: its share of the training pairs times the batch
    /// size (items never seen count half a pair).
    static func logExpectedCounts(_ data: TwoTowerData, batch: Int) -> [Float] {
        var counts = [Double](repeating: 0, count: data.items)
        for i in data.pairItem { counts[Int(i)] += 1 }
        let total = max(1, Double(data.count))
        return counts.map { Float(Foundation.log(max($0, 0.5) / total * Double(batch))) }
    }

    /// `config.uniformNegatives` items drawn uniformly from the catalog, written to `out` (the
    /// columns after the batch's positives).
    @inline(__always)
    func drawUniformNegatives(into out: UnsafeMutablePointer<Int32>, using g: inout SeededGenerator) {
        for q in 0..<config.uniformNegatives { out[q] = Int32(g.next() % UInt64(data.items)) }
    }

    /// Each column's logit bias into `bias`: the log expected count of an in-batch positive's
    /// item (`b` columns), the log sampling probability of a uniform negative (the rest); zero
    /// without the log-Q correction.
    func logitBiases(b: Int, cols: Int, colItems: UnsafePointer<Int32>, into bias: UnsafeMutablePointer<Float>) {
        let uniformLogQ = Float(Foundation.log(Double(max(1, cols - b)) / Double(max(1, data.items))))
        for c in 0..<cols { bias[c] = !config.logQ ? 0 : c < b ? logQ[Int(colItems[c])] : uniformLogQ }
    }

    /// For each positive row r, the other columns holding the same item (masked: they are not
    /// negatives for r), as a CSR over rows.
    func duplicateMasks(b: Int, cols: Int, colItems: UnsafePointer<Int32>) -> (start: [Int], cols: [Int32]) {
        // Columns chained by item through an open-addressing table: each item's chain lists its
        // columns in order.
        var bits = 4
        while 1 << bits < 2 * cols { bits += 1 }
        let size = 1 << bits
        var slotItem = [Int32](repeating: -1, count: size), head = [Int32](repeating: 0, count: size)
        var tail = [Int32](repeating: 0, count: size), count = [Int32](repeating: 0, count: size)
        var next = [Int32](repeating: -1, count: cols), slotOf = [Int32](repeating: 0, count: cols)
        for c in 0..<cols {
            let item = colItems[c]
            var h = Int((UInt32(bitPattern: item) &* 0x9E37_79B1) >> UInt32(32 - bits))  // the product's high bits
            while slotItem[h] != -1 && slotItem[h] != item { h = (h + 1) & (size - 1) }
            if slotItem[h] == -1 {
                slotItem[h] = item; head[h] = Int32(c)
            } else {
                next[Int(tail[h])] = Int32(c)
            }
            tail[h] = Int32(c)
            count[h] += 1
            slotOf[c] = Int32(h)
        }
        var start = [Int](repeating: 0, count: b + 1)
        for r in 0..<b { start[r + 1] = start[r] + Int(count[Int(slotOf[r])]) - 1 }
        var out = [Int32](repeating: 0, count: start[b])
        for r in 0..<b where start[r + 1] > start[r] {
            var k = start[r]
            var c = head[Int(slotOf[r])]
            while c != -1 {
                if Int(c) != r { out[k] = c; k += 1 }
                c = next[Int(c)]
            }
        }
        return (start, out)
    }
}
