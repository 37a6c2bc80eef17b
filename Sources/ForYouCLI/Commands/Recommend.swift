import ArgumentParser
import ForYou
import Foundation
import Platform

struct Recommend: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Top-N for one user (seen items excluded).")

    @Option(help: "Model directory or run id (or unique prefix) under --models.") var model: String
    @Option(help: "Models directory where run ids are looked up.") var models = "models"
    @Option(help: "Raw user id.") var user: String
    @Option(help: "List length N.") var top = 10
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.announce()
        let model = try ModelLoading.directory(self.model, models: models, command: "recommend")
        let m = try ModelLoading.load(model)
        guard let u = m.users.index(of: user) else { throw CLIError("unknown user '\(user)' (not in \(model)/users.tsv)") }
        let recs = BatchScorer(top: top, threads: 1).recommend(m.ranker, users: [u], exclude: m.seen)
        for (item, score) in zip(recs.list(0), recs.scoreList(0)) {
            print("\(m.items.raw[Int(item)])\t\(score)")
        }
    }
}
