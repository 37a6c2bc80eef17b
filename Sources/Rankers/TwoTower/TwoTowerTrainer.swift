import Foundation
import LinearAlgebra
import Interactions

// The trainer's state. Its work, by concern: TwoTowerData (training pairs and histories),
// TwoTowerBatchInputs (a batch's examples, sampled histories, tower inputs), TwoTowerNegatives,
// TwoTowerBatchPass (forward and backward), TwoTowerAdamUpdate (gradient scatter and AdamW),
// TwoTowerEpochLoop (epochs, early stopping, cancellation), TwoTowerParameterGroups (the
// parameters, gradients and moments by name).

/// Trains a `TwoTowerModel` with in-batch sampled softmax (log-Q corrected), optional uniform
/// negatives, AdamW, mini-batches through `cblas_sgemm`.
public final class TwoTowerTrainer {
    public let model: TwoTowerModel
    let config: TwoTowerConfig
    let data: TwoTowerData
    /// log(expected in-batch count) per item.
    let logQ: [Float]
    /// `data.userItems` and `data.itemFeatures`, flat.
    let userItems: FlatLists
    let itemFeatures: FlatLists

    /// The model's parameters, their gradients and Adam's first and second moments, by name.
    let params: TwoTowerBuffers
    let grads: TwoTowerBuffers
    let m: TwoTowerBuffers, v: TwoTowerBuffers
    /// Rows of the embedding tables the batch touched: a flag per row, and per worker and table
    /// the list of rows it marked (each row is owned by one worker, so workers never write the
    /// same flag or list).
    let touched: TouchedRows
    var step = 0

    public init(data: TwoTowerData, config: TwoTowerConfig) {
        self.data = data
        self.config = config
        let model = TwoTowerModel(config: config, users: data.users, items: data.items)
        self.model = model
        userItems = FlatLists(data.userItems)
        itemFeatures = FlatLists(data.itemFeatures)
        let ps = TwoTowerBuffers(model)
        params = ps
        grads = TwoTowerBuffers(zerosLike: ps)
        m = TwoTowerBuffers(zerosLike: ps)
        v = TwoTowerBuffers(zerosLike: ps)
        touched = TouchedRows(tables: EmbeddingTable.allCases.map { ps.embedding($0).rows },
                              workers: config.threads > 0 ? config.threads : BLASRuntime.availableCores)
        logQ = Self.logExpectedCounts(data, batch: config.batch)
    }

    var threads: Int { config.threads > 0 ? config.threads : BLASRuntime.availableCores }

    /// The ranker for the training users and items: each user's history = their most recent
    /// `history` items.
    public func ranker() -> TwoTowerRanker {
        Self.ranker(model, data: data)
    }

    public static func ranker(_ model: TwoTowerModel, data: TwoTowerData) -> TwoTowerRanker {
        let items = model.embedItems((0..<Int32(data.items)).map { $0 }, features: data.itemFeatures)
        let hist = data.userItems.map { Array($0.suffix(model.config.history)) }
        let users = model.embedUsers((0..<Int32(data.users)).map { $0 }, histories: hist,
                                     historyFeatures: hist.map { $0.map { data.itemFeatures[Int($0)] } })
        return TwoTowerRanker(userFactors: users, itemFactors: items, model: model, itemFeatures: data.itemFeatures)
    }
}
