import XCTest
import LinearAlgebra
import Interactions
@testable import Rankers

final class TwoTowerTests: XCTestCase {
    /// 5 users, 7 items with features; a batch with a repeated item (masked as a false negative)
    /// and uniform negatives.
    func tiny(logQ: Bool = true) -> (TwoTowerTrainer, [Int32], [Int32], [[Int32]], [Int32]) {
        var c = TwoTowerConfig()
        c.dim = 4; c.hidden = 5; c.featureBuckets = 8; c.temperature = 0.5; c.logQ = logQ
        c.history = 3; c.uniformNegatives = 2; c.batch = 4; c.seed = 3; c.historyGradient = true
        let userItems: [[Int32]] = [[0, 1, 2], [2, 3], [4, 5, 6, 0], [1], [3, 6]]
        var pu: [Int32] = [], pi: [Int32] = []
        for (u, l) in userItems.enumerated() { for i in l { pu.append(Int32(u)); pi.append(i) } }
        let data = TwoTowerData(users: 5, items: 7, pairUser: pu, pairItem: pi, userItems: userItems,
                                itemFeatures: [[0, 3], [1], [], [2, 5, 7], [4], [6, 0], [1, 2]])
        let t = TwoTowerTrainer(data: data, config: c)
        // Larger weights than the initialisation so every path carries a visible gradient.
        var g = SeededGenerator(seed: 9)
        for p in t.params.all { for i in 0..<p.count { p.storage[i] = Float(g.normal() * 0.4) } }
        return (t, [0, 2, 4, 1], [1, 4, 3, 2], [[0, 2], [5, 6, 0], [6], [2]], [2, 5])
    }

    func testGradientsMatchFiniteDifferences() {
        for logQ in [true, false] {
            let (t, users, items, hist, neg) = tiny(logQ: logQ)
            let s = TwoTowerTrainer.Scratch(rows: 4, cols: 6, d: 4, hidden: 5, history: 3)
            _ = t.batchLoss(users: users, items: items, histories: hist, negatives: neg, s: s, backward: true)
            let analytic = t.grads.all.map(\.values)
            let eps: Float = 1e-3
            var checked = 0, worst: Float = 0
            for (pi, p) in t.params.all.enumerated() {
                for i in stride(from: 0, to: p.count, by: max(1, p.count / 12)) {
                    let old = p.storage[i]
                    p.storage[i] = old + eps
                    let up = t.batchLoss(users: users, items: items, histories: hist, negatives: neg, s: s, backward: false)
                    p.storage[i] = old - eps
                    let down = t.batchLoss(users: users, items: items, histories: hist, negatives: neg, s: s, backward: false)
                    p.storage[i] = old
                    let numeric = Float((up - down) / Double(2 * eps))
                    let a = analytic[pi][i]
                    let err = abs(numeric - a) / max(1e-2, abs(numeric) + abs(a))
                    worst = max(worst, err)
                    XCTAssertLessThan(err, 2e-2, "param \(pi)[\(i)]: analytic \(a), numeric \(numeric) (logQ \(logQ))")
                    if abs(a) > 1e-4 { checked += 1 }
                }
            }
            XCTAssertGreaterThan(checked, 40, "too few non-zero gradients checked")
        }
    }

    /// Each positive's masked columns (the other columns holding its item) against brute force,
    /// on batches with heavy repeats and with extra negatives.
    func testDuplicateMasksMatchBruteForce() {
        let (t, _, _, _, _) = tiny()
        var g = SeededGenerator(seed: 11)
        for (b, cols, items) in [(64, 64, 5), (50, 70, 40), (300, 300, 100_000), (1, 3, 2)] {
            let colItems = (0..<cols).map { _ in Int32(g.next() % UInt64(items)) }
            let masks = colItems.withUnsafeBufferPointer { t.duplicateMasks(b: b, cols: cols, colItems: $0.baseAddress!) }
            XCTAssertEqual(masks.start.count, b + 1)
            for r in 0..<b {
                let expected = (0..<cols).filter { $0 != r && colItems[$0] == colItems[r] }.map { Int32($0) }
                XCTAssertEqual(Array(masks.cols[masks.start[r]..<masks.start[r + 1]]), expected, "b \(b) row \(r)")
            }
        }
    }

    func testTowersOutputUnitVectorsAndUnseenItemsUseFeatures() {
        let (t, _, _, _, _) = tiny()
        let known = t.model.embedItems([3], features: [[2, 5, 7]])
        let cold = t.model.embedItems([-1], features: [[2, 5, 7]])
        let bare = t.model.embedItems([-1], features: [[]])
        for m in [known, cold] { XCTAssertEqual(BLAS.dot(4, m.row(0), m.row(0)), 1, accuracy: 1e-5) }
        // A cold item with the known item's tags lands nearer to it than a featureless one.
        XCTAssertGreaterThan(BLAS.dot(4, known.row(0), cold.row(0)), BLAS.dot(4, known.row(0), bare.row(0)))
    }

    func testTrainingRecoversPlantedTopicsAndKeepsTheBestEpoch() {
        // 3 topics x 10 items; each user likes items of one topic; features name the topic.
        var userItems: [[Int32]] = [], pu: [Int32] = [], pi: [Int32] = []
        var g = SeededGenerator(seed: 1)
        for u in 0..<120 {
            let topic = u % 3
            var l: [Int32] = []
            while l.count < 6 { let i = Int32(topic * 10 + Int(g.next() % 10)); if !l.contains(i) { l.append(i) } }
            userItems.append(l)
            for i in l { pu.append(Int32(u)); pi.append(i) }
        }
        let feats = (0..<30).map { [Int32($0 / 10)] }
        let data = TwoTowerData(users: 120, items: 30, pairUser: pu, pairItem: pi, userItems: userItems, itemFeatures: feats)
        var c = TwoTowerConfig()
        c.dim = 8; c.hidden = 16; c.batch = 32; c.epochs = 15; c.learningRate = 0.02; c.featureBuckets = 16; c.patience = 20
        c.temperature = 0.05; c.weightDecay = 1e-5
        c.threads = 1
        let t = TwoTowerTrainer(data: data, config: c)
        func accuracy(_ m: TwoTowerModel) -> Double {
            let r = TwoTowerTrainer.ranker(m, data: data)
            var right = 0
            for u in 0..<120 {
                var best = -Float.infinity, arg = 0
                for i in 0..<30 where !userItems[u].contains(Int32(i)) {
                    let sc = BLAS.dot(8, r.userFactors.row(u), r.itemFactors.row(i))
                    if sc > best { best = sc; arg = i }
                }
                if arg / 10 == u % 3 { right += 1 }
            }
            return Double(right) / 120
        }
        var losses: [Double] = []
        var bestSeen = -1.0, bestParams: [[Float]] = []
        let outcome = t.train(validate: { m in
            let a = accuracy(m)
            if a > bestSeen { bestSeen = a; bestParams = t.params.all.map(\.values) }
            return a
        }) { losses.append($0.loss) }
        XCTAssertEqual(outcome, .completed)
        XCTAssertLessThan(losses.last!, losses.first! * 0.8, "\(losses)")
        // The parameters left are the best epoch's, and that epoch ranks each user's topic first.
        XCTAssertEqual(t.params.all.map(\.values), bestParams)
        let right = Int(accuracy(t.model) * 120)
        XCTAssertGreaterThan(right, 110)
    }

    func testHistoriesAreUniformSamplesOfTheOtherItems() {
        let out = UnsafeMutablePointer<Int32>.allocate(capacity: 200), tmp = UnsafeMutablePointer<Int32>.allocate(capacity: 200)
        defer { out.deallocate(); tmp.deallocate() }
        var g = SeededGenerator(seed: 5)
        func sample(_ items: [Int32], _ exclude: Int32, _ limit: Int) -> [Int32] {
            let n = items.withUnsafeBufferPointer {
                TwoTowerTrainer.sampleHistory($0, excluding: exclude, limit: limit, into: out, tmp: tmp, using: &g)
            }
            return (0..<n).map { out[$0] }
        }
        // Few items: all of them but the target, in order.
        XCTAssertEqual(sample([4, 9, 2], 9, 5), [4, 2])
        XCTAssertEqual(sample([4, 9, 2], 3, 5), [4, 9, 2])
        // Many: `limit` distinct items, never the target, each about equally often; a short list
        // (shuffled copy) and a long one (rejection of repeats) alike.
        for size in [20, 100] {
            let items = (0..<Int32(size)).map { $0 * 3 }
            var counts: [Int32: Int] = [:]
            let draws = 200 * size
            for _ in 0..<draws {
                let picked = sample(items, 21, 5)
                XCTAssertEqual(picked.count, 5)
                XCTAssertEqual(Set(picked).count, 5)
                for i in picked { counts[i, default: 0] += 1 }
            }
            XCTAssertNil(counts[21])
            let expected = Double(draws * 5) / Double(size - 1)
            for i in items where i != 21 {
                XCTAssertEqual(Double(counts[i] ?? 0), expected, accuracy: 0.15 * expected, "size \(size), item \(i)")
            }
        }
    }

    func testTrainingIsDeterministicForASeed() {
        func run(threads: Int) -> [[Float]] {
            let (t0, _, _, _, _) = tiny()
            var c = t0.model.config
            c.threads = threads; c.epochs = 3
            let t = TwoTowerTrainer(data: t0.data, config: c)
            _ = t.train()
            return t.params.all.map(\.values)
        }
        let a = run(threads: 1), b = run(threads: 1)
        XCTAssertEqual(a, b)
        let (t0, _, _, _, _) = tiny()
        XCTAssertNotEqual(a, TwoTowerTrainer(data: t0.data, config: t0.model.config).params.all.map(\.values), "training moved nothing")
        // Histories are drawn per example from generators of their own, so two threads draw the same.
        XCTAssertEqual(run(threads: 2), a)
    }

    func testCtrlCKeepsTheBestEpochSoFar() {
        let (t, _, _, _, _) = tiny()
        let token = CancellationToken()
        var best: [[Float]] = []
        var scores = [0.3, 0.5, 0.4]
        let outcome = t.train(cancel: token, validate: { _ in
            let v = scores.removeFirst()
            if v == 0.5 { best = t.params.all.map(\.values) }
            return v
        }) { report in
            if report.epoch == 3 { token.cancel() }
        }
        // Cancelled during epoch 4: the best of the three finished epochs (the second) is kept.
        XCTAssertEqual(outcome, .cancelled(bestEpoch: 2))
        XCTAssertEqual(t.params.all.map(\.values), best)
    }

    func testBlendScoresAreTheWeightedSumOfItsParts() {
        let a = TwoTowerRanker(userFactors: Matrix(rows: 2, cols: 2, values: [1, 2, 3, 4]),
                               itemFactors: Matrix(rows: 3, cols: 2, values: [1, 0, 0, 1, 1, 1]))
        let b = TwoTowerRanker(userFactors: Matrix(rows: 2, cols: 1, values: [5, -1]),
                               itemFactors: Matrix(rows: 3, cols: 1, values: [2, 3, -4]))
        let blend = Blend.combine([a, b], weights: [0.25, 2])
        let out = UnsafeMutablePointer<Float>.allocate(capacity: 6)
        defer { out.deallocate() }
        blend.score(users: 0..<2, items: 0..<3, into: out, ld: 3)
        // user 0: a = [1, 2, 3], b = [10, 15, -20]; user 1: a = [3, 4, 7], b = [-2, -3, 4]
        let expected: [Float] = [0.25 + 20, 0.5 + 30, 0.75 - 40, 0.75 - 4, 1 - 6, 1.75 + 8]
        for i in 0..<6 { XCTAssertEqual(out[i], expected[i], accuracy: 1e-5) }
        XCTAssertGreaterThan(Blend.scoreScale(a), 0)
    }
}
