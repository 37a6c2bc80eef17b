import Foundation
import EventLog
import Checksum
import LinearAlgebra
import Interactions
import Rankers
import Evaluation
import Artifacts
import Scoring
import Training

public enum SweepError: Error, CustomStringConvertible, Equatable {
    case unknownParameter(String, SweepFamily)
    case badValue(String, String)
    case emptyGrid
    case otherSweepStored(String)

    public var description: String {
        switch self {
        case .unknownParameter(let k, let f):
            return "unknown \(f.rawValue) parameter '\(k)' (grid keys: \(f.keys.joined(separator: ", ")))"
        case .badValue(let k, let v): return "bad value '\(v)' for \(k)"
        case .emptyGrid: return "the grid is empty: give at least one --grid KEY=V1,V2"
        case .otherSweepStored(let d): return "\(d) holds a different sweep (other grid, settings or data); use another --out or remove it"
        }
    }
}

/// What a sweep tries: a grid over ALS parameters (all of it, or `random` configurations drawn
/// from it), each trained on train minus a validation carve and scored on that carve.
public struct SweepSpec: Codable, Sendable, Equatable {
    /// Grid keys in order, and each key's values.
    public var keys: [String]
    public var values: [[String]]
    /// Parameters not in the grid.
    public var base: [String: String]
    public var random: Int?
    public var seed: UInt64
    public var validationFraction: Double
    public var k: Int
    /// The model family (nil in sweeps recorded before families: ALS).
    public var model: String?
    /// The carve's scheme (nil: auto, chrono with times, else random) and leave-k's k.
    public var validation: ValidationCarve.Scheme?
    public var validationK: Int?

    public init(keys: [String], values: [[String]], base: [String: String], random: Int? = nil, seed: UInt64 = 42,
                validationFraction: Double = 0.1, k: Int = 10, model: SweepFamily = .als,
                validation: ValidationCarve.Scheme = .auto, validationK: Int = 1) {
        self.keys = keys; self.values = values; self.base = base; self.random = random; self.seed = seed
        self.validationFraction = validationFraction; self.k = k
        self.model = model == .als ? nil : model.rawValue
        self.validation = validation == .auto ? nil : validation
        self.validationK = validation == .leaveK ? validationK : nil
    }

    public var family: SweepFamily { model.flatMap(SweepFamily.init(rawValue:)) ?? .als }

    public var carve: ValidationCarve {
        ValidationCarve(scheme: validation ?? .auto, fraction: validationFraction, k: validationK ?? 1, seed: seed)
    }

    /// 8 hex digits identifying the spec (FNV-1a of its canonical JSON).
    public var digest: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let bytes = (try? enc.encode(self)) ?? Data()
        return String(format: "%08x", UInt32(truncatingIfNeeded: bytes.withUnsafeBytes { FNV64.digest($0) }))
    }
}

public struct SweepTrial: Codable, Sendable, Equatable {
    public var params: [String: String]
    /// Validation metrics ("ndcg@10", "recall@10").
    public var metrics: [String: Double]
    public var seconds: Double
    /// File in the sweep directory with each validation user's metrics (user, ndcg, recall, ap).
    public var perUserFile: String?
}

/// `sweep.json`: the spec, the data it ran on and every finished trial (written after each).
public struct SweepRecord: Codable, Sendable {
    public var id: String
    public var model: String
    public var spec: SweepSpec
    public var dataPaths: [String]
    public var dataFingerprint: String
    public var createdAt: String
    public var codeVersion: String
    public var trials: [SweepTrial]

    public func best(by metric: String) -> SweepTrial? {
        trials.max { ($0.metrics[metric] ?? -.infinity) < ($1.metrics[metric] ?? -.infinity) }
    }
}

/// A model family a sweep tunes: its grid keys, the values of keys a grid leaves out, and the
/// grid `sweep --model all` searches.
public enum SweepFamily: String, Sendable, Codable, CaseIterable {
    case als, ease, twoTower = "two-tower"

    public var keys: [String] {
        switch self {
        case .als: return ["factors", "reg", "alpha", "iters", "confidence", "cg_steps"]
        case .ease: return ["lambda"]
        case .twoTower: return ["dim", "hidden", "lr", "temperature", "weight_decay", "batch", "history", "epochs"]
        }
    }

    public var defaults: [String: String] {
        switch self {
        case .als: return ["factors": "64", "reg": "0.05", "alpha": "1", "iters": "15", "confidence": "linear", "cg_steps": "3"]
        case .ease: return ["lambda": "200"]
        case .twoTower:
            let c = TwoTowerConfig()
            return ["dim": "\(c.dim)", "hidden": "\(c.hidden)", "lr": "\(c.learningRate)", "temperature": "\(c.temperature)",
                    "weight_decay": "\(c.weightDecay)", "batch": "\(c.batch)", "history": "\(c.history)", "epochs": "\(c.epochs)"]
        }
    }

    /// The grid `sweep --model all` tries for this family (its epochs, for the two-tower, come
    /// from early stopping on the same carve).
    public var defaultGrid: [(String, [String])] {
        switch self {
        case .als: return [("factors", ["32", "64", "128", "256"]), ("reg", ["0.05", "1", "10"]), ("alpha", ["1", "4", "16"]),
                           ("confidence", ["log"])]
        case .ease: return [("lambda", ["50", "100", "200", "400", "800"])]
        case .twoTower: return [("dim", ["64"])]
        }
    }
}

/// Hyper-parameter search for one model family, tuned only on a validation split carved from
/// train (the test split is never read here), resumable: trials already in `sweep.json` are
/// not rerun.
public enum Sweep {
    public static let alsKeys = SweepFamily.als.keys
    public static let defaults = SweepFamily.als.defaults

    /// The configurations to try, in order: the full cartesian product, or `random` distinct
    /// draws from it (seeded).
    public static func configurations(_ spec: SweepSpec) throws -> [[String: String]] {
        guard !spec.keys.isEmpty, spec.values.allSatisfy({ !$0.isEmpty }) else { throw SweepError.emptyGrid }
        let family = spec.family
        for k in spec.keys + Array(spec.base.keys) where !family.keys.contains(k) { throw SweepError.unknownParameter(k, family) }
        var all: [[String: String]] = [[:]]
        for (k, vs) in zip(spec.keys, spec.values) {
            all = all.flatMap { partial in vs.map { v in partial.merging([k: v]) { $1 } } }
        }
        all = all.map { spec.base.merging($0) { $1 } }
        for c in all { _ = try trainingSpec(family, c) }
        if let n = spec.random, n < all.count {
            var g = SeededGenerator(seed: spec.seed ^ 0x5EED)
            var idx = Array(all.indices)
            for i in 0..<n { idx.swapAt(i, i + Int(g.next() % UInt64(idx.count - i))) }
            return idx.prefix(n).sorted().map { all[$0] }
        }
        return all
    }

    /// A configuration's values with the family's defaults filled in, read as positive integers
    /// or non-negative floats (a bad value names its key).
    struct Values {
        let raw: [String: String]
        init(_ raw: [String: String]) { self.raw = raw }
        func int(_ k: String) throws -> Int {
            guard let v = Int(raw[k]!), v > 0 else { throw SweepError.badValue(k, raw[k]!) }
            return v
        }
        func float(_ k: String) throws -> Float {
            guard let v = Float(raw[k]!), v >= 0 else { throw SweepError.badValue(k, raw[k]!) }
            return v
        }
    }

    /// ALS settings and confidence from a configuration (defaults for what it does not name).
    public static func settings(_ c: [String: String], threads: Int = 0, seed: UInt64 = 42) throws -> (ALSConfig, Confidence) {
        let p = Values(defaults.merging(c) { $1 })
        let (int, float) = (p.int, p.float)
        guard let scheme = Confidence.Scheme(rawValue: p.raw["confidence"]!) else { throw SweepError.badValue("confidence", p.raw["confidence"]!) }
        let als = ALSConfig(factors: try int("factors"), regularization: try float("reg"), iterations: try int("iters"), solver: .cg,
                            cgSteps: try int("cg_steps"), threads: threads, seed: seed, computeLoss: false)
        return (als, Confidence(scheme: scheme, alpha: try float("alpha")))
    }

    /// The training spec of one configuration of `family` (defaults for what it does not name).
    public static func trainingSpec(_ family: SweepFamily, _ c: [String: String], threads: Int = 0, seed: UInt64 = 42,
                                    features: ItemFeatures? = nil, carve: ValidationCarve = ValidationCarve()) throws -> TrainingSpec {
        let p = Values(family.defaults.merging(c) { $1 })
        let (int, float) = (p.int, p.float)
        switch family {
        case .als:
            let (als, conf) = try settings(c, threads: threads, seed: seed)
            return TrainingSpec(model: .als, als: als, confidence: conf)
        case .ease:
            var spec = TrainingSpec(model: .ease, als: ALSConfig(threads: threads), confidence: Confidence(scheme: .binary, alpha: 1))
            guard let l = Float(p.raw["lambda"]!), l > 0 else { throw SweepError.badValue("lambda", p.raw["lambda"]!) }
            spec.ease = EASEConfig(lambda: l, threads: threads)
            return spec
        case .twoTower:
            var spec = TrainingSpec(model: .twoTower, als: ALSConfig(threads: threads))
            var t = TwoTowerConfig()
            t.dim = try int("dim"); t.hidden = try int("hidden"); t.learningRate = try float("lr"); t.temperature = try float("temperature")
            t.weightDecay = try float("weight_decay"); t.batch = try int("batch"); t.history = try int("history"); t.epochs = try int("epochs")
            t.threads = threads; t.seed = seed
            spec.twoTower = t
            spec.features = features
            spec.validation = carve
            return spec
        }
    }

    /// Trains one configuration on the carve and returns the ranker to score its validation
    /// users with (trained without their held-out items).
    static func trialRanker(_ family: SweepFamily, _ c: [String: String], data: Interactions, carved v: Validation,
                            spec: SweepSpec, features: ItemFeatures?, threads: Int, cancel: CancellationToken?) throws -> Ranker? {
        var ts = try trainingSpec(family, c, threads: threads, seed: spec.seed, features: features, carve: spec.carve)
        switch family {
        case .als, .ease:
            let trained = try TrainingPipeline.fit(v.train, ts, cancel: cancel)
            return trained.completed ? trained.ranker : nil
        case .twoTower:
            // Early stopping reads the same carve; the validation ranker's histories leave the held-out items out.
            ts.refit = false
            let trained = try TrainingPipeline.fit(data, ts, cancel: cancel)
            return trained.completed ? trained.twoTower!.validationRanker : nil
        }
    }

    public enum Outcome: Equatable, Sendable { case completed, cancelled }

    /// Runs (or resumes) the sweep stored in `directory`. `progress` gets one line per trial.
    public static func run(_ spec: SweepSpec, data: Interactions, dataPaths: [String], fingerprint: String, directory: String,
                           threads: Int = 0, features: ItemFeatures? = nil, cancel: CancellationToken? = nil,
                           progress: (String) -> Void = { _ in }) throws -> (SweepRecord, Outcome) {
        let configs = try configurations(spec)
        let path = directory + "/sweep.json"
        var record: SweepRecord
        if let bytes = FileManager.default.contents(atPath: path) {
            let stored = try JSONDecoder().decode(SweepRecord.self, from: bytes)
            guard stored.spec == spec, stored.dataFingerprint == fingerprint else { throw SweepError.otherSweepStored(directory) }
            record = stored
            progress("sweep: resuming \(record.id): \(record.trials.count) of \(configs.count) trials already done")
        } else {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            record = SweepRecord(id: (directory as NSString).lastPathComponent, model: spec.family.rawValue, spec: spec, dataPaths: dataPaths,
                                 dataFingerprint: fingerprint, createdAt: UTCStamp.iso8601(),
                                 codeVersion: CodeVersion.current, trials: [])
        }
        let v = try spec.carve.carve(data)
        guard !v.users.isEmpty else { throw ValidationCarve.CarveError.empty }
        let seen = v.train.matrix()
        let truth = v.users.map { v.truth[$0]! }
        let todo = configs.filter { c in !record.trials.contains { $0.params == c } }
        let start = Date()
        var done = 0
        for c in todo {
            if cancel?.isCancelled == true { return (record, .cancelled) }
            let t0 = Date()
            guard let model = try trialRanker(spec.family, c, data: data, carved: v, spec: spec, features: features, threads: threads,
                                              cancel: cancel), cancel?.isCancelled != true else { return (record, .cancelled) }
            let recs = BatchScorer(top: spec.k, threads: threads).recommend(model, users: v.users, exclude: seen)
            let lists = (0..<v.users.count).map { recs.list($0) }
            let (summary, per) = Metrics.atK(spec.k, lists: lists, truth: truth, catalogSize: seen.cols)
            let file = "trial-\(record.trials.count + 1).tsv"
            var tsv = "user\tndcg\trecall\tap\n"
            for (r, u) in v.users.enumerated() {
                tsv += "\(data.users.raw[Int(u)])\t\(per.ndcg[r])\t\(per.recall[r])\t\(per.ap[r])\n"
            }
            try AtomicFile.write(tsv, to: directory + "/" + file)
            let trial = SweepTrial(params: c, metrics: ["ndcg@\(spec.k)": summary.ndcg, "recall@\(spec.k)": summary.recall,
                                                        "map@\(spec.k)": summary.map],
                                   seconds: Date().timeIntervalSince(t0), perUserFile: file)
            record.trials.append(trial)
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(Array(try enc.encode(record)) + [10], to: path)
            done += 1
            let elapsed = Date().timeIntervalSince(start)
            let total = configs.count, finished = record.trials.count
            let bar = String(repeating: "#", count: finished * 20 / total) + String(repeating: ".", count: 20 - finished * 20 / total)
            progress(String(format: "sweep [%@] %d/%d  %@  val ndcg@%d %.4f  %.1fs  elapsed %.1fs  ETA %.1fs", bar, finished, total,
                            spec.keys.map { "\($0)=\(c[$0]!)" }.joined(separator: " "), spec.k, summary.ndcg, trial.seconds, elapsed,
                            elapsed / Double(done) * Double(todo.count - done)))
        }
        return (record, .completed)
    }
}
