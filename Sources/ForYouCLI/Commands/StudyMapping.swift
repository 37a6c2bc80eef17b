import ArgumentParser
import ForYou
import Foundation

struct StudyMapping: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study-mapping",
        abstract: "Compare events -> interactions mappings (negatives, time decay) on a temporal split of a data directory's log.",
        discussion: """
        Events before the cut (the last --test-fraction of the log by time is held out) train one \
        ALS per variant and seed; the held-out period scores it: NDCG@K and recall@K against the \
        videos each user went on to like, share, complete or watch at least half of, and skip@K, \
        the share of top-K slots taken by videos the user went on to skip or hide (lower is better).
        """)

    @OptionGroup var data: DataDirOption
    @Option(name: .customLong("test-fraction"), help: "Share of the log (by time) held out.") var testFraction = 0.2
    @Option(help: "Cutoff K.") var k = 10
    @Option(help: "Seeds, comma-separated.") var seeds = "42,1,2"
    @Option(help: "Latent factors.") var factors = 32
    @Option(help: "ALS iterations.") var iters = 15
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard testFraction > 0, testFraction < 1 else { throw ValidationError("--test-fraction must be in (0, 1)") }
        guard k > 0, factors > 0, iters > 0 else { throw ValidationError("--k, --factors, --iters must be positive") }
        guard !seedList.isEmpty else { throw ValidationError("--seeds: give comma-separated integers") }
    }

    var seedList: [UInt64] { seeds.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        common.announce()
        var study = MappingStudy(dataDir: data.dataDir)
        study.testFraction = testFraction
        study.k = k
        study.seeds = seedList
        study.als = ALSConfig(factors: factors, regularization: 0.05, iterations: iters, solver: .cg, threads: common.threads)
        let (split, rows) = try study.run(MappingStudy.standardVariants()) { Console.err("study: " + $0) }
        print("temporal split at \(split.cutMs) ms: \(split.trainEvents) training events, \(split.testUsers) test users; "
              + "ALS \(factors) factors, \(iters) iterations, confidence log alpha 4; means over seeds \(seeds)")
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        print(pad("variant", 26) + pad("NDCG@\(k)", 9) + pad("[min-max]", 16) + pad("recall@\(k)", 11) + pad("skip@\(k)", 9)
              + pad("pairs", 9) + "negatives")
        for r in rows {
            print(pad(r.variant, 26) + pad(String(format: "%.4f", r.ndcg), 9)
                  + pad(String(format: "[%.4f-%.4f]", r.ndcgMin, r.ndcgMax), 16) + pad(String(format: "%.4f", r.recall), 11)
                  + pad(String(format: "%.4f", r.skipRate), 9) + pad("\(r.interactions)", 9) + "\(r.negatives)")
        }
    }
}
