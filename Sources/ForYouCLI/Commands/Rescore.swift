import ArgumentParser
import ForYou
import Foundation

struct Rescore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One full retrain on the event log + score-all + atomic switch + prune; for cron or systemd timers.",
        discussion: """
        Exits non-zero with a one-line reason on failure; the live generation is then unchanged. \
        The model is recorded in --models like any training run.
        """)

    @OptionGroup var data: DataDirOption
    @OptionGroup var backend: StoreOption
    @Option(help: "Where the run's model directory goes.") var models = "models"
    @Option(help: "als, ease (item x item, --lambda), rerank (learned second stage over ALS/EASE/popularity candidates), or two-tower (content features from the catalog's captions and tags; its lists include catalog videos without interactions yet).")
    var model: RescoreConfig.Model = .als
    @Option(help: "EASE: L2 penalty lambda.") var lambda: Float = 200
    @Option(help: "Rerank: candidate sources, comma-separated (default als,ease,ease-recent,popularity; EASE only up to 20000 videos).")
    var sources: String?
    @Option(help: "Rerank: candidates each source proposes per user.") var candidates = 100
    @Option(help: "Rerank: most trees of the LambdaMART ranker (the count kept is chosen on a chronological validation carve).") var trees = 400
    @Option(help: "Rerank: boosters in the final ranker's bag, summed (0 = 5 when the validation users are fewer than 20,000, else 1).") var bag = 0
    @Option(help: "Rerank: labelled carves; 2 adds a second carve of the first one's train when the validation users are fewer than 20,000.") var labelCarves = 2
    @Option(name: .customLong("ease-max-memory"), help: "EASE: refuse catalogs whose items^2 x 4 B weights exceed this many GiB (default: two thirds of RAM).")
    var easeMaxMemory: Double?
    @Option(help: "Latent factors.") var factors = 64
    @Option(help: "L2 regularization.") var reg: Float = 0.05
    @Option(help: "ALS iterations.") var iters = 15
    @Option(help: "Confidence scale alpha.") var alpha: Float = 4
    @Option(help: "r as a function of the event weight: linear, log or binary.") var confidence: Confidence.Scheme = .log
    @OptionGroup var mapping: MappingOptions
    @Option(help: "List length per user.") var top = 200
    @Option(help: "Generations to keep after the switch.") var keep = 3
    @Flag(name: .customLong("no-activate"), help: "Write the generation without switching it live (a challenger for an experiment).") var noActivate = false
    @OptionGroup(title: "Two-tower") var tt: TwoTowerOptions
    @OptionGroup var events: EventsOption
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard factors > 0, iters > 0, top > 0, keep >= 1 else {
            throw ValidationError("--factors, --iters, --top must be positive and --keep >= 1")
        }
        guard lambda > 0 else { throw ValidationError("--lambda must be positive") }
        guard bag >= 0 else { throw ValidationError("--bag must be >= 0 (0 = auto)") }
        guard (1...2).contains(labelCarves) else { throw ValidationError("--label-carves must be 1 or 2") }
    }

    func run() throws {
        common.announce()
        var c = RescoreConfig(dataDir: data.dataDir)
        c.store = try backend.open(dataDir: data.dataDir)
        switch try events.location(dataDir: data.dataDir) {
        case .file(let dir): c.eventsDir = dir
        case .kafka(let k): c.kafka = k
        }
        c.modelsDir = models
        c.als = ALSConfig(factors: factors, regularization: reg, iterations: iters, solver: .cg, threads: common.threads)
        c.confidence = Confidence(scheme: confidence, alpha: alpha)
        c.top = top
        c.mapping = mapping.mapping
        c.keep = keep
        c.activate = !noActivate
        c.model = model
        c.ease = EASEConfig(lambda: lambda, maxBytes: easeMaxMemory.map { Int($0 * 1_073_741_824) } ?? EASEConfig.defaultMaxBytes,
                            threads: common.threads)
        if model == .rerank {
            var r = RerankConfig()
            r.perSource = candidates
            r.maxTrees = trees
            r.bag = bag
            r.labelCarves = labelCarves
            if let sources {
                r.sources = sources.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
                for n in r.sources where !RerankConfig.knownSources.contains(n) {
                    throw CLIError("rescore: --sources: unknown source '\(n)' (\(RerankConfig.knownSources.joined(separator: ", ")))")
                }
                c.rerank = r
            } else {
                c.rerankDefaults = r
            }
        }
        if model == .twoTower {
            guard tt.features == nil else { throw CLIError("rescore --model two-tower reads its features from the catalog; drop --features") }
            c.twoTower = tt.config(threads: common.threads, seed: 42)
            c.validationFraction = tt.validationFraction
        }
        do {
            let r = try RescoreJob.run(c, cancel: CLIContext.cancel) { Console.err("rescore: " + $0) }
            Console.err(String(format: "rescore: read %.1fs, fit %.1fs, score %.1fs, store %.1fs", r.seconds.read, r.seconds.fit,
                               r.seconds.score, r.seconds.store))
            print("generation \(r.generation) \(noActivate ? "written, not live (generations activate \(r.generation) switches to it)" : "live"): \(r.users) users x top \(top) over \(r.videos) videos; model \(r.modelDirectory)"
                  + (r.pruned.isEmpty ? "" : "; pruned \(r.pruned.map(String.init).joined(separator: ", "))"))
        } catch let e as TrainingError {
            throw CLIError("rescore failed: \(e)")
        } catch let e as EventLogError {
            throw CLIError("rescore failed: \(e)")
        } catch let e as KafkaError {
            throw CLIError("rescore failed: \(e)")
        } catch let e as EASEError {
            throw CLIError("rescore failed: \(e)")
        }
    }
}
