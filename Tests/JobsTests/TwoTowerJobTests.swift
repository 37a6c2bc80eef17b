import XCTest
import Interactions
import Rankers
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
