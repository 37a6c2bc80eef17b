import Foundation

/// A table of (user, item, weight[, time]) interactions over dense id maps: what importers
/// produce and splitters and `CSR` consume. Duplicated (user, item) pairs are allowed here and
/// summed when a matrix is built.
public struct Interactions: Sendable {
    public var users: IdMap
    public var items: IdMap
    public var userIndex: [Int32]
    public var itemIndex: [Int32]
    public var weights: [Float]
    /// Seconds (or any increasing order key); nil when the source has no time column.
    public var timestamps: [Int64]?

    public init(users: IdMap = IdMap(), items: IdMap = IdMap(), userIndex: [Int32] = [], itemIndex: [Int32] = [],
                weights: [Float] = [], timestamps: [Int64]? = nil) {
        precondition(userIndex.count == itemIndex.count && itemIndex.count == weights.count)
        self.users = users
        self.items = items
        self.userIndex = userIndex
        self.itemIndex = itemIndex
        self.weights = weights
        self.timestamps = timestamps
    }

    public var count: Int { userIndex.count }

    /// The user x item matrix of summed raw weights.
    public func matrix() -> CSR {
        CSR(rows: users.count, cols: items.count, rowIndex: userIndex, colIndex: itemIndex, values: weights)
    }

    /// The user x item matrix of confidences (weights summed per pair first, then transformed).
    /// Interactions already in CSR order (`EventHistory.interactions()`) keep their item array as
    /// the columns, and the confidences are computed on every core straight into a new array.
    public func confidenceMatrix(_ confidence: Confidence) -> CSR {
        let n = weights.count
        guard n == userIndex.count, let indptr = CSR.indptrIfOrdered(rows: users.count, rowIndex: userIndex, colIndex: itemIndex) else {
            var m = CSR(sorting: users.count, cols: items.count, rowIndex: userIndex, colIndex: itemIndex, values: weights)
            m.transformValues { confidence.apply($0) }
            return m
        }
        let values = weights.withUnsafeBufferPointer { w in
            [Float](unsafeUninitializedCapacity: n) { out, made in
                Cores.forEachPart(of: n, minimum: 1 << 19) { _, range in for k in range { out[k] = confidence.apply(w[k]) } }
                made = n
            }
        }
        return CSR(rows: users.count, cols: items.count, indptr: indptr, indices: itemIndex, values: values)
    }

    /// Rows of `self` whose indices are in `keep`, with the same id maps.
    public func subset(_ keep: [Int]) -> Interactions {
        Interactions(users: users, items: items,
                     userIndex: keep.map { userIndex[$0] }, itemIndex: keep.map { itemIndex[$0] },
                     weights: keep.map { weights[$0] }, timestamps: timestamps.map { t in keep.map { t[$0] } })
    }

    /// Re-expresses `self` over another pair of id maps (e.g. test data over a model's maps):
    /// rows whose user or item the maps lack are dropped and counted.
    public func remapped(users target: IdMap, items targetItems: IdMap) -> (Interactions, droppedUsers: Int, droppedItems: Int) {
        var out = Interactions(users: target, items: targetItems)
        var du = 0, di = 0
        let uMap = users.raw.map { target.index(of: $0) }
        let iMap = items.raw.map { targetItems.index(of: $0) }
        var ts: [Int64]? = timestamps == nil ? nil : []
        for r in 0..<count {
            guard let u = uMap[Int(userIndex[r])] else { du += 1; continue }
            guard let i = iMap[Int(itemIndex[r])] else { di += 1; continue }
            out.userIndex.append(u); out.itemIndex.append(i); out.weights.append(weights[r])
            if let t = timestamps { ts!.append(t[r]) }
        }
        out.timestamps = ts
        return (out, du, di)
    }
}

/// How an interaction's weight becomes an ALS confidence: c = 1 + alpha * r(weight).
public struct Confidence: Sendable, Equatable, Codable {
    public enum Scheme: String, Sendable, Codable, CaseIterable {
        /// r = weight
        case linear
        /// r = ln(1 + weight)
        case log
        /// r = 1
        case binary
    }

    public var scheme: Scheme
    public var alpha: Float

    public init(scheme: Scheme = .linear, alpha: Float = 1) {
        self.scheme = scheme
        self.alpha = alpha
    }

    /// A positive weight becomes a positive's confidence; a negative weight (explicit negative
    /// evidence, e.g. a skip) becomes `-c`, which ALS reads as preference 0 with confidence `c`.
    @inline(__always)
    public func apply(_ weight: Float) -> Float {
        weight < 0 ? -positive(-weight) : positive(weight)
    }

    @inline(__always)
    func positive(_ weight: Float) -> Float {
        switch scheme {
        case .linear: return 1 + alpha * weight
        case .log: return 1 + alpha * Float(Foundation.log1p(Double(weight)))
        case .binary: return 1 + alpha
        }
    }
}

import Foundation

/// The parallel loops of this module: `0..<count` cut into one contiguous range per core (up to
/// 8), each at least `minimum` long (fewer parts, down to one run inline, for small counts).
enum Cores {
    static func parts(of count: Int, minimum: Int) -> Int {
        max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8, count / max(1, minimum)))
    }

    /// `body(part, range)` for each part, concurrently.
    static func forEachPart(of count: Int, minimum: Int, _ body: (Int, Range<Int>) -> Void) {
        let parts = parts(of: count, minimum: minimum)
        DispatchQueue.concurrentPerform(iterations: parts) { part in body(part, (count * part / parts)..<(count * (part + 1) / parts)) }
    }
}
