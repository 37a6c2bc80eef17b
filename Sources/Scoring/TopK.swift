/// Top-K selection over one row of scores: a bounded min-heap fed by a SIMD threshold scan
/// (after the heap fills, most 16-wide chunks hold nothing above the current K-th score).
/// Order: higher score first, ties broken by lower item index; -inf marks an excluded item.
public struct TopK {
    public let k: Int
    var heapScores: [Float]
    var heapItems: [Int32]
    public private(set) var count = 0

    public init(k: Int) {
        self.k = k
        heapScores = [Float](repeating: 0, count: max(k, 1))
        heapItems = [Int32](repeating: 0, count: max(k, 1))
    }

    /// a is worse than b.
    @inline(__always)
    static func worse(_ sa: Float, _ ia: Int32, _ sb: Float, _ ib: Int32) -> Bool {
        sa < sb || (sa == sb && ia > ib)
    }

    @inline(__always)
    mutating func push(_ s: Float, _ item: Int32) {
        heapScores.withUnsafeMutableBufferPointer { hs in
            heapItems.withUnsafeMutableBufferPointer { hi in
                if count < k {
                    var i = count
                    count += 1
                    while i > 0 {
                        let parent = (i - 1) / 2
                        if TopK.worse(s, item, hs[parent], hi[parent]) {
                            hs[i] = hs[parent]; hi[i] = hi[parent]; i = parent
                        } else { break }
                    }
                    hs[i] = s; hi[i] = item
                    return
                }
                // Replace the root (the worst kept) and sift down.
                var i = 0
                while true {
                    let l = 2 * i + 1
                    if l >= k { break }
                    var c = l
                    if l + 1 < k && TopK.worse(hs[l + 1], hi[l + 1], hs[l], hi[l]) { c = l + 1 }
                    if TopK.worse(hs[c], hi[c], s, item) {
                        hs[i] = hs[c]; hi[i] = hi[c]; i = c
                    } else { break }
                }
                hs[i] = s; hi[i] = item
            }
        }
    }

    /// Selects the best `k` of `scores[0..<n]` (skipping -inf and NaN); item ids are
    /// `offset + index`. Results are written to `items`/`outScores` in rank order.
    public mutating func select(_ scores: UnsafePointer<Float>, _ n: Int, offset: Int32 = 0,
                                items: UnsafeMutablePointer<Int32>, outScores: UnsafeMutablePointer<Float>) -> Int {
        reset()
        feed(scores, n, offset: offset)
        return finish(items: items, outScores: outScores)
    }

    public mutating func reset() { count = 0 }

    /// Offers `scores[0..<n]` as items `offset + index`; call with item blocks in ascending
    /// order so equal scores keep the lower item id.
    public mutating func feed(_ scores: UnsafePointer<Float>, _ n: Int, offset: Int32) {
        guard k > 0 else { return }
        var i = 0
        while i < n && count < k {
            let s = scores[i]
            if s > -Float.infinity { push(s, offset + Int32(i)) }
            i += 1
        }
        guard count == k else { return }
        var threshold = heapScores[0]
        // Unaligned 16-wide scan; strict > keeps the lower index on ties (scan order is ascending).
        while i + 16 <= n {
            let v = UnsafeRawPointer(scores + i).loadUnaligned(as: SIMD16<Float>.self)
            if any(v .> SIMD16<Float>(repeating: threshold)) {
                for j in i..<(i + 16) where scores[j] > threshold {
                    push(scores[j], offset + Int32(j))
                    threshold = heapScores[0]
                }
            }
            i += 16
        }
        while i < n {
            if scores[i] > threshold { push(scores[i], offset + Int32(i)); threshold = heapScores[0] }
            i += 1
        }
    }

    /// Writes the kept items in rank order; returns how many.
    public func finish(items: UnsafeMutablePointer<Int32>, outScores: UnsafeMutablePointer<Float>) -> Int {
        var order = Array(0..<count)
        order.sort { TopK.worse(heapScores[$1], heapItems[$1], heapScores[$0], heapItems[$0]) }
        for (r, h) in order.enumerated() { items[r] = heapItems[h]; outScores[r] = heapScores[h] }
        return count
    }
}
