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
        /// The same model with the validation items left out of the users' histories (for
        /// fitting anything else on the validation split without leaking it).
        public var validationRanker: TwoTowerRanker
        public var outcome: TwoTowerTrainer.Outcome
        public var reports: [EpochReport]
        public var validationUsers: Int
        public var trainPairs: Int
        /// Epochs of the model refitted on all training interactions that serves (0: none; the
        /// early-stopped model serves).
        public var refitEpochs = 0
    }

    /// The automatic carve (chrono with times, else seeded random) as row indices of `data`.
    public static func carveValidation(_ data: Interactions, fraction: Double, seed: UInt64, minItems: Int = 5)
        -> (train: [Int], validation: [Int]) {
        try! ValidationCarve(scheme: .auto, fraction: fraction, seed: seed, minItems: minItems).rows(data)
    }

    /// NDCG@10 of `r` for `users` against `truth`, `seen` items excluded.
    public static func ndcg(_ r: Ranker, users: [Int32], truth: [Int32: Set<Int32>], seen: CSR, threads: Int) -> Double {
        let v = perUserNDCG(r, users: users, truth: truth, seen: seen, threads: threads)
        return v.reduce(0, +) / Double(max(1, v.count))
    }

    /// Each user's NDCG@10.
    public static func perUserNDCG(_ r: Ranker, users: [Int32], truth: [Int32: Set<Int32>], seen: CSR, threads: Int) -> [Double] {
        let recs = BatchScorer(top: 10, threads: threads).recommend(r, users: users, exclude: seen)
        let lists = (0..<users.count).map { recs.list($0) }
        return Metrics.atK(10, lists: lists, truth: users.map { truth[$0]! }, catalogSize: r.itemCount).1.ndcg
    }

    public typealias Validation = Training.Validation

    public static func validation(_ data: Interactions, fraction: Double, seed: UInt64) -> Validation {
        try! ValidationCarve(scheme: .auto, fraction: fraction, seed: seed).carve(data)
    }

    /// With `refit`, once early stopping has picked the best epoch E, a second model is trained
    /// from scratch on every training interaction (the validation ones included) for E epochs,
    /// same configuration and seed, and serves (ESL 7.10: choose with held-out data, then fit on
    /// all of it). `validationRanker` stays the first model's, which never saw the validation
    /// items (what a blend weight is fitted with).
    public static func fit(_ data: Interactions, features: ItemFeatures?, config: TwoTowerConfig, validationFraction: Double = 0.1,
                           refit: Bool = false, cancel: CancellationToken? = nil,
                           progress: (EpochReport) -> Void = { _ in }) -> Result {
        try! fit(data, features: features, config: config, validation: ValidationCarve(fraction: validationFraction, seed: config.seed),
                 refit: refit, cancel: cancel, progress: progress)
    }

    public static func fit(_ data: Interactions, features: ItemFeatures?, config: TwoTowerConfig, validation carve: ValidationCarve,
                           refit: Bool = false, cancel: CancellationToken? = nil,
                           progress: (EpochReport) -> Void = { _ in }) throws -> Result {
        let v = try carve.carve(data)
        let train = v.train, truth = v.truth, valUsers = v.users
        let trainData = TwoTowerData(train, features: features)
        let seen = train.matrix()
        let trainer = TwoTowerTrainer(data: trainData, config: config)
        var reports: [EpochReport] = []
        let validate: ((TwoTowerModel) -> Double?)? = valUsers.isEmpty ? nil : { model in
            ndcg(TwoTowerTrainer.ranker(model, data: trainData), users: valUsers, truth: truth, seen: seen, threads: config.threads)
        }
        let outcome = trainer.train(cancel: cancel, validate: validate) { reports.append($0); progress($0) }
        // Serving vectors: every training interaction (validation included) is history.
        let full = TwoTowerData(data, features: features)
        var serving = trainer.model, refitEpochs = 0
        // The epoch whose parameters were kept (an interrupted run keeps its checkpoint as it is).
        let interrupted = if case .cancelled = outcome { true } else { false }
        if refit, !interrupted, let e = reports.last(where: \.best)?.epoch {
            var c = config
            c.epochs = e
            let again = TwoTowerTrainer(data: full, config: c)
            if case .completed = again.train(cancel: cancel, validate: nil, progress: { r in
                var r = r
                r.refit = true
                progress(r)
            }) {
                serving = again.model
                refitEpochs = e
            }
        }
        return Result(ranker: TwoTowerTrainer.ranker(serving, data: full),
                      validationRanker: TwoTowerTrainer.ranker(trainer.model, data: trainData), outcome: outcome, reports: reports,
                      validationUsers: valUsers.count, trainPairs: trainData.count, refitEpochs: refitEpochs)
    }
}

/// ALS and two-tower blended: score = (1 - lambda) s_ALS / sd_ALS + lambda s_2T / sd_2T, with
/// lambda fitted on the same validation split the two-tower stops on (both parts trained
/// without it, the two-tower's user histories without it too); the final blend uses ALS
/// retrained on all of train and the two-tower's full-history vectors.
///
/// Lambda follows the one-standard-error rule (Hastie, Tibshirani & Friedman, ESL 7.10): of
/// the weights whose validation NDCG@10 is within one standard error (of the paired per-user
/// difference) of the best, the one nearest the better single part. A mixture has to beat
/// that part by more than validation noise before it replaces it.
public enum BlendJob {
    public struct Result {
        public var ranker: StoredFactors
        public var lambda: Float
        public var grid: [(lambda: Float, ndcg: Double)]
        public var alsValidation: Double
        public var twoTowerValidation: Double
        public var twoTower: TwoTowerJob.Result
    }

    public static func fit(_ data: Interactions, features: ItemFeatures?, twoTower: TwoTowerConfig, als: ALSConfig,
                           confidence: Confidence, validation carve: ValidationCarve, refit: Bool = false,
                           cancel: CancellationToken? = nil, progress: (String) -> Void = { _ in }) throws -> Result {
        let tt = try TwoTowerJob.fit(data, features: features, config: twoTower, validation: carve, refit: refit,
                                     cancel: cancel) { progress("two-tower " + $0.line) }
        if case .cancelled = tt.outcome { throw TrainingError.cancelled }
        let v = try carve.carve(data)
        let train = v.train, truth = v.truth, users = v.users
        guard !users.isEmpty else { throw TrainingError.noData("no user has enough interactions to carve a validation split") }
        let seen = train.matrix()
        let cuiVal = train.confidenceMatrix(confidence)
        let alsVal = ALSModel(config: als, users: cuiVal.rows, items: cuiVal.cols)
        if case .cancelled = try alsVal.train(cuiVal, cancel: cancel) { throw TrainingError.cancelled }
        let sA = Blend.scoreScale(alsVal), sT = Blend.scoreScale(tt.validationRanker)
        var grid: [(lambda: Float, ndcg: Double)] = [], perUser: [[Double]] = []
        for step in 0...10 {
            let l = Float(step) / 10
            let b = Blend.combine([alsVal, tt.validationRanker], weights: [(1 - l) / sA, l / sT])
            let v = TwoTowerJob.perUserNDCG(b, users: users, truth: truth, seen: seen, threads: als.threads)
            perUser.append(v)
            grid.append((l, v.reduce(0, +) / Double(v.count)))
            progress(String(format: "blend: lambda %.1f  val NDCG@10 %.4f", l, grid.last!.ndcg))
        }
        let chosenStep = oneStandardError(perUser)
        let best = grid[chosenStep]
        progress(String(format: "blend: lambda %.1f chosen (best on validation %.1f; one-standard-error rule)", best.lambda,
                        grid.max { $0.ndcg < $1.ndcg }!.lambda))
        let cui = data.confidenceMatrix(confidence)
        let alsFull = ALSModel(config: als, users: cui.rows, items: cui.cols)
        if case .cancelled = try alsFull.train(cui, cancel: cancel) { throw TrainingError.cancelled }
        let ranker = Blend.combine([alsFull, tt.ranker], weights: [(1 - best.lambda) / Blend.scoreScale(alsFull),
                                                                   best.lambda / Blend.scoreScale(tt.ranker)])
        return Result(ranker: ranker, lambda: best.lambda, grid: grid, alsValidation: grid.first!.ndcg,
                      twoTowerValidation: grid.last!.ndcg, twoTower: tt)
    }

    /// The one-standard-error choice over a grid whose first and last entries are the single
    /// parts: per-user metric vectors (same users) per grid point -> the chosen index.
    public static func oneStandardError(_ perUser: [[Double]]) -> Int {
        let means = perUser.map { $0.reduce(0, +) / Double(max(1, $0.count)) }
        let best = means.indices.max { means[$0] < means[$1] }!
        let endpoint = means.first! >= means.last! ? 0 : means.count - 1
        let n = Double(perUser[best].count)
        func withinOneSE(_ i: Int) -> Bool {
            let d = zip(perUser[best], perUser[i]).map { $0 - $1 }
            let m = d.reduce(0, +) / n
            let sd = n > 1 ? (d.reduce(0) { $0 + ($1 - m) * ($1 - m) } / (n - 1)).squareRoot() : 0
            return m <= sd / n.squareRoot()
        }
        // Walk from the better endpoint towards the best weight; the first within one SE wins.
        let path = endpoint == 0 ? Array(0...best) : Array((best...endpoint).reversed())
        return path.first(where: withinOneSE) ?? best
    }
}
