import Foundation
import Artifacts
import Evaluation

public enum CompareError: Error, CustomStringConvertible, Equatable {
    case noEvaluation(String)
    case differentData(String, String)
    case differentTest(String, String)
    case differentK(Int, Int)
    case differentUsers

    public var description: String {
        switch self {
        case .noEvaluation(let id):
            return "run \(id) has no recorded evaluation; record one with `foryou evaluate --model DIR --test FILE --record`"
        case .differentData(let a, let b):
            return "the runs were trained on different data (fingerprints \(a) and \(b)); a paired comparison needs the same split"
        case .differentTest(let a, let b):
            return "the runs were evaluated on different test sets (fingerprints \(a) and \(b)); evaluate both on the same file"
        case .differentK(let a, let b): return "the runs were evaluated at different cutoffs (K = \(a) and \(b))"
        case .differentUsers: return "the recorded evaluations cover different test users"
        }
    }
}

/// Two runs evaluated on the same held-out set, compared per user: each metric's mean
/// difference (B - A) with a paired bootstrap interval and a paired randomisation p-value, and
/// how the recommended lists differ (overlap, rank-biased overlap, coverage, novelty, Gini).
public struct RunComparison: Sendable {
    public struct MetricDelta: Sendable {
        public var name: String
        public var a: Double, b: Double
        public var interval: Paired.Interval
        public var p: Double
    }

    public struct Side: Sendable {
        public var coverage: Double
        public var novelty: Double
        public var gini: Double
    }

    public var a: RunEntry, b: RunEntry
    public var k: Int
    public var users: Int
    public var metrics: [MetricDelta]
    public var overlap: Double
    public var rbo: Double
    public var sideA: Side, sideB: Side

    public static func compare(_ a: RunEntry, _ b: RunEntry, metrics wanted: [String]? = nil, resamples: Int = 10_000,
                               seed: UInt64 = 42) throws -> RunComparison {
        guard let ea = a.run.evaluation else { throw CompareError.noEvaluation(a.id) }
        guard let eb = b.run.evaluation else { throw CompareError.noEvaluation(b.id) }
        guard a.run.data.fingerprint == b.run.data.fingerprint else {
            throw CompareError.differentData(a.run.data.fingerprint, b.run.data.fingerprint)
        }
        guard ea.testFingerprint == eb.testFingerprint else { throw CompareError.differentTest(ea.testFingerprint, eb.testFingerprint) }
        guard ea.k == eb.k else { throw CompareError.differentK(ea.k, eb.k) }
        let ra = try EvaluationRecord.read(a.directory + "/" + ea.perUserFile)
        let rb = try EvaluationRecord.read(b.directory + "/" + eb.perUserFile)
        // Pair by user id.
        let rowB = Dictionary(rb.users.enumerated().map { ($1, $0) }, uniquingKeysWith: { x, _ in x })
        guard ra.users.count == rb.users.count, ra.users.allSatisfy({ rowB[$0] != nil }) else { throw CompareError.differentUsers }
        let order = ra.users.map { rowB[$0]! }
        var deltas: [MetricDelta] = []
        for name in wanted ?? EvaluationRecord.metricNames {
            let xa = ra.metrics[name]!, xb = order.map { rb.metrics[name]![$0] }
            let diff = zip(xb, xa).map { $0 - $1 }
            let n = Double(diff.count)
            deltas.append(MetricDelta(name: "\(name)@\(ea.k)", a: xa.reduce(0, +) / n, b: xb.reduce(0, +) / n,
                                      interval: Paired.bootstrap(diff, resamples: resamples, seed: seed),
                                      p: Paired.randomisationP(diff, resamples: resamples, seed: seed)))
        }
        // Lists: only users both models could rank (a user unknown to a model has an empty list).
        var overlap = 0.0, rbo = 0.0, both = 0
        for (u, la) in ra.lists.enumerated() {
            let lb = rb.lists[order[u]]
            guard !la.isEmpty || !lb.isEmpty else { continue }
            overlap += ListStats.overlap(la, lb, k: ea.k)
            rbo += ListStats.rbo(la, lb)
            both += 1
        }
        let popularity = try ModelStore.trainingPopularity(a.directory)
        func side(_ lists: [[String]], _ run: RunRecord) -> Side {
            let ids = popularity.keys.sorted()
            let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
            var exposure = [Int](repeating: 0, count: ids.count)
            var indexed: [[Int]] = []
            for l in lists {
                let row = l.compactMap { index[$0] }
                for i in row { exposure[i] += 1 }
                indexed.append(row)
            }
            return Side(coverage: Double(exposure.count { $0 > 0 }) / Double(max(1, ids.count)),
                        novelty: ListStats.novelty(indexed, popularity: ids.map { popularity[$0]! }, users: run.data.users),
                        gini: ListStats.gini(exposure))
        }
        return RunComparison(a: a, b: b, k: ea.k, users: ra.users.count, metrics: deltas,
                             overlap: both == 0 ? 0 : overlap / Double(both), rbo: both == 0 ? 0 : rbo / Double(both),
                             sideA: side(ra.lists, a.run), sideB: side(order.map { rb.lists[$0] }, b.run))
    }
}
