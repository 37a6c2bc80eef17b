import Foundation
import Artifacts
import Evaluation

public enum CompareError: Error, CustomStringConvertible, Equatable {
    case noEvaluation(String)
    case differentData(String, String)
    case differentTest(String, String)
    case differentK(Int, Int)
    case differentUsers
    case notReplicates(String, String, String)
    case repeatedRun(String)

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
        case .notReplicates(let a, let b, let what):
            return "runs \(a) and \(b) on one side are not replicates of one configuration (they differ in \(what)); "
                + "replicates differ only in seed"
        case .repeatedRun(let id): return "run \(id) is given twice on one side; replicates are distinct runs"
        }
    }
}

/// Two runs evaluated on the same held-out set, compared per user: each metric's mean
/// difference (B - A) with a paired bootstrap interval and a paired randomisation p-value, and
/// how the recommended lists differ (overlap, rank-biased overlap, coverage, novelty, Gini).
///
/// Each side may also be several replicates of one configuration (runs that differ only in
/// seed): then the interval and p-value come from `Paired.replicateBootstrap`, which resamples
/// replicates as well as users, so they cover the randomness of training, and the list figures
/// are means over replicates (overlap over every cross pair).
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

    public var a: [RunEntry], b: [RunEntry]
    public var k: Int
    public var users: Int
    public var metrics: [MetricDelta]
    public var overlap: Double
    public var rbo: Double
    public var sideA: Side, sideB: Side
    /// Whether the intervals cover training randomness (both sides' replicates resampled).
    public var replicated: Bool { a.count > 1 || b.count > 1 }

    public static func compare(_ a: RunEntry, _ b: RunEntry, metrics wanted: [String]? = nil, resamples: Int = 10_000,
                               seed: UInt64 = 42) throws -> RunComparison {
        try compare(replicates: [a], [b], metrics: wanted, resamples: resamples, seed: seed)
    }

    public static func compare(replicates a: [RunEntry], _ b: [RunEntry], metrics wanted: [String]? = nil, resamples: Int = 10_000,
                               seed: UInt64 = 42) throws -> RunComparison {
        precondition(!a.isEmpty && !b.isEmpty)
        for e in a + b where e.run.evaluation == nil { throw CompareError.noEvaluation(e.id) }
        let first = a[0], ea = first.run.evaluation!
        for e in a + b {
            guard e.run.data.fingerprint == first.run.data.fingerprint else {
                throw CompareError.differentData(first.run.data.fingerprint, e.run.data.fingerprint)
            }
            let ee = e.run.evaluation!
            guard ee.testFingerprint == ea.testFingerprint else { throw CompareError.differentTest(ea.testFingerprint, ee.testFingerprint) }
            guard ee.k == ea.k else { throw CompareError.differentK(ea.k, ee.k) }
        }
        for side in [a, b] {
            var ids = Set<String>()
            for e in side where !ids.insert(e.id).inserted { throw CompareError.repeatedRun(e.id) }
            for e in side.dropFirst() { try checkReplicates(side[0], e) }
        }
        let recA = try a.map { try EvaluationRecord.read($0.directory + "/" + $0.run.evaluation!.perUserFile) }
        let recB = try b.map { try EvaluationRecord.read($0.directory + "/" + $0.run.evaluation!.perUserFile) }
        // Pair by user id: every record is reordered to the first one's users.
        let users = recA[0].users
        func order(_ r: EvaluationRecord) throws -> [Int] {
            let row = Dictionary(r.users.enumerated().map { ($1, $0) }, uniquingKeysWith: { x, _ in x })
            guard r.users.count == users.count, users.allSatisfy({ row[$0] != nil }) else { throw CompareError.differentUsers }
            return users.map { row[$0]! }
        }
        let ordA = try recA.map(order), ordB = try recB.map(order)
        func values(_ recs: [EvaluationRecord], _ ords: [[Int]], _ name: String) -> [[Double]] {
            zip(recs, ords).map { r, o in o.map { r.metrics[name]![$0] } }
        }
        let n = Double(users.count)
        var deltas: [MetricDelta] = []
        for name in wanted ?? EvaluationRecord.metricNames {
            let xa = values(recA, ordA, name), xb = values(recB, ordB, name)
            let meanA = xa.reduce(0) { $0 + $1.reduce(0, +) } / (n * Double(xa.count))
            let meanB = xb.reduce(0) { $0 + $1.reduce(0, +) } / (n * Double(xb.count))
            let interval: Paired.Interval, p: Double
            if xa.count == 1 && xb.count == 1 {
                let diff = zip(xb[0], xa[0]).map { $0 - $1 }
                interval = Paired.bootstrap(diff, resamples: resamples, seed: seed)
                p = Paired.randomisationP(diff, resamples: resamples, seed: seed)
            } else {
                (interval, p) = Paired.replicateBootstrap(xa, xb, resamples: resamples, seed: seed)
            }
            deltas.append(MetricDelta(name: "\(name)@\(ea.k)", a: meanA, b: meanB, interval: interval, p: p))
        }
        let listsA = zip(recA, ordA).map { r, o in o.map { r.lists[$0] } }
        let listsB = zip(recB, ordB).map { r, o in o.map { r.lists[$0] } }
        // Lists: only users both models could rank (a user unknown to a model has an empty list).
        var overlap = 0.0, rbo = 0.0, pairs = 0
        for la in listsA {
            for lb in listsB {
                var o = 0.0, r = 0.0, both = 0
                for u in users.indices where !la[u].isEmpty || !lb[u].isEmpty {
                    o += ListStats.overlap(la[u], lb[u], k: ea.k)
                    r += ListStats.rbo(la[u], lb[u])
                    both += 1
                }
                if both > 0 { overlap += o / Double(both); rbo += r / Double(both); pairs += 1 }
            }
        }
        let popularity = try ModelStore.trainingPopularity(first.directory)
        let ids = popularity.keys.sorted()
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        func side(_ lists: [[String]], _ run: RunRecord) -> Side {
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
        func mean(_ sides: [Side]) -> Side {
            let c = Double(sides.count)
            return Side(coverage: sides.reduce(0) { $0 + $1.coverage } / c, novelty: sides.reduce(0) { $0 + $1.novelty } / c,
                        gini: sides.reduce(0) { $0 + $1.gini } / c)
        }
        return RunComparison(a: a, b: b, k: ea.k, users: users.count, metrics: deltas,
                             overlap: pairs == 0 ? 0 : overlap / Double(pairs), rbo: pairs == 0 ? 0 : rbo / Double(pairs),
                             sideA: mean(zip(listsA, a).map { side($0, $1.run) }), sideB: mean(zip(listsB, b).map { side($0, $1.run) }))
    }

    /// Whether two runs are replicates of one configuration (differ only in seed).
    public static func areReplicates(_ x: RunEntry, _ y: RunEntry) -> Bool { (try? checkReplicates(x, y)) != nil }

    /// Replicates of one configuration: same model, same parameters apart from seed, the thread
    /// count (which does not change what is computed) and what training measured or fitted.
    static func checkReplicates(_ x: RunEntry, _ y: RunEntry) throws {
        guard x.run.model == y.run.model else { throw CompareError.notReplicates(x.id, y.id, "model: \(x.run.model) vs \(y.run.model)") }
        // Runs recorded before training results had their own field kept them among the parameters.
        var ignored: Set<String> = ["seed", "threads", "outcome", "validation_ndcg", "examples_per_s", "als_validation_ndcg",
                                    "two_tower_validation_ndcg", "blend_grid", "refit_epochs"]
        if x.run.model == "blend" && x.run.results == nil { ignored.insert("lambda") }
        for key in Set(x.run.params.keys).union(y.run.params.keys).subtracting(ignored).sorted()
        where x.run.params[key] != y.run.params[key] {
            throw CompareError.notReplicates(x.id, y.id, "\(key): \(x.run.params[key] ?? "unset") vs \(y.run.params[key] ?? "unset")")
        }
    }
}
