import XCTest
import Training
import Rescoring
import LiveRanking
import Transcoding
import Studies

final class BlendJobTests: XCTestCase {
    /// Grid entries: per-user validation NDCG for lambda 0, 0.5, 1.
    func testOneStandardErrorRuleKeepsTheBetterPartUnlessTheMixIsClearlyBetter() {
        let part = [0.2, 0.4, 0.6, 0.8]
        let weak = part.map { $0 - 0.1 }
        // A mixture better on average but only through noise: the better part (lambda 1) is kept.
        let noisy = [0.9, 0.0, 0.9, 0.7]  // mean 0.625 vs 0.5, per-user differences +0.7 -0.4 +0.3 -0.1
        XCTAssertEqual(BlendJob.oneStandardError([weak, noisy, part]), 2)
        // Better for every user by the same margin (no spread): the mixture wins.
        let clear = part.map { $0 + 0.05 }
        XCTAssertEqual(BlendJob.oneStandardError([weak, clear, part]), 1)
        // The better part is lambda 0 here: the walk starts from that end.
        XCTAssertEqual(BlendJob.oneStandardError([part, noisy, weak]), 0)
        // Nothing but the parts: the better one.
        XCTAssertEqual(BlendJob.oneStandardError([weak, part]), 1)
    }
}
