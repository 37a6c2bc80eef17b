import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Reranking
import Scoring
import CandidateStore

/// A second-stage generation serving a data directory without retraining: a user's sources
/// are rebuilt from their event history (ALS folds the user in against the trained item
/// factors, EASE and ease-recent take their current rows of X, popularity is the trained one)
/// and the trained LambdaMART ranker re-ranks the union of those sources' candidates, with the
/// same features as at training time. Like EASE, it has no vector for videos newer than the
/// model: they stay unplaced until the next retrain.
package final class LiveRerank: LiveModel {
    package let generation: Int64
    package let model: RerankModel
    package let users: IdMap
    package let items: IdMap
    package let confidence: Confidence
    package let mapping: EventMapping
    package let placed = 0
    package let placesFromCatalog = false
    let alsSolver: (ALSFoldIn, Matrix)?
    let recentItems: Int

    package enum Unsupported: Error, CustomStringConvertible {
        case source(String)
        package var description: String { "a second stage with a \(self.name) source cannot fold users in" }
        var name: String { if case .source(let s) = self { return s }; return "" }
    }

    package init(generation: Int64, model: RerankModel, users: IdMap, items: IdMap, confidence: Confidence, mapping: EventMapping,
                 recentItems: Int = RerankModel.defaultRecentItems) throws {
        self.generation = generation
        self.model = model
        self.users = users
        self.items = items
        self.confidence = confidence
        self.mapping = mapping
        self.recentItems = recentItems
        var solver: (ALSFoldIn, Matrix)?
        for (name, source) in zip(model.sourceNames, model.sources) {
            switch (name, source) {
            case ("als", let als as ALSModel):
                solver = (ALSFoldIn(fixed: als.itemFactors, regularization: als.config.regularization), als.itemFactors)
            case ("ease", is EASEModel), ("ease-recent", is EASEModel), ("popularity", is PopularityModel): break
            default: throw Unsupported.source(name)
            }
        }
        alsSolver = solver
    }

    package func isModelItem(_ video: String) -> Bool { items.index(of: video) != nil }

    @discardableResult
    package func place(_ videos: [String], history: EventHistory, catalog: [String: Video], usersOf: [String: Set<String>]) throws -> Int { 0 }

    package func lists(for people: [String], history: EventHistory, top: Int, threads: Int) throws
        -> [(user: String, videos: [String], scores: [Float])] {
        let rows = LiveRows(people: people, history: history, items: items, confidence: confidence, recent: recentItems)
        guard !rows.users.isEmpty else { return [] }
        let kept = rows.users, x = rows.positives, recent = rows.recent, seen = rows.seen
        var vectors: [Float] = []
        if let (solver, _) = alsSolver {
            for u in rows.confidences { vectors += try solver.solve(rows: u.items, confidences: u.confidences) }
        }
        var sources: [(String, Ranker)] = []
        for (name, source) in zip(model.sourceNames, model.sources) {
            switch source {
            case is ALSModel:
                sources.append((name, StoredFactors(kind: "fold-in", userFactors: Matrix(rows: kept.count, cols: alsSolver!.1.cols, values: vectors),
                                                    itemFactors: alsSolver!.1)))
            case let e as EASEModel: sources.append((name, e.scoring(users: name == "ease-recent" ? recent : x)))
            case let p as PopularityModel: sources.append((name, PopularityModel(userCount: kept.count, itemScores: p.itemScores)))
            default: throw Unsupported.source(name)
            }
        }
        // The ranker's user features read the positives; its candidates exclude everything seen.
        let live = RerankModel(sources: sources, perSource: model.perSource, seen: seen, features: model.features, boosters: model.boosters,
                               history: x)
        let recs = BatchScorer(top: top, threads: threads, userBlock: 32).recommend(live, exclude: seen)
        return kept.enumerated().map { row, user in
            (user: user, videos: recs.list(row).map { items.raw[Int($0)] }, scores: Array(recs.scoreList(row)))
        }
    }
}
