import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Scoring
import Evaluation

/// Fits a two-tower model the way the CLI and the benchmarks do: a validation split carved from
/// the training interactions (never the test split) drives early stopping; the best epoch's
/// parameters are kept; the final vectors use every training interaction as history.
public enum TwoTowerJob {
    public struct Result {
        public var ranker: TwoTowerRanker
        public var outcome: TwoTowerTrainer.Outcome
        public var reports: [EpochReport]
        public var validationUsers: Int
        public var trainPairs: Int
    }

    /// Per user with at least `minItems` positives, a seeded random `fraction` of them (at least
    /// one) is held out. Returns (train rows, validation rows) as row indices of `data`.
    public static func carveValidation(_ data: Interactions, fraction: Double, seed: UInt64, minItems: Int = 5)
        -> (train: [Int], validation: [Int]) {
        var byUser = [[Int]](repeating: [], count: data.users.count)
        for r in 0..<data.count where data.weights[r] > 0 { byUser[Int(data.userIndex[r])].append(r) }
        var train: [Int] = [], val: [Int] = []
        for (u, rows) in byUser.enumerated() {
            guard rows.count >= minItems, fraction > 0 else { train += rows; continue }
            var g = SeededGenerator(seed: seed, stream: UInt64(u))
            let shuffled = rows.shuffled(using: &g)
            let k = max(1, Int(Double(rows.count) * fraction))
            val += shuffled.prefix(k)
            train += shuffled.dropFirst(k)
        }
        return (train.sorted(), val.sorted())
    }

    public static func fit(_ data: Interactions, features: ItemFeatures?, config: TwoTowerConfig, validationFraction: Double = 0.1,
                           cancel: CancellationToken? = nil, progress: (EpochReport) -> Void = { _ in }) -> Result {
        let (trainRows, valRows) = carveValidation(data, fraction: validationFraction, seed: config.seed)
        let train = data.subset(trainRows)
        let trainData = TwoTowerData(train, features: features)
        var truth: [Int32: Set<Int32>] = [:]
        for r in valRows { truth[data.userIndex[r], default: []].insert(data.itemIndex[r]) }
        let valUsers = truth.keys.sorted()
        let seen = train.matrix()
        let trainer = TwoTowerTrainer(data: trainData, config: config)
        var reports: [EpochReport] = []
        let validate: ((TwoTowerModel) -> Double?)? = valUsers.isEmpty ? nil : { model in
            let r = TwoTowerTrainer.ranker(model, data: trainData)
            let recs = BatchScorer(top: 10, threads: config.threads).recommend(r, users: valUsers, exclude: seen)
            let lists = (0..<valUsers.count).map { recs.list($0) }
            return Metrics.atK(10, lists: lists, truth: valUsers.map { truth[$0]! }, catalogSize: r.itemCount).0.ndcg
        }
        let outcome = trainer.train(cancel: cancel, validate: validate) { reports.append($0); progress($0) }
        // Serving vectors: every training interaction (validation included) is history.
        let full = TwoTowerData(data, features: features)
        return Result(ranker: TwoTowerTrainer.ranker(trainer.model, data: full), outcome: outcome, reports: reports,
                      validationUsers: valUsers.count, trainPairs: trainData.count)
    }
}
