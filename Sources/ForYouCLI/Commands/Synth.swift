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
