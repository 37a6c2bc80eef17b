import XCTest
import TestSupport
import Interactions
import Rankers
import Reranking
import Artifacts
import LinearAlgebra
import Training
import Rescoring
import LiveRanking
import Transcoding
import Studies

final class TwoTowerJobTests: XCTestCase {
    /// 40 users x 60 items: user u likes items of its group (u % 4), row r at time (r * 7919) % 1000.
    func data(times: Bool) -> Interactions {
        var g = SeededGenerator(seed: 3)
        var u: [Int32] = [], i: [Int32] = [], t: [Int64] = []
        for user in 0..<40 {
            var items = Set<Int32>()
            while items.count < 12 { items.insert(Int32((user % 4) * 15) + Int32(g.next() % 15)) }
            for item in items.sorted() {
                u.append(Int32(user)); i.append(item); t.append(Int64((u.count * 7919) % 1000))
            }
        }
        return Interactions(users: IdMap(raw: (0..<40).map(String.init)), items: IdMap(raw: (0..<60).map(String.init)),
                            userIndex: u, itemIndex: i, weights: [Float](repeating: 1, count: u.count), timestamps: times ? t : nil)
    }

    func testValidationHoldsOutEachUsersLatestItemsWhenTimesAreKnown() {
        let d = data(times: true)
        let (train, val) = TwoTowerJob.carveValidation(d, fraction: 0.25, seed: 1)
        XCTAssertEqual(train.count + val.count, d.count)
        XCTAssertEqual(Set(train).intersection(val), [])
        for user in Int32(0)..<40 {
            let rows = (0..<d.count).filter { d.userIndex[$0] == user }
            let latest = rows.sorted { (d.timestamps![$0], $0) < (d.timestamps![$1], $1) }.suffix(3)
            XCTAssertEqual(Set(val.filter { d.userIndex[$0] == user }), Set(latest), "user \(user)")
        }
        // Without times: a seeded random 3 per user, the same for the same seed, another for another.
        let plain = data(times: false)
        let a = TwoTowerJob.carveValidation(plain, fraction: 0.25, seed: 1).validation
        XCTAssertEqual(a, TwoTowerJob.carveValidation(plain, fraction: 0.25, seed: 1).validation)
        XCTAssertNotEqual(a, TwoTowerJob.carveValidation(plain, fraction: 0.25, seed: 2).validation)
        for user in Int32(0)..<40 { XCTAssertEqual(a.filter { plain.userIndex[$0] == user }.count, 3) }
        XCTAssertNotEqual(Set(a), Set(val), "random and chronological hold-outs differ on this data")
    }

    /// The schemes: chrono needs times and takes the latest; random ignores times; leave-k holds
    /// exactly k (the latest with times); non-positive rows stay in train.
    func testValidationCarveSchemes() throws {
        let d = data(times: true)
        let chrono = try ValidationCarve(scheme: .chrono, fraction: 0.25, seed: 1).rows(d)
        XCTAssertEqual(chrono.validation, TwoTowerJob.carveValidation(d, fraction: 0.25, seed: 1).validation)
        let random = try ValidationCarve(scheme: .random, fraction: 0.25, seed: 1).rows(d)
        XCTAssertEqual(random.validation, TwoTowerJob.carveValidation(data(times: false), fraction: 0.25, seed: 1).validation)
        let leave = try ValidationCarve(scheme: .leaveK, k: 2, seed: 1).rows(d)
        for user in Int32(0)..<40 {
            let rows = (0..<d.count).filter { d.userIndex[$0] == user }
            let latest = rows.sorted { (d.timestamps![$0], $0) < (d.timestamps![$1], $1) }.suffix(2)
            XCTAssertEqual(Set(leave.validation.filter { d.userIndex[$0] == user }), Set(latest))
        }
        XCTAssertThrowsError(try ValidationCarve(scheme: .chrono).rows(data(times: false))) {
            XCTAssertTrue("\($0)".contains("--times"), "\($0)")
        }
        XCTAssertEqual(ValidationCarve().resolved(for: d), .chrono)
        XCTAssertEqual(ValidationCarve().resolved(for: data(times: false)), .random)
        var neg = d
        neg.weights[0] = -1
        let carved = try ValidationCarve(scheme: .chrono, fraction: 0.25).rows(neg)
        XCTAssertTrue(carved.train.contains(0), "a negative row is training evidence, never a validation label")
    }

    /// Times from a CSV with a header naming the column, CRLF line ends (MovieLens ratings.csv).
    func testPairTimesReadsRatingsCSVAndNamesMissingPairs() throws {
        let dir = Fixtures.tempDir("times")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Fixtures.write("userId,movieId,rating,timestamp\r\n1,10,4.0,100\r\n1,20,5.0,90\r\n2,10,3.0,70\r\n", to: dir + "/r.csv")
        let t = try PairTimes(path: dir + "/r.csv")
        XCTAssertEqual(t.time(user: "1", item: "20"), 90)
        XCTAssertEqual(t.count, 3)
        let data = Interactions(users: IdMap(raw: ["1", "2"]), items: IdMap(raw: ["10", "20"]), userIndex: [0, 0, 1], itemIndex: [0, 1, 0],
                                weights: [1, 1, 1])
        XCTAssertEqual(try t.attach(to: data, path: "r.csv").timestamps, [100, 90, 70])
        let more = Interactions(users: IdMap(raw: ["1", "2"]), items: IdMap(raw: ["10", "20"]), userIndex: [0, 1], itemIndex: [0, 1],
                                weights: [1, 1])
        XCTAssertThrowsError(try t.attach(to: more, path: "r.csv")) { XCTAssertTrue("\($0)".contains("user 2, item 20"), "\($0)") }
        Fixtures.write("1,10,x\n", to: dir + "/bad.csv")
        XCTAssertThrowsError(try PairTimes(path: dir + "/bad.csv").attach(to: more, path: "bad.csv"))
    }

    /// The second stage on planted groups: it trains, proposes only the sources' candidates,
    /// records importances, and a stored copy scores exactly like the trained one.
    func testSecondStageTrainsStoresAndScoresLikeItsStoredCopy() throws {
        let d = data(times: true)
        var c = RerankConfig()
        c.sources = ["als", "ease", "ease-recent", "popularity"]
        c.perSource = 8
        c.maxTrees = 20
        c.als = ALSConfig(factors: 8, regularization: 0.1, iterations: 5, solver: .cg, threads: 2)
        c.ease = EASEConfig(lambda: 5, threads: 2)
        let r = try RerankJob.fit(d, config: c, validation: ValidationCarve(scheme: .chrono, fraction: 0.25))
        XCTAssertFalse(r.importance.isEmpty)
        // Few validation users: a second labelled carve adds groups, and the auto bag is 5 boosters.
        XCTAssertEqual(r.bag, 5)
        XCTAssertEqual((r.ranker as RerankModel).boosters.count, 5)
        XCTAssertGreaterThan(r.trainingGroups, r.validationUsers, "the second carve's users add groups")
        // The ALS source was continued from the validation fit: a third of its iterations, at least 3.
        XCTAssertEqual((r.ranker.sources[0] as! ALSModel).config.iterations, 3)
        XCTAssertTrue(r.curve.allSatisfy { $0.ndcg >= 0 && $0.ndcg <= 1 })
        XCTAssertGreaterThan(r.validationNDCG, r.sourceValidation["popularity"]!, "the ranker beats popularity on planted groups")
        let model = r.ranker
        let n = d.items.count
        let s = Matrix(rows: 5, cols: n)
        model.score(users: 0..<5, items: 0..<n, into: s.storage, ld: n)
        let cands = model.candidates(users: 0..<5)
        for u in 0..<5 {
            let proposed = Set(cands[u].map { Int($0.item) })
            for i in 0..<n { XCTAssertEqual(s[u, i].isFinite, proposed.contains(i), "user \(u) item \(i)") }
            XCTAssertTrue(proposed.isDisjoint(with: model.seen.columns(ofRow: u).map(Int.init)), "seen items are never candidates")
        }
        let dir = Fixtures.tempDir("rerank")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var spec = TrainingSpec(model: .rerank)
        spec.rerank = c
        let trained = TrainedModel(ranker: model, params: [:])
        let run = TrainingPipeline.record(id: "rr", spec: spec, trained: trained,
                                          source: .init(paths: [], format: "test", fingerprint: "x", rows: d.count, users: d.users.count,
                                                        items: n, nnz: 0), importSeconds: 0)
        try ModelStore.save(model, users: d.users, items: d.items, seen: model.seen, run: run, to: dir + "/m")
        let loaded = try ModelStore.load(dir + "/m")
        let again = Matrix(rows: 5, cols: n)
        loaded.ranker.score(users: 0..<5, items: 0..<n, into: again.storage, ld: n)
        XCTAssertEqual(loaded.ranker.kind, "rerank")
        XCTAssertEqual((loaded.ranker as! RerankModel).boosters.count, 5, "the whole bag is stored")
        for k in 0..<(5 * n) { XCTAssertEqual(s.storage[k], again.storage[k], "entry \(k)") }
    }

    /// Past `maxTrainingUsers` validation users (large data): no second carve, and the final
    /// ranker is the first cross-fitting booster cut at the chosen tree count (no third fit).
    func testOnLargeDataTheFirstFoldBoosterCutAtTheChosenTreesServes() throws {
        let d = data(times: true)
        var c = RerankConfig()
        c.sources = ["als", "popularity"]
        c.perSource = 8
        c.maxTrees = 40
        c.maxTrainingUsers = 20
        c.als = ALSConfig(factors: 8, regularization: 0.1, iterations: 5, solver: .cg, threads: 2)
        let r = try RerankJob.fit(d, config: c, validation: ValidationCarve(scheme: .chrono, fraction: 0.25))
        XCTAssertEqual(r.validationUsers, 20)
        XCTAssertEqual(r.bag, 1)
        XCTAssertEqual(r.ranker.boosters.map(\.rounds), [r.trees])
        XCTAssertLessThanOrEqual(r.trainingGroups, r.validationUsers, "one carve only: at most one group per sampled user")
        // Cutting keeps the first trees: the cut booster predicts what the full one does at that limit.
        let x = [Float](repeating: 0.5, count: 3 * r.ranker.features.count)
        let full = try Booster.train(features: x, rows: 3, cols: r.ranker.features.count, labels: [1, 0, 0], groups: [3],
                                     params: [("objective", "rank:ndcg"), ("max_depth", "2"), ("verbosity", "0")], rounds: 6)
        XCTAssertEqual(try full.prefix(4).predict(x, rows: 3), try full.predict(x, rows: 3, trees: 4))
        XCTAssertEqual(try full.prefix(4).rounds, 4)
    }

    /// A candidate's standardised score is (s - mean) / sd over the user's unseen items, each
    /// source's score is carried for every candidate, and the union holds each source's top-C:
    /// all against a brute-force computation.
    func testCandidatesCarryEverySourcesScoreStandardisedOverUnseenItems() {
        let d = data(times: false)
        let seen = d.matrix()
        let als = ALSModel(config: ALSConfig(factors: 6, regularization: 0.1, iterations: 3, solver: .cg, threads: 1),
                           users: seen.rows, items: seen.cols)
        _ = try? als.train(d.confidenceMatrix(Confidence(scheme: .linear, alpha: 1)))
        let pop = PopularityModel(fit: seen)
        let sources: [Ranker] = [als, pop]
        let n = seen.cols
        let lists = RerankModel.candidates(sources: sources, users: 3..<9, exclude: seen, perSource: 5)
        for (r, u) in (3..<9).enumerated() {
            let seenItems = Set(seen.columns(ofRow: u).map(Int.init))
            for (s, source) in sources.enumerated() {
                let row = Matrix(rows: 1, cols: n)
                source.score(users: u..<(u + 1), items: 0..<n, into: row.storage, ld: n)
                let unseen = (0..<n).filter { !seenItems.contains($0) }
                let vals = unseen.map { Double(row.storage[$0]) }
                let mu = vals.reduce(0, +) / Double(vals.count)
                let sd = max((vals.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(vals.count)).squareRoot(), 1e-12)
                let order = unseen.sorted { row.storage[$0] != row.storage[$1] ? row.storage[$0] > row.storage[$1] : $0 < $1 }
                let top = order.prefix(5)
                let proposed = lists[r].filter { $0.ranks[s].map { $0 <= 5 } ?? false }
                XCTAssertEqual(Set(proposed.map { Int($0.item) }).count, 5)
                XCTAssertEqual(proposed.map { row.storage[Int($0.item)] }.sorted(), top.map { row.storage[$0] }.sorted(), "user \(u) source \(s)")
                for c in lists[r] {
                    // Past C, the rank is still the item's place in the source's list, up to 4 x C.
                    let place = order.firstIndex(of: Int(c.item))! + 1
                    if let k = c.ranks[s] {
                        XCTAssertEqual(row.storage[order[k - 1]], row.storage[Int(c.item)], "user \(u) source \(s) rank \(k)")
                    } else {
                        XCTAssertGreaterThan(place, 5 * RerankModel.rankDepth - 1)
                    }
                    XCTAssertEqual(c.proposedBy, c.ranks.filter { $0.map { $0 <= 5 } ?? false }.count)
                    XCTAssertEqual(c.scores[s], row.storage[Int(c.item)])
                    XCTAssertEqual(Double(c.standardized[s]), (Double(row.storage[Int(c.item)]) - mu) / sd, accuracy: 1e-3 * max(1, abs(mu / sd)))
                    XCTAssertFalse(seenItems.contains(Int(c.item)))
                }
            }
        }
    }

    /// The ranker's training users past the limit: blocks of consecutive ids, sorted, distinct,
    /// a subset, exactly the limit; all of them below it.
    func testTrainingUsersAreSampledInBlocksOfConsecutiveIds() {
        let users = (0..<1000).filter { $0 % 3 != 0 }.map(Int32.init)
        var g = SeededGenerator(seed: 9)
        let s = RerankJob.sample(users, limit: 200, using: &g)
        XCTAssertEqual(s.count, 200)
        XCTAssertEqual(s, s.sorted())
        XCTAssertEqual(Set(s).count, 200)
        XCTAssertTrue(Set(s).isSubset(of: Set(users)))
        // Mostly runs: far fewer gaps (in positions of `users`) than a uniform sample would leave.
        let pos = Dictionary(uniqueKeysWithValues: users.enumerated().map { ($1, $0) })
        let gaps = zip(s, s.dropFirst()).filter { pos[$1]! != pos[$0]! + 1 }.count
        XCTAssertLessThanOrEqual(gaps, 200 / 64 + 1)
        var g2 = SeededGenerator(seed: 9)
        XCTAssertEqual(RerankJob.sample(users, limit: 5000, using: &g2), users)
    }

    /// Refitting the ALS source on all of train continues the validation fit's factors (which it
    /// copies, leaving them as they were) for `refitIterations`, and lands as close to a solution
    /// as a fit from scratch.
    func testTheALSSourceRefitContinuesFromTheValidationFit() throws {
        let d = data(times: false)
        var c = RerankConfig()
        c.als = ALSConfig(factors: 6, regularization: 0.1, iterations: 9, solver: .cg, threads: 1)
        let cui = d.confidenceMatrix(c.confidence)
        let warm = ALSModel(config: c.als, users: cui.rows, items: cui.cols)
        _ = try warm.train(cui)
        let before = warm.itemFactors.values
        let cold = try RerankJob.fitSources(["als"], data: d, config: c, cancel: nil) { _ in }[0].1 as! ALSModel
        let hot = try RerankJob.fitSources(["als"], data: d, config: c, warm: [("als", warm)], cancel: nil) { _ in }[0].1 as! ALSModel
        XCTAssertEqual(cold.config.iterations, 9)
        XCTAssertEqual(hot.config.iterations, 3)
        XCTAssertEqual(warm.itemFactors.values, before, "the validation fit's factors are copied, not moved")
        XCTAssertNotEqual(hot.itemFactors.values, before)
        let lossHot = hot.loss(cui), lossCold = cold.loss(cui)
        XCTAssertLessThanOrEqual(lossHot, lossCold * 1.05, "warm-started loss \(lossHot) vs from scratch \(lossCold)")
    }

    func testRefitTrainsTheChosenEpochCountOnEverything() {
        let d = data(times: true)
        var c = TwoTowerConfig()
        c.dim = 8; c.hidden = 16; c.epochs = 6; c.batch = 32; c.patience = 6; c.threads = 1; c.featureBuckets = 16
        c.learningRate = 0.02
        var plainReports: [EpochReport] = [], refitReports: [EpochReport] = []
        let plain = TwoTowerJob.fit(d, features: nil, config: c, validationFraction: 0.25) { plainReports.append($0) }
        let refit = TwoTowerJob.fit(d, features: nil, config: c, validationFraction: 0.25, refit: true) { refitReports.append($0) }
        XCTAssertEqual(plain.refitEpochs, 0)
        let best = plainReports.last(where: \.best)!.epoch
        XCTAssertEqual(refit.refitEpochs, best)
        // The selection run is the same either way; then `best` refit epochs without validation.
        XCTAssertEqual(refitReports.filter { !$0.refit }.map(\.loss), plainReports.map(\.loss))
        XCTAssertEqual(refitReports.filter(\.refit).map(\.epoch), Array(1...best))
        XCTAssertTrue(refitReports.filter(\.refit).allSatisfy { $0.validationNDCG == nil && $0.line.hasPrefix("refit epoch") })
        // Blend weights are fitted with the model that never saw validation items: unchanged.
        XCTAssertEqual(refit.validationRanker.userFactors.values, plain.validationRanker.userFactors.values)
        // The served model is another one, trained on more pairs.
        XCTAssertNotEqual(refit.ranker.itemFactors.values, plain.ranker.itemFactors.values)
    }
}
