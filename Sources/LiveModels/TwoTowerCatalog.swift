import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Scoring
import CandidateStore

/// Scoring a two-tower model over a data directory's catalog.
public enum TwoTowerCatalog {
    /// Content features of catalog videos: their tags and caption words, hashed into `buckets`.
    public static func features(_ videos: [Video], buckets: Int) -> ItemFeatures {
        var f = ItemFeatures(buckets: buckets)
        for v in videos { f.add(item: v.id, tokens: ItemFeatures.catalogTokens(caption: v.caption, tags: v.tags)) }
        return f
    }

    /// The model's item vectors, then a vector for each catalog video the model never saw,
    /// embedded from its caption and tags (videos with neither are left out); ids in row order.
    public static func extend(_ ranker: TwoTowerRanker, items: IdMap, videos: [Video]) -> (ids: [String], vectors: Matrix) {
        guard let model = ranker.model else { return (items.raw, ranker.itemFactors) }
        let live = LiveTwoTower(generation: 0, ranker: ranker, model: model, users: IdMap(), items: items, mapping: EventMapping())
        let catalog = Dictionary(videos.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        _ = try? live.place(videos.map(\.id).filter { items.index(of: $0) == nil }, history: EventHistory(), catalog: catalog,
                            usersOf: [:])
        return (items.raw + live.extraIds, live.catalog)
    }
}
