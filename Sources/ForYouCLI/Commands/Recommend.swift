import ArgumentParser
import ForYou
import Foundation
import Platform

struct Recommend: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Top-N for one user (seen items excluded).")

    @Option(help: "Model directory.") var model: String
    @Option(help: "Raw user id.") var user: String
    @Option(help: "List length N.") var top = 10
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.announce()
        let m = try ModelLoading.load(model)
        guard let u = m.users.index(of: user) else { throw CLIError("unknown user '\(user)' (not in \(model)/users.tsv)") }
        let recs = BatchScorer(top: top, threads: 1).recommend(m.ranker, users: [u], exclude: m.seen)
        for (item, score) in zip(recs.list(0), recs.scoreList(0)) {
            print("\(m.items.raw[Int(item)])\t\(score)")
        }
    }
}
