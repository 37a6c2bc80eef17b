import Foundation
import Interactions

/// People's current rows over a model's items, rebuilt from their event history: the users with
/// at least one positive (in `people` order), their positives with raw training weights, their
/// newest positives, and every model item they touched (to exclude). What `LiveEASE` and
/// `LiveRerank` score from.
struct LiveRows {
    var users: [String] = []
    /// Positives with their raw training weights (EASE ignores values; the ranker's user features read them).
    var positives: CSR
    /// Each user's `recent` newest positives (binary).
    var recent: CSR
    /// Every model item each user touched (binary).
    var seen: CSR
    /// Each user's positives sorted by item, with confidences (for per-user solves).
    var confidences: [(items: [Int32], confidences: [Float])] = []

    init(people: [String], history: EventHistory, items: IdMap, confidence: Confidence, recent newest: Int = 0) {
        var pR: [Int32] = [], pC: [Int32] = [], pW: [Float] = [], rR: [Int32] = [], rC: [Int32] = [], sR: [Int32] = [], sC: [Int32] = []
        for user in people {
            var mine: [(item: Int32, conf: Float, time: Int64, weight: Float)] = [], touched: [Int32] = []
            history.forEachPair(of: user) { video, pair in
                guard let i = items.index(of: video) else { return }
                touched.append(i)
                if let w = history.trainingWeight(pair), confidence.apply(w) > 0 { mine.append((i, confidence.apply(w), pair.lastTimeMs, w)) }
            }
            guard !mine.isEmpty else { continue }
            mine.sort { $0.item < $1.item }
            let row = Int32(users.count)
            users.append(user)
            confidences.append((mine.map(\.item), mine.map(\.conf)))
            for p in mine { pR.append(row); pC.append(p.item); pW.append(p.weight) }
            for p in mine.sorted(by: { ($0.time, $0.item) > ($1.time, $1.item) }).prefix(newest) { rR.append(row); rC.append(p.item) }
            for i in touched { sR.append(row); sC.append(i) }
        }
        let n = items.count, rows = users.count
        positives = CSR(rows: rows, cols: n, rowIndex: pR, colIndex: pC, values: pW)
        recent = CSR(rows: rows, cols: n, rowIndex: rR, colIndex: rC, values: [Float](repeating: 1, count: rR.count))
        seen = CSR(rows: rows, cols: n, rowIndex: sR, colIndex: sC, values: [Float](repeating: 1, count: sR.count))
    }
}
