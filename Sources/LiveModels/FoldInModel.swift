import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Scoring
import CandidateStore

/// An ALS model prepared for fold-in: Gram matrices of both sides computed once, and vectors
/// for videos the model has no factors for (placed from their first interactions).
package final class FoldInModel: LiveModel {
    package let generation: Int64
    package let als: ALSModel
    package let users: IdMap
    package let items: IdMap
    package let confidence: Confidence
    package let mapping: EventMapping
    package let userSolver: ALSFoldIn  // user vectors against the item factors
    package let itemSolver: ALSFoldIn  // video vectors against the user factors
    /// Videos without model factors, appended after the model's items.
    package var extraIds: [String] = []
    package var extraIndex: [String: Int32] = [:]
    package var extraVectors: [[Float]] = []
    /// Item factors + extra rows, rebuilt when the extras change.
    package var catalog: Matrix

    package init(generation: Int64, als: ALSModel, users: IdMap, items: IdMap, confidence: Confidence, mapping: EventMapping) {
        self.generation = generation
        self.als = als
        self.users = users
        self.items = items
        self.confidence = confidence
        self.mapping = mapping
        userSolver = ALSFoldIn(fixed: als.itemFactors, regularization: als.config.regularization)
        itemSolver = ALSFoldIn(fixed: als.userFactors, regularization: als.config.regularization)
        catalog = als.itemFactors
    }

    package func index(of video: String) -> Int32? { items.index(of: video) ?? extraIndex[video] }
    package func id(at i: Int32) -> String {
        Int(i) < items.count ? items.raw[Int(i)] : extraIds[Int(i) - items.count]
    }
    package var placed: Int { extraIds.count }
    package let placesFromCatalog = false
    package func isModelItem(_ video: String) -> Bool { items.index(of: video) != nil }

    package func rebuildCatalog() {
        let k = als.factors, n = als.itemCount
        let m = Matrix(rows: n + extraIds.count, cols: k)
        m.storage.update(from: als.itemFactors.storage, count: n * k)
        for (j, v) in extraVectors.enumerated() { (m.storage + (n + j) * k).update(from: v, count: k) }
        catalog = m
    }

    /// Solves a vector for each of `videos` (ids without model factors, in the catalog) from the
    /// pairs of the model's users who touched it (`usersOf[video]`); videos with no such positive
    /// stay unplaced. Returns how many vectors changed.
    @discardableResult
    package func place(_ videos: [String], history: EventHistory, catalog: [String: Video], usersOf: [String: Set<String>]) throws -> Int {
        var changed = 0
        for video in videos.sorted() where catalog[video] != nil {
            var r: [Int32] = [], c: [Float] = []
            for user in usersOf[video] ?? [] {
                guard let u = users.index(of: user), let pair = history.pair(user: user, video: video), let w = history.trainingWeight(pair) else {
                    continue
                }
                r.append(u)
                c.append(confidence.apply(w))
            }
            guard c.contains(where: { $0 > 0 }) else { continue }
            // Sorted by user so the solve is the same whatever order the history dictionary has.
            let order = r.indices.sorted { r[$0] < r[$1] }
            let y = try itemSolver.solve(rows: order.map { r[$0] }, confidences: order.map { c[$0] })
            if let i = extraIndex[video] {
                extraVectors[Int(i) - items.count] = y
            } else {
                extraIndex[video] = Int32(items.count + extraIds.count)
                extraIds.append(video)
                extraVectors.append(y)
            }
            changed += 1
        }
        if changed > 0 { rebuildCatalog() }
        return changed
    }

    /// Fresh lists for `people`: fold-in against the model's items, then one blocked GEMM over
    /// the model's items and the placed videos, seen videos excluded.
    package func lists(for people: [String], history: EventHistory, top: Int, threads: Int) throws
        -> [(user: String, videos: [String], scores: [Float])] {
        let k = als.factors
        var kept: [String] = [], vectors: [Float] = []
        var seenRows: [Int32] = [], seenCols: [Int32] = []
        for user in people {
            var rows: [Int32] = [], conf: [Float] = [], seen: [Int32] = []
            history.forEachPair(of: user) { video, pair in
                guard let i = index(of: video) else { return }  // unplaced: the feed's fallback shows it
                seen.append(i)
                guard Int(i) < self.items.count, let w = history.trainingWeight(pair) else { return }
                rows.append(i)
                conf.append(confidence.apply(w))
            }
            guard conf.contains(where: { $0 > 0 }) else { continue }
            let order = rows.indices.sorted { rows[$0] < rows[$1] }
            vectors += try userSolver.solve(rows: order.map { rows[$0] }, confidences: order.map { conf[$0] })
            let row = Int32(kept.count)
            kept.append(user)
            for i in seen { seenRows.append(row); seenCols.append(i) }
        }
        guard !kept.isEmpty else { return [] }
        let table = StoredFactors(kind: "fold-in", userFactors: Matrix(rows: kept.count, cols: k, values: vectors), itemFactors: catalog)
        let exclude = CSR(rows: kept.count, cols: catalog.rows, rowIndex: seenRows, colIndex: seenCols,
                          values: [Float](repeating: 1, count: seenRows.count))
        let recs = BatchScorer(top: top, threads: threads, userBlock: 32).recommend(table, exclude: exclude)
        return kept.enumerated().map { row, user in
            (user: user, videos: recs.list(row).map { id(at: $0) }, scores: Array(recs.scoreList(row)))
        }
    }
}
