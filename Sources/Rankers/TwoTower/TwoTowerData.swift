import Foundation
import LinearAlgebra
import Interactions

// Data preparation: the training pairs and histories from interactions, and the flat lists the
// batch loops read them from.

/// What the two-tower model trains on: positives over dense user/item indices, each user's
/// items (oldest first when times are known) and the items' content-feature buckets.
public struct TwoTowerData: Sendable {
    public var users: Int
    public var items: Int
    /// Training pairs.
    public var pairUser: [Int32]
    public var pairItem: [Int32]
    /// Per user, the items it may draw history from (oldest first).
    public var userItems: [[Int32]]
    /// Per item, its feature buckets.
    public var itemFeatures: [[Int32]]

    public init(users: Int, items: Int, pairUser: [Int32], pairItem: [Int32], userItems: [[Int32]], itemFeatures: [[Int32]]) {
        self.users = users
        self.items = items
        self.pairUser = pairUser
        self.pairItem = pairItem
        self.userItems = userItems
        self.itemFeatures = itemFeatures
    }

    /// From interactions (duplicate pairs kept once; the newest time orders a user's items).
    public init(_ d: Interactions, features: ItemFeatures?) {
        users = d.users.count
        items = d.items.count
        var perUser = [[(item: Int32, time: Int64)]](repeating: [], count: users)
        var seen = Set<Int64>()
        for r in 0..<d.count {
            let u = d.userIndex[r], i = d.itemIndex[r]
            guard d.weights[r] > 0, seen.insert(Int64(u) << 32 | Int64(i)).inserted else { continue }
            perUser[Int(u)].append((i, d.timestamps?[r] ?? Int64(r)))
        }
        userItems = perUser.map { $0.sorted { $0.time != $1.time ? $0.time < $1.time : $0.item < $1.item }.map(\.item) }
        pairUser = []
        pairItem = []
        for (u, list) in userItems.enumerated() {
            for i in list { pairUser.append(Int32(u)); pairItem.append(i) }
        }
        itemFeatures = features?.lists(for: d.items.raw) ?? [[Int32]](repeating: [], count: items)
    }

    public var count: Int { pairUser.count }
}

/// Lists of Int32 in one allocation, read without per-list reference counting in hot loops.
final class FlatLists {
    private let start: UnsafeMutablePointer<Int>
    private let values: UnsafeMutablePointer<Int32>
    let count: Int
    let total: Int
    let maxLength: Int

    init(_ lists: [[Int32]]) {
        count = lists.count
        total = lists.reduce(0) { $0 + $1.count }
        maxLength = lists.map(\.count).max() ?? 0
        start = .allocate(capacity: count + 1)
        values = .allocate(capacity: max(1, total))
        var p = 0
        for (i, l) in lists.enumerated() {
            start[i] = p
            for v in l { values[p] = v; p += 1 }
        }
        start[count] = p
    }

    deinit { start.deallocate(); values.deallocate() }

    @inline(__always) func list(_ i: Int) -> UnsafeBufferPointer<Int32> {
        UnsafeBufferPointer(start: values + start[i], count: start[i + 1] - start[i])
    }

    /// Requests the first lines of list i (a user's items, read a few rows later).
    @inline(__always) func prefetch(_ i: Int) {
        let s = start[i]
        VectorOps.prefetch(values + s)
        VectorOps.prefetch(values + s + 16)
    }

    /// Requests where list i starts (a few rows before `prefetch(i)`).
    @inline(__always) func prefetchStart(_ i: Int) { VectorOps.prefetch(start + i) }
}
