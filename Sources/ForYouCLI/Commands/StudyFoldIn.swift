import ArgumentParser
import ForYou
import Foundation

struct StudyFoldIn: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study-foldin",
        abstract: "How far the ranking worker's fold-in lists drift from a full retrain on the same events.",
        discussion: """
        Cuts the log by time at --cuts (default 0.7,0.85): a model trained before the first cut \
        stands for the live generation; users with events between the cuts are folded into it as \
        the worker does; a second model is retrained on everything before the second cut. Prints \
        overlap@K of the two lists and NDCG@K of each (and of the stale, not folded-in lists) on \
        what the users went on to engage with after the second cut.
        """)

    @OptionGroup var data: DataDirOption
    @Option(help: "The two cuts, as fractions of the log by time.") var cuts = "0.7,0.85"
    @Option(help: "Cutoff K.") var k = 10
    @Option(help: "Latent factors.") var factors = 64
    @Option(help: "ALS iterations.") var iters = 15
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @OptionGroup var common: CommonOptions

    var cutPair: (Double, Double)? {
        let p = cuts.split(separator: ",").compactMap { Double($0) }
        guard p.count == 2, p[0] > 0, p[0] < p[1], p[1] < 1 else { return nil }
        return (p[0], p[1])
    }

    func validate() throws {
        guard cutPair != nil else { throw ValidationError("--cuts must be two increasing fractions in (0, 1), e.g. 0.7,0.85") }
        guard k > 0, factors > 0, iters > 0 else { throw ValidationError("--k, --factors, --iters must be positive") }
    }

    func run() throws {
        common.announce()
        var study = FoldInStudy(dataDir: data.dataDir)
        study.cuts = cutPair!
        study.k = k
        study.als = ALSConfig(factors: factors, regularization: 0.05, iterations: iters, solver: .cg, threads: common.threads)
        let r = try study.run { Console.err("study-foldin: " + $0) }
        if json {
            let obj: [String: Any] = ["users": r.users, "test_users": r.testUsers, "overlap": r.overlap, "ndcg_stale": r.ndcgStale,
                                      "ndcg_foldin": r.ndcgFoldIn, "ndcg_retrain": r.ndcgRetrain, "recall_foldin": r.recallFoldIn,
                                      "recall_retrain": r.recallRetrain, "foldin_seconds": r.foldInSeconds,
                                      "placed_videos": r.placedVideos, "k": k]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print(String(format: "%d users with events between the cuts (%d with engagement after): overlap@%d fold-in vs retrain %.3f",
                     r.users, r.testUsers, k, r.overlap))
        print(String(format: "NDCG@%d: stale %.4f, fold-in %.4f, full retrain %.4f (fold-in - retrain %+.4f); recall@%d fold-in %.4f, retrain %.4f",
                     k, r.ndcgStale, r.ndcgFoldIn, r.ndcgRetrain, r.ndcgFoldIn - r.ndcgRetrain, k, r.recallFoldIn, r.recallRetrain))
        print(String(format: "fold-in of %d users took %.2fs (%.0f users/s); %d videos new to the live model placed", r.users,
                     r.foldInSeconds, Double(r.users) / max(r.foldInSeconds, 1e-9), r.placedVideos))
    }
}
