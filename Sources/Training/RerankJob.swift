import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Scoring
import Evaluation
import Reranking

/// How the learned second stage is built.
public struct RerankConfig: Sendable {
    /// Candidate sources: als, ease, ease-recent (EASE's B applied to each user's `recentItems`
    /// newest items: what they are into lately; needs times), popularity, two-tower.
    public var sources = ["als", "ease", "popularity"]
    /// Candidates each source proposes per user.
    public var perSource = 100
    /// ease-recent: how many of a user's newest items it looks at.
    public var recentItems = RerankModel.defaultRecentItems
    public var als = ALSConfig(factors: 64, regularization: 0.05, iterations: 15, solver: .cg)
    public var confidence = Confidence(scheme: .linear, alpha: 1)
    public var ease = EASEConfig()
    public var twoTower = TwoTowerConfig()
    /// Content features of the items (the content-affinity feature and the two-tower source).
    public var features: ItemFeatures?
    /// Validation users the ranker is trained on at most (a seeded sample of blocks of 64
    /// consecutive users past it, so the sources score them in blocks).
    public var maxTrainingUsers = 20_000
    /// Labelled carves: with 2, when the validation users are fewer than `maxTrainingUsers`, a
    /// second carve of the first carve's train (the same scheme, the sources fit once more on
    /// what is left) adds as many training groups again. Small data starves the ranker of groups
    /// and its extra source fit is cheap; large data has groups enough and skips it.
    public var labelCarves = 2
    /// Boosters in the final ranker's bag, each trained on every group with its own seed and
    /// summed at prediction; 0 = auto: 5 when the validation users are fewer than
    /// `maxTrainingUsers` (small data: few groups, where one booster's seed moves the result
    /// most, and boosters are cheap); else 1: the first cross-fitting booster itself, cut at the
    /// chosen tree count (learnt from half of the sampled users: enough groups at that size, no
    /// third fit, and exactly the model the cross-fitted validation NDCG measured).
    public var bag = 0
    /// ALS iterations when the ALS source is refit on all of train, warm-started from the
    /// validation fit's factors (nil = a third of `als.iterations`, at least 3).
    public var refitIterations: Int?
    /// Most trees; the number kept is chosen by two-fold cross-fitting on the validation users.
    public var maxTrees = 400
    public var learningRate = 0.05
    public var maxDepth = 4
    public var threads = 2
    public var seed: UInt64 = 42

    public init() {}

    /// EASE is left out of the default sources past this many items (its fit is items^3).
    public static let easeDefaultItemLimit = 20_000

    /// The default sources for a data set: ALS, EASE (up to `easeDefaultItemLimit` items; with
    /// times also ease-recent), popularity.
    public static func defaultSources(items: Int, hasTimes: Bool) -> [String] {
        items <= easeDefaultItemLimit ? ["als", "ease"] + (hasTimes ? ["ease-recent"] : []) + ["popularity"] : ["als", "popularity"]
    }

    public static let knownSources = ["als", "ease", "ease-recent", "popularity", "two-tower"]
}

/// Fits the second stage: the sources are trained on train minus the validation carve, propose
/// candidates for the validation users, and LambdaMART (XGBoost `rank:ndcg`) learns to order
/// them from the carve's held-out items (the labels). The number of trees is chosen by
/// two-fold cross-fitting over the validation users (each half scored by a ranker trained on
/// the other half), which also gives the second stage a validation NDCG comparable with any
/// single ranker's. The sources are then refit on all of train and serve with the ranker.
public enum RerankJob {
    public struct Result {
        public var ranker: RerankModel
        public var trees: Int
        /// Cross-fitted validation NDCG@10 of the second stage at `trees`.
        public var validationNDCG: Double
        /// Each source's own validation NDCG@10 on the same users.
        public var sourceValidation: [String: Double]
        /// (trees, cross-fitted validation NDCG@10) checkpoints.
        public var curve: [(trees: Int, ndcg: Double)]
        /// Total gain of each feature in the final ranker, by name.
        public var importance: [String: Double]
        /// Share of validation users' held-out items among their candidates (the ceiling).
        public var candidateRecall: Double
        public var validationUsers: Int
        /// Boosters in the final ranker's bag, and the groups (users of both carves) they learnt from.
        public var bag: Int
        public var trainingGroups: Int
    }

    /// Trains the named sources on `data`; an ALS source in `warm` (same users and items) is
    /// continued from its factors for `refitIterations` instead of fit from scratch.
    public static func fitSources(_ names: [String], data: Interactions, config: RerankConfig, warm: [(String, Ranker)] = [],
                                  cancel: CancellationToken?, progress: (String) -> Void) throws -> [(String, Ranker)] {
        var out: [(String, Ranker)] = []
        var ease: EASEModel?
        func fitEASE() throws -> EASEModel {
            if let ease { return ease }
            var c = config.ease
            c.threads = config.threads
            let m = try EASEModel.fit(data.matrix(), config: c)
            ease = m
            return m
        }
        for name in names {
            if cancel?.isCancelled == true { throw TrainingError.cancelled }
            let t0 = Date()
            switch name {
            case "als":
                let cui = data.confidenceMatrix(config.confidence)
                var c = config.als
                c.computeLoss = false
                let m: ALSModel
                if let w = warm.first(where: { $0.0 == "als" })?.1 as? ALSModel,
                   w.userFactors.rows == cui.rows, w.itemFactors.rows == cui.cols, w.config.factors == c.factors {
                    c.iterations = config.refitIterations ?? max(3, c.iterations / 3)
                    m = ALSModel(config: c, userFactors: w.userFactors.copy(), itemFactors: w.itemFactors.copy())
                } else {
                    m = ALSModel(config: c, users: cui.rows, items: cui.cols)
                }
                if case .cancelled = try m.train(cui, cancel: cancel) { throw TrainingError.cancelled }
                out.append((name, m))
            case "ease":
                out.append((name, try fitEASE()))
            case "ease-recent":
                guard data.timestamps != nil else {
                    throw TrainingError.noData("the ease-recent source needs each interaction's time (--times FILE)")
                }
                out.append((name, try fitEASE().scoring(users: recentRows(data, last: config.recentItems))))
            case "popularity":
                out.append((name, PopularityModel(fit: data.matrix())))
            case "two-tower":
                var c = config.twoTower
                c.threads = config.threads
                let r = try TwoTowerJob.fit(data, features: config.features, config: c,
                                            validation: ValidationCarve(fraction: 0.1, seed: config.seed), refit: true, cancel: cancel)
                if case .cancelled = r.outcome { throw TrainingError.cancelled }
                out.append((name, r.ranker))
            default:
                throw TrainingError.noData("unknown candidate source '\(name)' (\(RerankConfig.knownSources.joined(separator: ", ")))")
            }
            progress(String(format: "rerank: source %@ on %d users x %d items in %.1fs", name, data.users.count, data.items.count,
                            Date().timeIntervalSince(t0)))
        }
        return out
    }

    /// Each user's `last` newest positive items (by time, ties by row order), as a binary matrix.
    public static func recentRows(_ data: Interactions, last: Int) -> CSR {
        let t = data.timestamps!
        var byUser = [[Int]](repeating: [], count: data.users.count)
        for r in 0..<data.count where data.weights[r] > 0 { byUser[Int(data.userIndex[r])].append(r) }
        var rows: [Int32] = [], cols: [Int32] = []
        for (u, list) in byUser.enumerated() {
            for r in list.sorted(by: { (t[$0], $0) > (t[$1], $1) }).prefix(last) { rows.append(Int32(u)); cols.append(data.itemIndex[r]) }
        }
        return CSR(rows: data.users.count, cols: data.items.count, rowIndex: rows, colIndex: cols, values: [Float](repeating: 1, count: rows.count))
    }

    /// Candidates for an arbitrary list of users (runs of consecutive users score together).
    static func candidates(_ sources: [Ranker], users: [Int32], exclude: CSR, perSource: Int) -> [[Candidate]] {
        var out: [[Candidate]] = []
        out.reserveCapacity(users.count)
        var start = 0
        let prepared = RerankModel.prepare(sources)
        while start < users.count {
            var end = start + 1
            while end < users.count && end - start < 256 && users[end] == users[end - 1] + 1 { end += 1 }
            let first = Int(users[start])
            out += RerankModel.candidates(sources: sources, users: first..<(first + end - start), exclude: exclude, perSource: perSource,
                                          prepared: prepared)
            start = end
        }
        return out
    }

    static func itemTokens(_ features: ItemFeatures?, items: IdMap) -> [[Int32]]? {
        features.map { f in items.raw.map { f.byId[$0] ?? [] } }
    }

    static func params(_ c: RerankConfig) -> [(String, String)] {
        [("objective", "rank:ndcg"), ("eta", "\(c.learningRate)"), ("max_depth", "\(c.maxDepth)"), ("min_child_weight", "1"),
         ("subsample", "0.8"), ("colsample_bytree", "0.8"), ("tree_method", "hist"), ("nthread", "\(c.threads)"),
         ("seed", "\(c.seed % 1_000_000)"), ("verbosity", "0")]
    }

    /// NDCG@10 of each user from predicted candidate scores, against the full held-out set.
    static func ndcg(_ lists: [[Candidate]], predicted: ArraySlice<Float>, truth: [Set<Int32>]) -> [Double] {
        var at = predicted.startIndex
        var out: [Double] = []
        for (list, t) in zip(lists, truth) {
            let order = list.indices.sorted { predicted[at + $0] != predicted[at + $1] ? predicted[at + $0] > predicted[at + $1] : $0 < $1 }
            let ranked = order.prefix(10).map { list[$0].item }
            out.append(Metrics.atK(10, lists: [ranked[...]], truth: [t], catalogSize: 1).1.ndcg[0])
            at += list.count
        }
        return out
    }

    /// One carve's labelled candidate rows: per user, the candidates, the held-out items, and
    /// the feature rows / labels laid out user after user.
    struct Labelled {
        var users: [Int32]
        var lists: [[Candidate]]
        var truth: [Set<Int32>]
        var x: [Float] = []
        var y: [Float] = []
        var offsets = [0]
        var sources: [(String, Ranker)]
    }

    static func label(_ v: Validation, users: [Int32], items: IdMap, config: RerankConfig, cancel: CancellationToken?,
                      progress: (String) -> Void) throws -> (Labelled, RerankFeatures) {
        let sources = try fitSources(config.sources, data: v.train, config: config, cancel: cancel, progress: progress)
        let exclude = v.train.matrix(), history = exclude.positivePart()
        let feats = RerankFeatures(sources: config.sources, stats: ItemStats(v.train), itemTokens: itemTokens(config.features, items: items))
        let t0 = Date()
        var l = Labelled(users: users, lists: candidates(sources.map(\.1), users: users, exclude: exclude, perSource: config.perSource),
                         truth: users.map { v.truth[$0]! }, sources: sources)
        for (r, u) in users.enumerated() {
            feats.append(l.lists[r], history: history.columns(ofRow: Int(u)), weights: history.values[history.rowRange(Int(u))], to: &l.x)
            for c in l.lists[r] { l.y.append(l.truth[r].contains(c.item) ? 1 : 0) }
            l.offsets.append(l.offsets.last! + l.lists[r].count)
        }
        progress(String(format: "rerank: candidates and features for %d users in %.1fs", users.count, Date().timeIntervalSince(t0)))
        return (l, feats)
    }

    /// Up to `limit` of `users` (sorted), as seeded random blocks of up to 64 consecutive ids.
    public static func sample(_ users: [Int32], limit: Int, using g: inout SeededGenerator) -> [Int32] {
        guard users.count > limit else { return users }
        var blocks: [ArraySlice<Int32>] = []
        var at = 0
        while at < users.count { blocks.append(users[at..<min(users.count, at + 64)]); at += 64 }
        var out: [Int32] = []
        for b in blocks.shuffled(using: &g) where out.count < limit { out += b.prefix(limit - out.count) }
        return out.sorted()
    }

    public static func fit(_ data: Interactions, config: RerankConfig, validation carve: ValidationCarve, cancel: CancellationToken? = nil,
                           progress: (String) -> Void = { _ in }) throws -> Result {
        let v = try carve.carve(data)
        guard !v.users.isEmpty else { throw ValidationCarve.CarveError.empty }
        var g = SeededGenerator(seed: config.seed ^ 0xF00D)
        let users = sample(v.users, limit: config.maxTrainingUsers, using: &g)
        progress("rerank: sources \(config.sources.joined(separator: ", ")) on the validation carve's train; \(users.count) validation users")
        let (primary, feats) = try label(v, users: users, items: data.items, config: config, cancel: cancel, progress: progress)
        let cols = feats.count
        // More labelled groups from a second carve when the first has fewer than the ranker can use.
        var extra: Labelled?
        if config.labelCarves > 1 && users.count < config.maxTrainingUsers {
            var second = carve
            second.seed &+= 1
            if let v2 = try? second.carve(v.train), !v2.users.isEmpty {
                let u2 = sample(v2.users, limit: config.maxTrainingUsers - users.count, using: &g)
                progress("rerank: a second labelled carve of the first one's train; \(u2.count) more users")
                extra = try label(v2, users: u2, items: data.items, config: config, cancel: cancel, progress: progress).0
            }
        }
        // Each source's own NDCG@10 on these users: its top-10 is its candidates by rank.
        var sourceValidation: [String: Double] = [:]
        for (s, name) in config.sources.enumerated() {
            let per = zip(primary.lists, primary.truth).map { list, t -> Double in
                let ranked = list.filter { $0.ranks[s] != nil }.sorted { $0.ranks[s]! < $1.ranks[s]! }.prefix(10).map(\.item)
                return Metrics.atK(10, lists: [ranked[...]], truth: [t], catalogSize: 1).1.ndcg[0]
            }
            sourceValidation[name] = per.reduce(0, +) / Double(max(1, per.count))
        }
        var found = 0, held = 0
        for (list, t) in zip(primary.lists, primary.truth) { found += list.filter { t.contains($0.item) }.count; held += t.count }
        let candidateRecall = Double(found) / Double(max(1, held))
        progress(String(format: "rerank: %d candidate rows x %d features; candidates hold %.1f%% of the held-out items; sources' validation NDCG@10: %@",
                        primary.y.count + (extra?.y.count ?? 0), cols, 100 * candidateRecall,
                        config.sources.map { String(format: "%@ %.4f", $0, sourceValidation[$0]!) }.joined(separator: ", ")))
        // Rows of chosen users of a carve (users whose candidates hold no held-out item teach nothing).
        func teaches(_ l: Labelled, _ r: Int) -> Bool { l.lists[r].count > 0 && l.y[l.offsets[r]..<l.offsets[r + 1]].contains(1) }
        func rows(_ parts: [(Labelled, [Int])]) -> (x: [Float], y: [Float], groups: [Int]) {
            var xs: [Float] = [], ys: [Float] = [], gs: [Int] = []
            for (l, idx) in parts {
                for r in idx where teaches(l, r) {
                    xs += l.x[(l.offsets[r] * cols)..<(l.offsets[r + 1] * cols)]
                    ys += l.y[l.offsets[r]..<l.offsets[r + 1]]
                    gs.append(l.lists[r].count)
                }
            }
            return (xs, ys, gs)
        }
        // Two folds of users (a user's groups from both carves in one fold); each fold's ranker
        // scores the other fold's first-carve groups at every checkpoint.
        let order = Array(users.indices).shuffled(using: &g)
        var foldOf: [Int32: Int] = [:]
        for (k, r) in order.enumerated() { foldOf[users[r]] = k < order.count / 2 ? 0 : 1 }
        let folds = (0..<2).map { f in users.indices.filter { foldOf[users[$0]] == f } }
        let extraFolds = (0..<2).map { f in extra.map { e in e.users.indices.filter { (foldOf[e.users[$0]] ?? Int(e.users[$0] & 1)) == f } } ?? [] }
        let step = max(10, config.maxTrees / 20)
        let checkpoints = Array(stride(from: step, through: config.maxTrees, by: step))
        var sums = [Double](repeating: 0, count: checkpoints.count)
        var scored = 0
        var foldBoosters: [Booster] = []
        let t0 = Date()
        for f in 0..<2 {
            let train = rows([(primary, folds[f])] + (extra.map { [($0, extraFolds[f])] } ?? [])), other = folds[1 - f]
            guard !train.groups.isEmpty, !other.isEmpty else { continue }
            let b = try Booster.train(features: train.x, rows: train.y.count, cols: cols, labels: train.y, groups: train.groups,
                                      params: params(config), rounds: config.maxTrees) { _ in cancel?.isCancelled != true }
            if cancel?.isCancelled == true { throw TrainingError.cancelled }
            foldBoosters.append(b)
            var ox: [Float] = []
            for r in other { ox += primary.x[(primary.offsets[r] * cols)..<(primary.offsets[r + 1] * cols)] }
            let otherLists = other.map { primary.lists[$0] }, otherTruth = other.map { primary.truth[$0] }
            for (c, trees) in checkpoints.enumerated() {
                let p = try b.predict(ox, rows: ox.count / cols, trees: trees)
                sums[c] += ndcg(otherLists, predicted: p[...], truth: otherTruth).reduce(0, +)
            }
            scored += other.count
            progress(String(format: "rerank: fold %d/2 trained (%d trees, %d groups) and scored in %.1fs", f + 1, config.maxTrees,
                            train.groups.count, Date().timeIntervalSince(t0)))
        }
        let curve = zip(checkpoints, sums).map { (trees: $0, ndcg: $1 / Double(max(1, scored))) }
        let best = curve.max { $0.ndcg < $1.ndcg }!
        let everyone = [(primary, Array(users.indices))] + (extra.map { [($0, Array($0.users.indices))] } ?? [])
        // The training groups, counted without copying their rows (the large-data path trains nothing more).
        let groups = everyone.reduce(0) { n, part in n + part.1.filter { teaches(part.0, $0) }.count }
        let large = v.users.count >= config.maxTrainingUsers
        var boosters: [Booster] = []
        if config.bag == 0 && large && !foldBoosters.isEmpty {
            // Large data: the first fold's booster, cut at the chosen count, is the ranker: the very
            // model the cross-fitted validation NDCG measures (half the training users, enough groups).
            boosters = [try foldBoosters[0].prefix(best.trees)]
            progress(String(format: "rerank: %d trees chosen (cross-fitted validation NDCG@10 %.4f); the first fold's booster serves",
                            best.trees, best.ndcg))
        } else {
            let bag = config.bag > 0 ? config.bag : (large ? 1 : 5)
            progress(String(format: "rerank: %d trees chosen (cross-fitted validation NDCG@10 %.4f); a bag of %d on %d groups",
                            best.trees, best.ndcg, bag, groups))
            let all = rows(everyone)
            for k in 0..<bag {
                var c = config
                c.seed = config.seed &+ UInt64(k)
                boosters.append(try Booster.train(features: all.x, rows: all.y.count, cols: cols, labels: all.y, groups: all.groups,
                                                  params: params(c), rounds: best.trees) { _ in cancel?.isCancelled != true })
                if cancel?.isCancelled == true { throw TrainingError.cancelled }
            }
        }
        let bag = boosters.count
        var importance: [String: Double] = [:]
        for b in boosters { for (i, gain) in try b.gainByFeature() { importance[feats.names[i], default: 0] += gain / Double(bag) } }
        // The sources again, on everything (ALS continued from its validation fit); the ranker serves on top of them.
        let fullSources = try fitSources(config.sources, data: data, config: config, warm: primary.sources, cancel: cancel, progress: progress)
        let serving = RerankFeatures(sources: config.sources, stats: ItemStats(data), itemTokens: feats.itemTokens)
        let model = RerankModel(sources: fullSources, perSource: config.perSource, seen: data.matrix(), features: serving, boosters: boosters)
        return Result(ranker: model, trees: best.trees, validationNDCG: best.ndcg, sourceValidation: sourceValidation, curve: curve,
                      importance: importance, candidateRecall: candidateRecall, validationUsers: users.count,
                      bag: bag, trainingGroups: groups)
    }
}
