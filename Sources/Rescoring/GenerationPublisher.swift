import Foundation
import Interactions
import Scoring
import Artifacts
import CandidateStore

/// Splitting a full-catalog scoring job over processes (`score-all --shard I/N`).
public enum ScoreShards {
    /// The model users shard `index` (0-based) of `count` scores: blocks [i*B/n, (i+1)*B/n) of the
    /// B user blocks, in the model's order. Whole blocks, so a user's row sits at the same place
    /// of the same GEMM block as in a one-process run and BLAS rounds its scores the same way
    /// (edge kernels differ).
    public static func users(shard index: Int, of count: Int, users: Int, userBlock: Int) -> Range<Int> {
        precondition(count >= 1 && (0..<count).contains(index) && userBlock > 0)
        let blocks = (users + userBlock - 1) / userBlock
        let lo = min(users, index * blocks / count * userBlock), hi = min(users, (index + 1) * blocks / count * userBlock)
        return lo..<hi
    }
}

/// Writes scored lists into a candidate store as a generation: whole, or as one shard of a
/// generation several processes build together.
public enum GenerationPublisher {
    public enum Outcome: Sendable {
        case generation(Int64)
        case shard(ShardProgress, buildKey: String)
    }

    /// The log position a model trained on `dataDir`'s own event log (`train --events`) covered:
    /// the event count in its fingerprint. Nil for any other training data.
    public static func eventsThrough(_ run: RunRecord, dataDir: String?) -> UInt64? {
        guard let dataDir, run.data.format == "events", run.data.paths == ["events:" + DataDirectory(dataDir).events],
              run.data.fingerprint.hasPrefix("events-") else { return nil }
        return UInt64(run.data.fingerprint.dropFirst("events-".count))
    }

    /// Stores `recs` (rows over `users`, item indices over `items`). With `shard`, joins (or
    /// creates) the generation of build `buildKey` (default: run id, list length and shard
    /// count) and writes this shard's lists and its done mark in one transaction. `writing` is
    /// told just before the write starts.
    public static func publish(_ recs: Recommendations, users: IdMap, items: IdMap, run: RunRecord, modelDir: String,
                               into store: any FeedStore, dataDir: String?, shard: (index: Int, count: Int)? = nil,
                               buildKey: String? = nil, activate: Bool = true,
                               writing: (String) -> Void = { _ in }) throws -> Outcome {
        let lists = recs.storeLists(users: users)
        let through = eventsThrough(run, dataDir: dataDir)
        let dir = URL(fileURLWithPath: modelDir).standardizedFileURL.path
        guard let (i, n) = shard else {
            writing("writing \(lists.count) lists as a new generation")
            return .generation(try store.writeGeneration(model: run.model, runId: run.id, items: items.raw, lists: lists,
                                                         activate: activate, modelDir: dir, eventsThrough: through))
        }
        let key = buildKey ?? "\(run.id)/top\(recs.top)/\(n)-shards"
        let gen = try store.beginShardedGeneration(buildKey: key, model: run.model, runId: run.id, items: items.raw,
                                                   shards: n, modelDir: dir, eventsThrough: through)
        writing("writing shard \(i + 1)/\(n) of generation \(gen) (\(lists.count) lists)")
        return .shard(try store.writeShard(generation: gen, shard: i, lists: lists, activate: activate), buildKey: key)
    }
}

extension Recommendations {
    /// The lists in the form the candidate store writes: raw user id, item indices, scores.
    func storeLists(users: IdMap) -> [(user: String, items: [Int32], scores: [Float])] {
        (0..<self.users.count).map { row in
            (user: users.raw[Int(self.users[row])], items: Array(list(row)), scores: Array(scoreList(row)))
        }
    }
}
