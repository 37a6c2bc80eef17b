import Foundation
import Interactions
import Rankers
import Scoring
import LinearAlgebra

/// Evaluates a ranker on held-out interactions: every test user gets a top-K list over the
/// whole catalog with their training items excluded, then `Metrics.atK`.
///
/// Test users unknown to the model count with an empty list (they pull the averages down, as
/// in the referee); test items outside the model's catalog are dropped and counted.
public struct Evaluator: Sendable {
    public var k: Int
    public var threads: Int

    public init(k: Int = 10, threads: Int = 0) {
        self.k = k
        self.threads = threads
    }

    public struct Report: Sendable {
        public var summary: MetricSummary
        public var perUser: PerUserMetrics
        /// Each test user's top-K (raw item ids), in the order of `perUser.users`; empty for
        /// users unknown to the model.
        public var lists: [[String]]
        public var unknownUsers: Int
        public var droppedTestItems: Int
        public var seconds: Double
    }

    public func evaluate(_ ranker: Ranker, users: IdMap, items: IdMap, seen: CSR?, test: Interactions) -> Report {
        let t0 = Date()
        // Group the test rows by raw user, in first-seen order of the test file.
        var truthByUser: [[Int32]] = Array(repeating: [], count: test.users.count)
        var dropped = 0
        let itemMap = test.items.raw.map { items.index(of: $0) }
        for r in 0..<test.count {
            guard let i = itemMap[Int(test.itemIndex[r])] else { dropped += 1; continue }
            truthByUser[Int(test.userIndex[r])].append(i)
        }
        var known: [Int32] = [], knownRows: [Int] = []
        var names: [String] = [], truth: [Set<Int32>] = []
        for tu in 0..<test.users.count where !truthByUser[tu].isEmpty {
            let name = test.users.raw[tu]
            if let u = users.index(of: name) { known.append(u); knownRows.append(names.count) }
            names.append(name)
            truth.append(Set(truthByUser[tu]))
        }
        let recs = BatchScorer(top: k, threads: threads).recommend(ranker, users: known, exclude: seen)
        var lists = [ArraySlice<Int32>](repeating: [], count: names.count)
        for (row, target) in knownRows.enumerated() { lists[target] = recs.list(row) }
        let (summary, per) = Metrics.atK(k, lists: lists, truth: truth, catalogSize: ranker.itemCount, userNames: names)
        let raw = lists.map { $0.map { items.raw[Int($0)] } }
        return Report(summary: summary, perUser: per, lists: raw, unknownUsers: names.count - known.count,
                      droppedTestItems: dropped, seconds: Date().timeIntervalSince(t0))
    }
}
