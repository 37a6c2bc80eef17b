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
        let rows = LiveRows(people: people, history: history, items: items, confidence: confidence)
        guard !rows.users.isEmpty else { return [] }
        let kept = rows.users
        let recs = BatchScorer(top: top, threads: threads, userBlock: 32).recommend(ease.scoring(users: rows.positives), exclude: rows.seen)
        return kept.enumerated().map { row, user in
            (user: user, videos: recs.list(row).map { items.raw[Int($0)] }, scores: Array(recs.scoreList(row)))
        }
    }
}
