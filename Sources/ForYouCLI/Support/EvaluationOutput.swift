import ArgumentParser
import ForYou
import Foundation

enum EvaluationOutput {
    static func metricMap(_ s: MetricSummary) -> [String: Double] {
        ["precision@\(s.k)": s.precision, "recall@\(s.k)": s.recall, "ndcg@\(s.k)": s.ndcg, "map@\(s.k)": s.map,
         "coverage@\(s.k)": s.coverage, "test_users": Double(s.testUsers)]
    }

    static func table(_ r: Evaluator.Report) -> String {
        let s = r.summary
        var lines = [String(format: "%-12@ %@", "metric" as NSString, "value")]
        for (name, v) in [("precision", s.precision), ("recall", s.recall), ("ndcg", s.ndcg), ("map", s.map),
                          ("coverage", s.coverage)] {
            lines.append(String(format: "%-12@ %.6f", "\(name)@\(s.k)" as NSString, v))
        }
        lines.append("test users   \(s.testUsers) (\(r.unknownUsers) unknown to the model), "
                     + "\(r.droppedTestItems) test rows outside the catalog dropped")
        return lines.joined(separator: "\n")
    }

    static func json(_ r: Evaluator.Report, model: StoredModel) -> String {
        let s = r.summary
        let obj: [String: Any] = [
            "model": model.directory, "kind": model.run.model, "k": s.k,
            "precision": s.precision, "recall": s.recall, "ndcg": s.ndcg, "map": s.map, "coverage": s.coverage,
            "n_test_users": s.testUsers, "unknown_users": r.unknownUsers, "dropped_test_rows": r.droppedTestItems,
            "seconds": r.seconds,
        ]
        let data = try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
