/// Deterministic per-user train/test splitters.
public struct Splitter: Sendable {
    public enum Strategy: Sendable, Equatable {
        /// Each user's chronologically last `fraction` (floor of n x fraction) goes to test.
        case chronological(fraction: Double)
        /// A seeded random `fraction` of each user's interactions goes to test.
        case random(fraction: Double, seed: UInt64)
        /// `k` interactions per user go to test: the latest when times exist, else a seeded
        /// random k. Users with k or fewer interactions stay wholly in train.
        case leaveKOut(k: Int, seed: UInt64)
        /// A seeded random `fraction` of the items goes to test with all their interactions
        /// (cold-item evaluation: no test item occurs in train).
        case coldItems(fraction: Double, seed: UInt64)
    }

    public var strategy: Strategy
    /// Test items that never occur in train are dropped (they cannot be recommended).
    public var dropColdTestItems = true

    public init(_ strategy: Strategy, dropColdTestItems: Bool = true) {
        self.strategy = strategy
        self.dropColdTestItems = dropColdTestItems
    }

    public struct Result: Sendable {
        public var train: Interactions
        public var test: Interactions
        public var droppedColdTestRows: Int
    }

    public enum SplitError: Error, CustomStringConvertible {
        case needsTimestamps
        case badParameter(String)
        public var description: String {
            switch self {
            case .needsTimestamps: return "the chronological split needs a time column, and this data has none"
            case .badParameter(let s): return s
            }
        }
    }

    public func split(_ data: Interactions) throws -> Result {
        switch strategy {
        case .chronological(let f), .random(let f, _), .coldItems(let f, _):
            guard f >= 0 && f < 1 else { throw SplitError.badParameter("fraction must be in [0, 1), got \(f)") }
        case .leaveKOut(let k, _):
            guard k >= 1 else { throw SplitError.badParameter("k must be at least 1, got \(k)") }
        }
        if case .chronological = strategy, data.timestamps == nil { throw SplitError.needsTimestamps }
        if case .coldItems(let f, let seed) = strategy {
            var g = SeededGenerator(seed: seed)
            let order = Array(0..<data.items.count).shuffled(using: &g)
            var held = [Bool](repeating: false, count: data.items.count)
            for i in order.prefix(Int(Double(data.items.count) * f + 1e-9)) { held[i] = true }
            var trainRows: [Int] = [], testRows: [Int] = []
            for r in 0..<data.count { if held[Int(data.itemIndex[r])] { testRows.append(r) } else { trainRows.append(r) } }
            return Result(train: data.subset(trainRows), test: data.subset(testRows), droppedColdTestRows: 0)
        }

        // Group row numbers by user, keeping file order inside each user.
        let nu = data.users.count
        var start = [Int](repeating: 0, count: nu + 1)
        for u in data.userIndex { start[Int(u) + 1] += 1 }
        for u in 0..<nu { start[u + 1] += start[u] }
        var fill = start
        var rows = [Int](repeating: 0, count: data.count)
        for (r, u) in data.userIndex.enumerated() { rows[fill[Int(u)]] = r; fill[Int(u)] += 1 }

        var isTest = [Bool](repeating: false, count: data.count)
        for u in 0..<nu {
            var mine = Array(rows[start[u]..<start[u + 1]])
            let n = mine.count
            guard n > 0 else { continue }
            let nTest: Int
            switch strategy {
            case .chronological(let f):
                nTest = Int(Double(n) * f + 1e-9)
                let t = data.timestamps!
                mine.sort { (t[$0], $0) < (t[$1], $1) }
            case .random(let f, let seed):
                nTest = Int(Double(n) * f + 1e-9)
                var g = SeededGenerator(seed: seed, stream: UInt64(u))
                mine.shuffle(using: &g)
            case .coldItems:
                nTest = 0
            case .leaveKOut(let k, let seed):
                nTest = n > k ? k : 0
                if let t = data.timestamps {
                    mine.sort { (t[$0], $0) < (t[$1], $1) }
                } else {
                    var g = SeededGenerator(seed: seed, stream: UInt64(u))
                    mine.shuffle(using: &g)
                }
            }
            if nTest == 0 { continue }
            // Chronological orders put the latest last; random orders are already shuffled.
            for r in mine[(n - nTest)...] { isTest[r] = true }
        }
        var trainRows: [Int] = [], testRows: [Int] = []
        trainRows.reserveCapacity(data.count)
        for r in 0..<data.count { if isTest[r] { testRows.append(r) } else { trainRows.append(r) } }
        var dropped = 0
        if dropColdTestItems {
            var inTrain = [Bool](repeating: false, count: data.items.count)
            for r in trainRows { inTrain[Int(data.itemIndex[r])] = true }
            let before = testRows.count
            testRows.removeAll { !inTrain[Int(data.itemIndex[$0])] }
            dropped = before - testRows.count
        }
        return Result(train: data.subset(trainRows), test: data.subset(testRows), droppedColdTestRows: dropped)
    }
}
