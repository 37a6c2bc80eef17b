import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Scoring
import CandidateStore

/// A two-tower model serving a data directory without retraining: videos the model never saw
/// are embedded from their catalog caption and tags through the item tower, and a user is
/// embedded again from their most recent positives through the user tower (their id embedding
/// when the model knows them, nothing else when it does not). Both towers are the trained ones,
/// so the vectors live in the same space as the model's own.
package final class LiveTwoTower: LiveModel {
    package let generation: Int64
    package let ranker: TwoTowerRanker
    package let model: TwoTowerModel
    package let users: IdMap
    package let items: IdMap
    package let mapping: EventMapping
    /// Catalog videos the model has no vector for, embedded from their features; after the model's items.
    package private(set) var extraIds: [String] = []
    private var extraIndex: [String: Int32] = [:]
    private var extraFeatures: [[Int32]] = []
    private var extraVectors: [Float] = []
    /// Item vectors + extra rows, rebuilt when the extras change.
    package private(set) var catalog: Matrix
    package let placesFromCatalog = true

    package init(generation: Int64, ranker: TwoTowerRanker, model: TwoTowerModel, users: IdMap, items: IdMap, mapping: EventMapping) {
        self.generation = generation
        self.ranker = ranker
        self.model = model
        self.users = users
        self.items = items
        self.mapping = mapping
        catalog = ranker.itemFactors
    }

    package var placed: Int { extraIds.count }
    package var itemCount: Int { catalog.rows }
    package func isModelItem(_ video: String) -> Bool { items.index(of: video) != nil }
    package func index(of video: String) -> Int32? { items.index(of: video) ?? extraIndex[video] }
    package func id(at i: Int32) -> String { Int(i) < items.count ? items.raw[Int(i)] : extraIds[Int(i) - items.count] }

    /// Feature buckets of a catalog video, hashed the way the model's table expects.
    package func features(of v: Video) -> [Int32] {
        ItemFeatures.buckets(of: ItemFeatures.catalogTokens(caption: v.caption, tags: v.tags), buckets: model.config.featureBuckets)
    }

    /// Embeds each of `videos` the model has no vector for from its catalog caption and tags
    /// (videos with neither stay unplaced: their vector would be the towers' bias alone). The
    /// history and the users of each video do not matter here. Returns how many were added.
    @discardableResult
    package func place(_ videos: [String], history: EventHistory, catalog: [String: Video], usersOf: [String: Set<String>]) throws -> Int {
        var ids: [String] = [], feats: [[Int32]] = []
        for video in videos.sorted() where index(of: video) == nil {
            guard let v = catalog[video] else { continue }
            let f = features(of: v)
            if f.isEmpty { continue }
            ids.append(video)
            feats.append(f)
        }
        guard !ids.isEmpty else { return 0 }
        let vectors = model.embedItems([Int32](repeating: -1, count: ids.count), features: feats)
        for (k, video) in ids.enumerated() {
            extraIndex[video] = Int32(items.count + extraIds.count)
            extraIds.append(video)
            extraFeatures.append(feats[k])
        }
        extraVectors += vectors.values
        let d = model.config.dim
        let m = Matrix(rows: items.count + extraIds.count, cols: d)
        m.storage.update(from: ranker.itemFactors.storage, count: items.count * d)
        extraVectors.withUnsafeBufferPointer { (m.storage + items.count * d).update(from: $0.baseAddress!, count: $0.count) }
        self.catalog = m
        return ids.count
    }

    /// The user tower's input history: the user's most recent positives that have a vector.
    package func history(of user: String, _ history: EventHistory) -> (items: [Int32], features: [[Int32]]) {
        var positives: [(video: String, time: Int64)] = []
        history.forEachPair(of: user) { video, pair in
            guard let w = history.trainingWeight(pair), w > 0 else { return }
            positives.append((video, pair.lastTimeMs))
        }
        positives.sort { $0.time != $1.time ? $0.time < $1.time : $0.video < $1.video }
        var out: [Int32] = [], feats: [[Int32]] = []
        for p in positives.reversed() {
            if out.count == model.config.history { break }
            if let i = items.index(of: p.video) {
                out.append(i)
                feats.append(ranker.itemFeatures[Int(i)])
            } else if let e = extraIndex[p.video] {
                out.append(-1)  // no id embedding: its features alone
                feats.append(extraFeatures[Int(e) - items.count])
            }
        }
        return (Array(out.reversed()), Array(feats.reversed()))
    }

    /// Fresh lists for `people`: each embedded from their recent positives, then one blocked GEMM
    /// over the model's items and the placed videos, everything they touched excluded.
    package func lists(for people: [String], history: EventHistory, top: Int, threads: Int) throws
        -> [(user: String, videos: [String], scores: [Float])] {
        var kept: [String] = [], ids: [Int32] = [], hists: [[Int32]] = [], histFeats: [[[Int32]]] = []
        var seenRows: [Int32] = [], seenCols: [Int32] = []
        for user in people {
            let u = users.index(of: user)
            let h = self.history(of: user, history)
            guard u != nil || !h.items.isEmpty else { continue }
            let row = Int32(kept.count)
            kept.append(user)
            ids.append(u ?? -1)
            hists.append(h.items)
            histFeats.append(h.features)
            history.forEachPair(of: user) { video, _ in if let i = index(of: video) { seenRows.append(row); seenCols.append(i) } }
        }
        guard !kept.isEmpty else { return [] }
        let vectors = model.embedUsers(ids, histories: hists, historyFeatures: histFeats)
        let table = StoredFactors(kind: "fold-in", userFactors: vectors, itemFactors: catalog)
        let exclude = CSR(rows: kept.count, cols: catalog.rows, rowIndex: seenRows, colIndex: seenCols,
                          values: [Float](repeating: 1, count: seenRows.count))
        let recs = BatchScorer(top: top, threads: threads, userBlock: 32).recommend(table, exclude: exclude)
        return kept.enumerated().map { row, user in
            (user: user, videos: recs.list(row).map { id(at: $0) }, scores: Array(recs.scoreList(row)))
        }
    }
}
