import ArgumentParser
import ForYou
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on held-out interactions (precision, recall, NDCG, MAP, coverage @K).",
        discussion: """
        Every test user gets a top-K list over the whole catalog, training items excluded. \
        Definitions follow the shared referee (bench/implicit_ref.py, metrics_at_k): averaged \
        uniformly over test users; test users unknown to the model count with an empty list.
        """)

    @Option(help: "Model directory or run id (or unique prefix) under --models.") var model: String
    @Option(help: "Models directory where run ids are looked up.") var models = "models"
    @Option(help: "Held-out interactions.") var test: String
    @OptionGroup var input: FormatOptions
    @Option(help: "Cutoff K.") var k = 10
    @Flag(help: "Print one JSON object instead of a table.") var json = false
    @Flag(name: .customLong("record"), help: "Also record the evaluation with the run: metrics in run.json, each test user's metrics and list in per_user.tsv (what `foryou compare` uses).")
    var record = false
    @Flag(name: .customLong("cold-items"), help: "The test items are new to the model (split --strategy cold-items): rank only them, embedded from --features (two-tower models).")
    var coldItems = false
    @Option(help: "Content features (item<TAB>token|...) for --cold-items.") var features: String?
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard k > 0 else { throw ValidationError("--k must be positive") }
        if coldItems && features == nil { throw ValidationError("--cold-items needs --features (new items are embedded from them)") }
    }

    func run() throws {
        common.announce()
        let model = try ModelLoading.directory(self.model, models: models, command: "evaluate")
        let m = try ModelLoading.load(model)
        let (testData, _) = try input.read(test, verbose: common.verbose)
        if coldItems { return try cold(m, testData) }
        // A cold-item test (every test item new to the model) would score all zeros: say so.
        if testData.items.count > 0 && !testData.items.raw.contains(where: { m.items.index(of: $0) != nil }) {
            throw CLIError("evaluate: none of the \(testData.items.count) test items is in the model's catalog (\(model)/items.tsv), "
                           + "so every metric would be 0. A cold-item split (split --strategy cold-items)? Evaluate it with "
                           + "--cold-items --features FILE and a two-tower model.")
        }
        let report = Evaluator(k: k, threads: common.threads).evaluate(m.ranker, users: m.users, items: m.items,
                                                                       seen: m.seen, test: testData)
        if json {
            print(EvaluationOutput.json(report, model: m))
        } else {
            print(EvaluationOutput.table(report))
        }
        if record { try EvaluationRecord.attach(report, test: [test], to: model) }
    }
}

extension Evaluate {
    func cold(_ m: StoredModel, _ testData: Interactions) throws {
        guard let tt = m.ranker as? TwoTowerRanker else {
            throw CLIError("evaluate --cold-items: a \(m.run.model) model has no vectors for items it was not trained on; "
                           + "use a two-tower model")
        }
        let f: ItemFeatures
        do { f = try ItemFeatures.load(features!, buckets: tt.model?.config.featureBuckets ?? 1 << 14) } catch let e as ImportError {
            throw CLIError("features: \(e)")
        }
        let r: ColdItems.Report
        do { r = try ColdItems.evaluate(model: tt, users: m.users, items: m.items, seen: m.seen, test: testData, features: f, k: k) }
        catch let e as LinearAlgebraError { throw CLIError("evaluate --cold-items: \(e)") }
        guard !r.users.isEmpty else { throw CLIError("evaluate --cold-items: no test user is known to the model") }
        func mean(_ a: [Double]) -> Double { a.reduce(0, +) / Double(a.count) }
        let ci = ColdItems.pairedBootstrap(r.recall, r.baselineRecall)
        if json {
            let obj: [String: Any] = ["k": k, "users": r.users.count, "unknown_users": r.unknownUsers, "cold_items": r.candidates,
                                      "cold_items_with_features": r.itemsWithFeatures, "recall": mean(r.recall), "ndcg": mean(r.ndcg),
                                      "random_recall": r.randomRecall, "tag_popularity_recall": mean(r.baselineRecall),
                                      "tag_popularity_ndcg": mean(r.baselineNDCG), "recall_delta_vs_tag_popularity": ci.mean,
                                      "recall_delta_ci95": [ci.low, ci.high]]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("cold items: \(r.candidates) (\(r.itemsWithFeatures) with features), ranked for \(r.users.count) users "
              + "(\(r.unknownUsers) test users unknown to the model)")
        print(String(format: "recall@%d  two-tower %.4f   tag popularity %.4f   random %.4f", k, mean(r.recall), mean(r.baselineRecall),
                     r.randomRecall))
        print(String(format: "ndcg@%d    two-tower %.4f   tag popularity %.4f", k, mean(r.ndcg), mean(r.baselineNDCG)))
        print(String(format: "recall@%d two-tower - tag popularity: %+.4f, paired bootstrap 95%% interval [%+.4f, %+.4f]", k, ci.mean,
                     ci.low, ci.high))
    }
}
