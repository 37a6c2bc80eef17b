import ArgumentParser
import ForYou
import Foundation

struct Split: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Split interactions per user into train and test files (deterministic).",
        discussion: """
        chrono: each user's chronologically last fraction (floor(n x fraction)) goes to test; \
        random: a seeded random fraction; leave-k: k per user (the latest when times exist, else \
        seeded random); cold-items: a seeded random fraction of the items goes to test with all \
        their interactions (for evaluate --cold-items). Otherwise test rows whose item never occurs \
        in train are dropped.
        """)

    enum StrategyName: String, ExpressibleByArgument, CaseIterable { case chrono, random, leaveK = "leave-k", coldItems = "cold-items" }

    @Option(help: "Interactions to split.") var input: String
    @OptionGroup var format: FormatOptions
    @Option(help: "chrono, random, leave-k or cold-items.") var strategy: StrategyName = .chrono
    @Option(help: "Test fraction per user (chrono, random) or of the items (cold-items).") var fraction = 0.2
    @Option(help: "Test interactions per user (leave-k).") var k = 1
    @Option(help: "Seed (random, leave-k without times).") var seed: UInt64 = 42
    @Option(name: .customLong("out-dir"), help: "Writes train.tsv and test.tsv here.") var outDir: String

    func run() throws {
        let (data, _) = try format.read(input, verbose: false)
        let s: Splitter.Strategy
        switch strategy {
        case .chrono: s = .chronological(fraction: fraction)
        case .random: s = .random(fraction: fraction, seed: seed)
        case .leaveK: s = .leaveKOut(k: k, seed: seed)
        case .coldItems: s = .coldItems(fraction: fraction, seed: seed)
        }
        let result: Splitter.Result
        do { result = try Splitter(s).split(data) } catch let e as Splitter.SplitError { throw CLIError("split: \(e)") }
        try InteractionWriter.write(result.train, to: outDir + "/train.tsv")
        try InteractionWriter.write(result.test, to: outDir + "/test.tsv")
        Console.err("split: \(result.train.count) train rows -> \(outDir)/train.tsv, \(result.test.count) test rows -> "
                    + "\(outDir)/test.tsv (\(result.droppedColdTestRows) test rows with items unseen in train dropped)")
    }
}
