import ArgumentParser
import ForYou
import Foundation
import Platform

struct Similar: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Items most similar to an item (cosine over item factors).")

    @Option(help: "Model directory (a factor model such as ALS).") var model: String
    @Option(help: "Raw item id.") var item: String
    @Option(help: "How many.") var top = 10
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.announce()
        let m = try ModelLoading.load(model)
        guard let f = m.ranker as? FactorRanker else { throw CLIError("\(m.run.model) models have no item factors; use an ALS model") }
        guard let i = m.items.index(of: item) else { throw CLIError("unknown item '\(item)' (not in \(model)/items.tsv)") }
        for (j, s) in f.similarItems(to: Int(i), count: top) { print("\(m.items.raw[j])\t\(s)") }
    }
}
