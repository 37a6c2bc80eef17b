import XCTest
import LinearAlgebra
import Interactions
import Rankers
import Evaluation

final class ColdItemsTests: XCTestCase {
    func testPerUserMetricsAgainstHandComputedCases() {
        // User 0: candidates ranked 2, 0, 1, 3; truth {0, 3}: one hit at rank 2 within K = 2.
        // User 1: ranked 1, 2, ...; truth {1}: hit at rank 1.
        let scores: [[Float]] = [[0.5, 0.1, 0.9, 0.0], [0.0, 0.8, 0.3, 0.1]]
        let (rec, nd) = ColdItemsTesting.metrics(scores, truth: [[0, 3], [1]], k: 2)
        XCTAssertEqual(rec, [0.5, 1])
        XCTAssertEqual(nd[0], (1 / log2(3.0)) / (1 + 1 / log2(3.0)), accuracy: 1e-12)
        XCTAssertEqual(nd[1], 1, accuracy: 1e-12)
    }

    func testPairedBootstrap() {
        let same = ColdItems.pairedBootstrap([0.5, 0.7, 0.2], [0.3, 0.5, 0.0])
        XCTAssertEqual(same.mean, 0.2, accuracy: 1e-12)
        XCTAssertEqual(same.low, 0.2, accuracy: 1e-12)
        XCTAssertEqual(same.high, 0.2, accuracy: 1e-12)
        let a = (0..<200).map { Double($0 % 2) }, b = [Double](repeating: 0.5, count: 200)
        let ci = ColdItems.pairedBootstrap(a, b)
        XCTAssertEqual(ci.mean, 0, accuracy: 1e-12)
        XCTAssertLessThan(ci.low, 0)
        XCTAssertGreaterThan(ci.high, 0)
        XCTAssertEqual(ci.high - ci.low, 2 * 1.96 * 0.5 / sqrt(200), accuracy: 0.02)  // normal approximation
    }

    func testColdSplitHoldsOutWholeItems() throws {
        var d = Interactions()
        for u in 0..<30 { for i in 0..<20 where (u + i) % 3 == 0 {
            d.userIndex.append(d.users.index(inserting: "u\(u)")); d.itemIndex.append(d.items.index(inserting: "i\(i)")); d.weights.append(1)
        } }
        let r = try Splitter(.coldItems(fraction: 0.2, seed: 5)).split(d)
        let trainItems = Set((0..<r.train.count).map { r.train.items.raw[Int(r.train.itemIndex[$0])] })
        let testItems = Set((0..<r.test.count).map { r.test.items.raw[Int(r.test.itemIndex[$0])] })
        XCTAssertEqual(testItems.count, 4)
        XCTAssertTrue(trainItems.isDisjoint(with: testItems))
        XCTAssertEqual(r.train.count + r.test.count, d.count)
        let again = try Splitter(.coldItems(fraction: 0.2, seed: 5)).split(d)
        XCTAssertEqual(Set((0..<again.test.count).map { again.test.items.raw[Int(again.test.itemIndex[$0])] }), testItems)
    }

    /// Items of 3 topics, users who like one topic, features naming the topic: a two-tower trained
    /// without the held-out items ranks them for the right users far above random.
    func testTwoTowerRanksUnseenItemsFromTheirFeatures() throws {
        var g = SeededGenerator(seed: 2)
        var all = Interactions()
        var features = ItemFeatures(buckets: 32)
        for i in 0..<60 { features.add(item: "i\(i)", tokens: ["topic\(i % 3)"]) }
        for u in 0..<150 {
            var picked = Set<Int>()
            while picked.count < 8 { picked.insert((Int(g.next() % 20)) * 3 + u % 3) }
            for i in picked.sorted() {
                all.userIndex.append(all.users.index(inserting: "u\(u)")); all.itemIndex.append(all.items.index(inserting: "i\(i)"))
                all.weights.append(1)
            }
        }
        let split = try Splitter(.coldItems(fraction: 0.2, seed: 1)).split(all)
        // The model's id maps hold only what it was trained on (as when train.tsv is read back).
        var train = Interactions()
        for r in 0..<split.train.count {
            train.userIndex.append(train.users.index(inserting: split.train.users.raw[Int(split.train.userIndex[r])]))
            train.itemIndex.append(train.items.index(inserting: split.train.items.raw[Int(split.train.itemIndex[r])]))
            train.weights.append(1)
        }
        let data = TwoTowerData(train, features: features)
        var c = TwoTowerConfig()
        c.dim = 8; c.hidden = 16; c.batch = 64; c.epochs = 10; c.featureBuckets = 32; c.learningRate = 0.02; c.threads = 1
        c.temperature = 0.1
        let t = TwoTowerTrainer(data: data, config: c)
        _ = t.train()
        let r = try ColdItems.evaluate(model: t.ranker(), users: train.users, items: train.items, seen: train.matrix(),
                                       test: split.test, features: features, k: 3)
        let recall = r.recall.reduce(0, +) / Double(r.recall.count)
        XCTAssertEqual(r.candidates, 12)
        XCTAssertGreaterThan(recall, 2.5 * r.randomRecall, "recall \(recall), random \(r.randomRecall)")
    }
}
