import Interactions

/// The baseline every report shows: items ranked by how many users interacted with them.
public final class PopularityModel: Ranker, @unchecked Sendable {
    public let kind = "popularity"
    public let userCount: Int
    /// One score per item: the number of distinct users who interacted with it.
    public let itemScores: [Float]

    public init(userCount: Int, itemScores: [Float]) {
        self.userCount = userCount
        self.itemScores = itemScores
    }

    /// Counts distinct users per item in a user x item matrix.
    public convenience init(fit userItems: CSR) {
        var counts = [Float](repeating: 0, count: userItems.cols)
        for c in userItems.indices { counts[Int(c)] += 1 }
        self.init(userCount: userItems.rows, itemScores: counts)
    }

    public var itemCount: Int { itemScores.count }

    public func score(users: Range<Int>, items: Range<Int>, into scores: UnsafeMutablePointer<Float>, ld: Int) {
        itemScores.withUnsafeBufferPointer { s in
            for (row, _) in users.enumerated() {
                (scores + row * ld).update(from: s.baseAddress! + items.lowerBound, count: items.count)
            }
        }
    }
}
