import ArgumentParser
import ForYou
import Foundation

/// `foryou train --model two-tower` options.
struct TwoTowerOptions: ParsableArguments {
    @Option(help: "Two-tower: embedding and output width.") var dim = 64
    @Option(help: "Two-tower: hidden layer width of each tower (default: --dim).") var hidden: Int?
    @Option(help: "Two-tower: maximum epochs.") var epochs = 30
    @Option(help: "Two-tower: examples per mini-batch (the in-batch negatives).") var batch = 1024
    @Option(help: "Two-tower: Adam learning rate.") var lr: Float = 0.005
    @Option(name: .customLong("weight-decay"), help: "Two-tower: decoupled weight decay.") var weightDecay: Float = 1e-4
    @Option(help: "Two-tower: softmax temperature.") var temperature: Float = 0.1
    @Option(help: "Two-tower: content features, item<TAB>token|token|... per line.") var features: String?
    @Option(name: .customLong("feature-buckets"), help: "Two-tower: rows of the hashed feature table.") var featureBuckets = 1 << 14
    @Option(name: .customLong("uniform-negatives"), help: "Two-tower: extra uniformly drawn negatives per batch.")
    var uniformNegatives = 0
    @Flag(name: .customLong("no-log-q"), help: "Two-tower: no popularity (log-Q) correction of in-batch negatives.")
    var noLogQ = false
    @Option(help: "Two-tower: recent items averaged into the user tower.") var history = 50
    @Flag(name: .customLong("history-gradient"), help: "Two-tower: also train item embeddings through the user tower's history mean (slower).")
    var historyGradient = false
    @Option(help: "Two-tower: epochs without a better validation NDCG@10 before stopping.") var patience = 3
    @Option(name: .customLong("validation-fraction"), help: "Two-tower: share of each user's training items held out for early stopping.")
    var validationFraction = 0.1
    @Flag(inversion: .prefixedNo,
          help: "Two-tower: once early stopping has chosen the epoch count, train again on every training interaction for that many epochs (the served model).")
    var refit = true

    func validate() throws {
        guard dim > 0, (hidden ?? dim) > 0, epochs > 0, batch >= 2, history >= 0, patience >= 1, featureBuckets > 0 else {
            throw ValidationError("--dim, --hidden, --epochs, --patience, --feature-buckets must be positive and --batch >= 2")
        }
        guard lr > 0, temperature > 0, weightDecay >= 0, uniformNegatives >= 0 else {
            throw ValidationError("--lr and --temperature must be positive")
        }
        guard validationFraction >= 0, validationFraction < 0.5 else { throw ValidationError("--validation-fraction must be in [0, 0.5)") }
    }

    /// `--hidden`, or the embedding width.
    var hiddenWidth: Int { hidden ?? dim }

    func config(threads: Int, seed: UInt64) -> TwoTowerConfig {
        var c = TwoTowerConfig()
        c.dim = dim; c.hidden = hiddenWidth; c.epochs = epochs; c.batch = batch; c.learningRate = lr; c.weightDecay = weightDecay
        c.temperature = temperature; c.featureBuckets = featureBuckets; c.uniformNegatives = uniformNegatives
        c.logQ = !noLogQ; c.history = history; c.historyGradient = historyGradient; c.patience = patience
        c.threads = threads; c.seed = seed
        return c
    }

    /// The features: the --features file, else (training on a data directory's events) the
    /// catalog's captions and tags; and where they came from, as recorded.
    func features(_ data: Interactions, catalogOf dataDir: String? = nil) throws -> (ItemFeatures?, String?) {
        var f: ItemFeatures?
        var shown = features, recorded = features
        if let path = features {
            do { f = try ItemFeatures.load(path, buckets: featureBuckets) } catch let e as ImportError {
                throw CLIError("features: \(e)")
            }
        } else if let dir = dataDir {
            f = TwoTowerCatalog.features(try DataDirectory(dir).openStore().videos(), buckets: featureBuckets)
            shown = "the catalog of \(dir)"
            recorded = "catalog"
        }
        if let f, let shown {
            Console.err(String(format: "features: %@ covers %.1f%% of the training items", shown, 100 * f.coverage(of: data.items.raw)))
        }
        return (f, recorded)
    }
}
