import Foundation
import NIOCore
import PostgresNIO
import CandidateStore

// Sharded generations (the rest of `GenerationStore`): built by several scoring processes,
// complete when the last shard commits.

extension PostgresFeedStore {
    public func beginShardedGeneration(buildKey: String, model: String, runId: String, items: [String], shards: Int,
                                       modelDir: String?, eventsThrough: UInt64?) throws -> Int64 {
        guard shards >= 1 else { throw StoreError.invalid("a sharded generation needs at least one shard") }
        let through = eventsThrough.map { Int64($0) }
        return try transaction { c in
            // A concurrent first shard's insert makes this one wait, then find its generation.
            if let gen = try run(c, """
                INSERT INTO generations(model, run_id, created_at, users, top_n, model_dir, events_through, build_key, shards, shards_done)
                VALUES (\(model), \(runId), \(Self.now()), 0, 0, \(modelDir), \(through), \(buildKey), \(shards), 0)
                ON CONFLICT(build_key) DO NOTHING RETURNING id
                """).first?.decode(Int64.self) {
                try copyItems(c, generation: gen, items: items)
                return gen
            }
            let r = try run(c, "SELECT id, shards FROM generations WHERE build_key = \(buildKey)")[0]
            let (id, n) = try r.decode((Int64, Int32).self)
            guard Int(n) == shards else { throw StoreError.conflict("build \(buildKey) is generation \(id) with \(n) shards, not \(shards)") }
            let stored = try run(c, "SELECT video_id FROM generation_items WHERE generation = \(id) ORDER BY idx").map { try $0.decode(String.self) }
            guard stored == items else {
                throw StoreError.conflict("generation \(id) (build \(buildKey)) was started over another catalog "
                                          + "(\(stored.count) videos, this shard has \(items.count)); start a new build")
            }
            return id
        }
    }

    public func writeShard(generation: Int64, shard: Int, lists: [(user: String, items: [Int32], scores: [Float])],
                           activate: Bool) throws -> ShardProgress {
        try transaction { c in
            guard let g = try run(c, "SELECT shards, events_through FROM generations WHERE id = \(generation)").first,
                  case let (shards?, through) = try g.decode((Int32?, Int64?).self) else {
                throw StoreError.notFound("no sharded generation \(generation)")
            }
            let n = Int(shards)
            guard (0..<n).contains(shard) else { throw StoreError.invalid("shard \(shard + 1) of \(n) does not exist") }
            // The same shard run twice at once: the second waits here, then finds it written.
            try run(c, "SELECT pg_advisory_xact_lock(\(Int32(truncatingIfNeeded: generation)), \(Int32(shard)))")
            if try !run(c, "SELECT 1 FROM generation_shards WHERE generation = \(generation) AND shard = \(shard)").isEmpty {
                let done = try run(c, "SELECT count(*) FROM generation_shards WHERE generation = \(generation)")[0].decode(Int64.self)
                return ShardProgress(generation: generation, done: Int(done), shards: n, live: try live(c) == generation, alreadyWritten: true)
            }
            let catalog = try run(c, "SELECT count(*) FROM generation_items WHERE generation = \(generation)")[0].decode(Int64.self)
            try Self.check(lists, catalog: Int(catalog))
            do { try copyLists(c, generation: generation, through: through, lists: lists) } catch StoreError.conflict {
                throw StoreError.conflict("another shard of generation \(generation) already wrote a list for one of these users")
            }
            try run(c, "INSERT INTO generation_shards(generation, shard, users, finished_at) VALUES (\(generation), \(shard), \(lists.count), \(Self.now()))")
            let topN = lists.map(\.items.count).max() ?? 0
            // The row lock of this update orders concurrent last shards: exactly one sees done == shards.
            let done = try run(c, """
                UPDATE generations SET users = users + \(Int64(lists.count)), top_n = greatest(top_n, \(topN)),
                  shards_done = shards_done + 1 WHERE id = \(generation) RETURNING shards_done
                """)[0].decode(Int32.self)
            if Int(done) == n && activate { try makeLive(c, generation) }
            return ShardProgress(generation: generation, done: Int(done), shards: n, live: try live(c) == generation, alreadyWritten: false)
        }
    }
}
