import Foundation
import Interactions
import Rankers
import Scoring
import CandidateStore

/// An EASE model serving a data directory without retraining. Scores are X_u B, so a user's
/// fresh list is their current row of X (every video of theirs the model knows, with a
/// positive training weight) times the trained B: no solve at all. B has no row or column for a
/// video newer than the model, so such videos stay unplaced (the feed's fallback shows them)
/// until the next retrain.
package final class LiveEASE: LiveModel {
    package let generation: Int64
    package let ease: EASEModel
    package let users: IdMap
    package let items: IdMap
    package let confidence: Confidence
    package let mapping: EventMapping
    package let placed = 0
    package let placesFromCatalog = false

    package init(generation: Int64, ease: EASEModel, users: IdMap, items: IdMap, confidence: Confidence, mapping: EventMapping) {
        self.generation = generation
        self.ease = ease
        self.users = users
        self.items = items
        self.confidence = confidence
        self.mapping = mapping
    }

    package func isModelItem(_ video: String) -> Bool { items.index(of: video) != nil }

    @discardableResult
    package func place(_ videos: [String], history: EventHistory, catalog: [String: Video], usersOf: [String: Set<String>]) throws -> Int { 0 }

    package func lists(for people: [String], history: EventHistory, top: Int, threads: Int) throws
        -> [(user: String, videos: [String], scores: [Float])] {
        var kept: [String] = []
        var xRows: [Int32] = [], xCols: [Int32] = [], seenRows: [Int32] = [], seenCols: [Int32] = []
        for user in people {
            var positives: [Int32] = [], seen: [Int32] = []
            for (video, pair) in history.pairs[user] ?? [:] {
                guard let i = items.index(of: video) else { continue }
                seen.append(i)
                if let w = history.trainingWeight(pair), confidence.apply(w) > 0 { positives.append(i) }
            }
            guard !positives.isEmpty else { continue }
            let row = Int32(kept.count)
            kept.append(user)
            for i in positives { xRows.append(row); xCols.append(i) }
            for i in seen { seenRows.append(row); seenCols.append(i) }
        }
        guard !kept.isEmpty else { return [] }
        let x = CSR(rows: kept.count, cols: items.count, rowIndex: xRows, colIndex: xCols, values: [Float](repeating: 1, count: xRows.count))
        let exclude = CSR(rows: kept.count, cols: items.count, rowIndex: seenRows, colIndex: seenCols,
                          values: [Float](repeating: 1, count: seenRows.count))
        let recs = BatchScorer(top: top, threads: threads, userBlock: 32).recommend(ease.scoring(users: x), exclude: exclude)
        return kept.enumerated().map { row, user in
            (user: user, videos: recs.list(row).map { items.raw[Int($0)] }, scores: Array(recs.scoreList(row)))
        }
    }
}
