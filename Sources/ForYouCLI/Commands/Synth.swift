import ArgumentParser
import ForYou
import Foundation

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate seeded interactions with planted taste structure (split format with times).",
        discussion: """
        Items have a topic and a Zipf popularity; users like a few topics. A model that learns \
        the topics beats popularity, so the whole loop can be checked with nothing but foryou.
        """)

    @Option(help: "Output TSV (user<TAB>item<TAB>weight<TAB>time).") var out: String
    @Option(help: "Users.") var users = 2_000
    @Option(help: "Items.") var items = 1_000
    @Option(help: "Approximate number of interactions.") var interactions = 60_000
    @Option(help: "Topics.") var topics = 16
    @Option(name: .customLong("topics-per-user"), help: "Topics each user likes.") var topicsPerUser = 2
    @Option(help: "Share of draws that ignore taste.") var noise = 0.15
    @Option(help: "Seed.") var seed: UInt64 = 42

    func validate() throws {
        guard users > 0, items > 1, interactions > 0, topics > 0, topicsPerUser > 0 else {
            throw ValidationError("sizes must be positive (and --items > 1)")
        }
        guard noise >= 0 && noise <= 1 else { throw ValidationError("--noise must be in [0, 1]") }
    }

    func run() throws {
        var c = SynthConfig()
        c.users = users; c.items = items; c.interactions = interactions; c.topics = topics
        c.topicsPerUser = topicsPerUser; c.noise = noise; c.seed = seed
        let world = ForYou.Synth.generate(c)
        try InteractionWriter.write(world.data, to: out)
        Console.err("synth: \(out): \(world.data.count) interactions, \(users) users x \(items) items, \(topics) topics, seed \(seed)")
    }
}

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
