import ArgumentParser
import ForYou
import Foundation

struct ScoreAll: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score-all",
        abstract: "Top-N over the full catalog for every user of the training data (seen items excluded).",
        discussion: """
        Writes user<TAB>item<TAB>score lines in rank order, raw ids. Users with fewer unseen items than N get fewer lines.

        With --into and --shard I/N, this process scores only the I-th of N ranges of the \
        model's users (whole --user-block blocks, so every user is scored by exactly the GEMM \
        one process would use, to the bit) into a generation shared by the N processes (on one machine or several \
        over a shared store): the first to arrive creates it, each writes its lists and marks \
        its shard done in one transaction, and the generation goes live when the last shard \
        is written. A shard that dies wrote nothing: run the same command again. Shards of one \
        build find each other by --build (default: the model's run id, N and the list length).
        """)

    @Option(help: "Model directory or run id (or unique prefix) under --models.") var model: String
    @Option(help: "Models directory where run ids are looked up.") var models = "models"
    @Option(help: "List length N.") var top = 100
    @Option(help: "Output TSV.") var out: String?
    @Option(help: "Data directory: write the lists as a new candidate generation there and make it live.") var into: String?
    @Option(help: "Write the generation into this candidate store instead of the data directory's: sqlite:PATH or postgres://USER@HOST:PORT/DATABASE.")
    var store: String?
    @Flag(name: .customLong("no-activate"), help: "With --into: write the generation without switching it live.") var noActivate = false
    @Option(name: .customLong("users"), help: "Only these users: a file with one raw user id per line.") var usersFile: String?
    @Flag(name: .customLong("include-seen"), help: "Do not exclude the users' training items.") var includeSeen = false
    @Option(name: .customLong("user-block"), help: "Users per GEMM block.") var userBlock = 512
    @Option(name: .customLong("item-block"), help: "Items per GEMM block (0 = the whole catalog at once).") var itemBlock = 4096
    @Option(help: "With --into: score shard I of N of the users (e.g. 2/4) into a generation the N shards share.") var shard: String?
    @Option(help: "With --shard: the name shards of one generation share (default: run id, N and --top).") var build: String?
    @Flag(help: "Print timing figures as one JSON object on stdout.") var json = false
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard top > 0 else { throw ValidationError("--top must be positive") }
        guard out != nil || into != nil || store != nil else { throw ValidationError("give --out FILE, --into DATA_DIR (or --store URL), or both") }
        guard userBlock > 0 else { throw ValidationError("--user-block must be positive") }
        guard itemBlock >= 0 else { throw ValidationError("--item-block must be >= 0") }
        if shard != nil {
            _ = try shardSpec()
            guard into != nil || store != nil else { throw ValidationError("--shard needs --into DATA_DIR or --store URL (the generation the shards share)") }
            guard usersFile == nil else { throw ValidationError("--shard and --users cannot be combined") }
        } else if build != nil {
            throw ValidationError("--build is for --shard")
        }
    }

    /// `--shard I/N` as (0-based index, count).
    func shardSpec() throws -> (index: Int, count: Int)? {
        guard let shard else { return nil }
        let parts = shard.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, (1...n).contains(i) else {
            throw ValidationError("--shard must be I/N with 1 <= I <= N (e.g. 2/4), not '\(shard)'")
        }
        return (i - 1, n)
    }

    func run() throws {
        common.announce()
        let model = try ModelLoading.directory(self.model, models: models, command: "score-all")
        let m = try ModelLoading.load(model)
        var subset: [Int32]?
        if let usersFile {
            guard let text = try? String(contentsOfFile: usersFile, encoding: .utf8) else {
                throw CLIError("cannot read \(usersFile)")
            }
            var list: [Int32] = []
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let id = line.trimmingCharacters(in: .whitespaces)
                if id.isEmpty { continue }
                guard let u = m.users.index(of: id) else { throw CLIError("\(usersFile):\(n + 1): unknown user '\(id)'") }
                list.append(u)
            }
            subset = list
        }
        let sharding = try shardSpec()
        if let (i, n) = sharding {
            subset = ScoreShards.users(shard: i, of: n, users: m.users.count, userBlock: userBlock).map { Int32($0) }
        }
        let total = subset?.count ?? m.users.count
        let target: (any FeedStore)? = into != nil || store != nil ? try StoreOption.open(store, dataDir: into ?? "var") : nil
        // A two-tower model scored into a data directory also ranks the catalog videos it never
        // saw, embedded from their caption and tags.
        var ranker = m.ranker, items = m.items, exclude = includeSeen ? nil : m.seen
        if let target, let tt = m.ranker as? TwoTowerRanker, tt.model != nil {
            let (ids, vectors) = TwoTowerCatalog.extend(tt, items: m.items, videos: try target.videos())
            if ids.count > m.items.count {
                Console.err("score-all: \(ids.count - m.items.count) catalog videos the model never saw embedded from caption and tags")
                ranker = StoredFactors(kind: "two-tower", userFactors: tt.userFactors, itemFactors: vectors)
                items = IdMap(raw: ids)
                exclude = exclude.map { CSR(rows: $0.rows, cols: ids.count, indptr: $0.indptr, indices: $0.indices, values: $0.values) }
            }
        }
        let t0 = Date()
        var lastReport = Date.distantPast
        let recs = BatchScorer(top: top, threads: common.threads, userBlock: userBlock, itemBlock: itemBlock)
            .recommend(ranker, users: subset, exclude: exclude, cancel: CLIContext.cancel) { p in
                if Date().timeIntervalSince(lastReport) > 2 {
                    lastReport = Date()
                    Console.err(String(format: "score-all: %d/%d users  elapsed %.1fs  ETA %.1fs", p.done, p.total, p.elapsed, p.eta))
                }
            }
        let scoreSeconds = Date().timeIntervalSince(t0)
        if CLIContext.cancel.isCancelled { throw CLIError("score-all interrupted; nothing written") }
        let t1 = Date()
        if let out { try RecommendationWriter.write(recs, users: m.users, items: items, to: out) }
        let writeSeconds = Date().timeIntervalSince(t1)
        if let store = target {
            let t2 = Date()
            let destination = self.store ?? into ?? ""
            let outcome: GenerationPublisher.Outcome
            do {
                outcome = try GenerationPublisher.publish(recs, users: m.users, items: items, run: m.run, modelDir: model, into: store,
                                                          dataDir: into, shard: sharding, buildKey: build, activate: !noActivate) {
                    Console.err("score-all: " + $0)
                }
            } catch let e as StoreError { throw CLIError("score-all: \(e)") }
            switch outcome {
            case .shard(let progress, let key):
                let (i, n) = sharding!
                if progress.alreadyWritten {
                    Console.err("score-all: shard \(i + 1)/\(n) of generation \(progress.generation) (build \(key)) was already written; nothing to do")
                } else {
                    Console.err(String(format: "score-all: shard %d/%d of generation %lld (build %@): %d users x top %d stored in %.2fs",
                                       i + 1, n, progress.generation, key, recs.users.count, top, Date().timeIntervalSince(t2)))
                }
                Console.err(progress.complete
                    ? "score-all: generation \(progress.generation) complete (\(n) of \(n) shards)\(progress.live ? ", now live" : "")"
                    : "score-all: generation \(progress.generation) waits for \(n - progress.done) more shard(s)")
            case .generation(let gen):
                Console.err(String(format: "score-all: generation %lld (%d users x top %d) stored in %@ in %.2fs%@", gen, recs.users.count,
                                   top, StoreOption.redacted(destination), Date().timeIntervalSince(t2), noActivate ? "" : ", now live"))
            }
        }
        let flops = 2.0 * Double(total) * Double(ranker.itemCount) * Double((ranker as? FactorRanker)?.factors ?? 0)
        if json {
            let obj: [String: Any] = ["users": total, "items": ranker.itemCount, "top": top, "score_s": scoreSeconds,
                                      "write_s": writeSeconds, "users_per_s": Double(total) / max(scoreSeconds, 1e-9),
                                      "gemm_gflops": flops / max(scoreSeconds, 1e-9) / 1e9, "threads": common.threads,
                                      "user_block": userBlock, "item_block": itemBlock, "blas_core": BLASRuntime.coreName]
            print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
        }
        Console.err(String(format: "score-all: %d users x %d items, top %d in %.2fs (%.0f users/s, GEMM %.1f GFLOP/s effective); written in %.2fs",
                           total, ranker.itemCount, top, scoreSeconds, Double(total) / max(scoreSeconds, 1e-9),
                           flops / max(scoreSeconds, 1e-9) / 1e9, writeSeconds))
    }
}
