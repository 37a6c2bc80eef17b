import ArgumentParser
import ForYou
import Foundation
import Platform

struct Similar: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Items most similar to an item (cosine over item factors; for EASE, the largest weights of its row of B).")

    @Option(help: "Model directory or run id (or unique prefix) under --models (a factor model such as ALS).") var model: String
    @Option(help: "Models directory where run ids are looked up.") var models = "models"
    @Option(help: "Raw item id.") var item: String
    @Option(help: "How many.") var top = 10
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.announce()
        let model = try ModelLoading.directory(self.model, models: models, command: "similar")
        let m = try ModelLoading.load(model)
        guard let i = m.items.index(of: item) else { throw CLIError("unknown item '\(item)' (not in \(model)/items.tsv)") }
        let similar: [(item: Int, score: Float)]
        switch m.ranker {
        case let f as FactorRanker: similar = f.similarItems(to: Int(i), count: top)
        case let e as EASEModel: similar = e.similarItems(to: Int(i), count: top)
        default: throw CLIError("\(m.run.model) models have no item factors or item weights; use an ALS, two-tower or EASE model")
        }
        for (j, s) in similar { print("\(m.items.raw[j])\t\(s)") }
    }
}
