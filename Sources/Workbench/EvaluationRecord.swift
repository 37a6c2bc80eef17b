import Foundation
import Artifacts
import Evaluation

/// A run's recorded evaluation: per test user, the metrics and the top-K list, in
/// `per_user.tsv` beside the model (user, precision, recall, ndcg, ap, items joined by ',').
public struct EvaluationRecord: Sendable, Equatable {
    public static let fileName = "per_user.tsv"
    public static let metricNames = ["precision", "recall", "ndcg", "ap"]

    public var users: [String]
    /// metric name -> per-user values, aligned with `users`.
    public var metrics: [String: [Double]]
    public var lists: [[String]]

    public init(users: [String], metrics: [String: [Double]], lists: [[String]]) {
        self.users = users; self.metrics = metrics; self.lists = lists
    }

    public init(_ r: Evaluator.Report) {
        users = r.perUser.users
        metrics = ["precision": r.perUser.precision, "recall": r.perUser.recall, "ndcg": r.perUser.ndcg, "ap": r.perUser.ap]
        lists = r.lists
    }

    public var tsv: String {
        var out = "user\t" + Self.metricNames.joined(separator: "\t") + "\titems\n"
        for (u, user) in users.enumerated() {
            out += user
            for m in Self.metricNames { out += "\t" + String(metrics[m]![u]) }
            out += "\t" + lists[u].joined(separator: ",") + "\n"
        }
        return out
    }

    public static func read(_ path: String) throws -> EvaluationRecord {
        guard let data = FileManager.default.contents(atPath: path) else { throw ArtifactError.missing(path) }
        var users: [String] = [], lists: [[String]] = []
        var metrics = Dictionary(uniqueKeysWithValues: metricNames.map { ($0, [Double]()) })
        for (n, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() where n > 0 {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == metricNames.count + 2 else {
                throw ArtifactError.badMetadata(path, "line \(n + 1): expected \(metricNames.count + 2) tab-separated fields")
            }
            users.append(String(f[0]))
            for (j, m) in metricNames.enumerated() {
                guard let v = Double(f[j + 1]) else { throw ArtifactError.badMetadata(path, "line \(n + 1): '\(f[j + 1])' is not a number") }
                metrics[m]!.append(v)
            }
            lists.append(f.last!.isEmpty ? [] : f.last!.split(separator: ",").map(String.init))
        }
        return EvaluationRecord(users: users, metrics: metrics, lists: lists)
    }

    /// Stores `report` as the evaluation of the model in `directory` on the held-out `test`
    /// files: the per-user file, its digest, the evaluation info and the summary metrics in run.json.
    public static func attach(_ report: Evaluator.Report, test: [String], to directory: String) throws {
        let fingerprint = try ModelStore.fingerprint(paths: test)
        let s = report.summary
        try ModelStore.addFile(fileName, bytes: Array(EvaluationRecord(report).tsv.utf8), to: directory) { run in
            run.evaluation = .init(test: test, testFingerprint: fingerprint, k: s.k, users: report.perUser.users.count,
                                   perUserFile: fileName)
            run.metrics.merge(["precision@\(s.k)": s.precision, "recall@\(s.k)": s.recall, "ndcg@\(s.k)": s.ndcg,
                               "map@\(s.k)": s.map, "coverage@\(s.k)": s.coverage, "test_users": Double(s.testUsers)]) { $1 }
        }
    }
}
