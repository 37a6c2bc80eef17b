import Foundation
import GRDB

/// A generation written by several scoring processes, each for one range of users
/// (`foryou score-all --shard I/N`). The first shard to arrive creates the generation under a
/// build key every shard derives the same way; each shard writes its lists and marks itself done
/// in one transaction, so a shard that dies leaves nothing behind and is simply run again. The
/// generation is incomplete (never live, not activatable, not servable by an experiment) until
/// the last shard commits, which switches it live in that same transaction when asked.
public struct ShardProgress: Sendable, Equatable {
    public var generation: Int64
    public var done: Int
    public var shards: Int
    public var live: Bool
    /// This shard had already been written by an earlier run; nothing was written now.
    public var alreadyWritten: Bool
    public var complete: Bool { done == shards }
    /// An incomplete build older than this (a day) counts as abandoned: `prune` may remove it.
    public static let abandonedAfterMs: Int64 = 86_400_000
    public init(generation: Int64, done: Int, shards: Int, live: Bool, alreadyWritten: Bool) {
        self.generation = generation; self.done = done; self.shards = shards; self.live = live; self.alreadyWritten = alreadyWritten
    }
}

extension SQLiteFeedStore {
    static func registerShards(_ m: inout DatabaseMigrator) {
        m.registerMigration("v9-sharded-generations") { db in
            try db.execute(sql: """
                ALTER TABLE generations ADD COLUMN build_key TEXT;
                ALTER TABLE generations ADD COLUMN shards INTEGER;
                ALTER TABLE generations ADD COLUMN shards_done INTEGER;
                CREATE UNIQUE INDEX generations_by_build_key ON generations(build_key) WHERE build_key IS NOT NULL;
                CREATE TABLE generation_shards(generation INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
                  shard INTEGER NOT NULL, users INTEGER NOT NULL, finished_at INTEGER NOT NULL,
                  PRIMARY KEY(generation, shard)) WITHOUT ROWID;
                """)
        }
    }

    /// Creates the generation of `buildKey` (incomplete, `shards` shards) or joins the one an
    /// earlier shard created; its item table is the catalog every shard's lists index into, so
    /// a shard that brings another catalog is refused.
    public func beginShardedGeneration(buildKey: String, model: String, runId: String, items: [String], shards: Int,
                                       modelDir: String?, eventsThrough: UInt64?) throws -> Int64 {
        guard shards >= 1 else { throw StoreError.invalid("a sharded generation needs at least one shard") }
        return try pool.write { db in
            if let r = try Row.fetchOne(db, sql: "SELECT id, shards FROM generations WHERE build_key = ?", arguments: [buildKey]) {
                let id: Int64 = r["id"]
                let n: Int = r["shards"]
                guard n == shards else {
                    throw StoreError.conflict("build \(buildKey) is generation \(id) with \(n) shards, not \(shards)")
                }
                let stored = try String.fetchAll(db, sql: "SELECT video_id FROM generation_items WHERE generation = ? ORDER BY idx",
                                                 arguments: [id])
                guard stored == items else {
                    throw StoreError.conflict("generation \(id) (build \(buildKey)) was started over another catalog "
                                              + "(\(stored.count) videos, this shard has \(items.count)); start a new build")
                }
                return id
            }
            try db.execute(sql: """
                INSERT INTO generations(model, run_id, created_at, users, top_n, model_dir, events_through, build_key, shards, shards_done)
                VALUES (?,?,?,0,0,?,?,?,?,0)
                """, arguments: [model, runId, SQLiteFeedStore.now(), modelDir, eventsThrough.map { Int64($0) }, buildKey, shards])
            let gen = db.lastInsertedRowID
            let ist = try db.cachedStatement(sql: "INSERT INTO generation_items(generation, idx, video_id) VALUES (?,?,?)")
            for (i, v) in items.enumerated() { try ist.execute(arguments: [gen, i, v]) }
            return gen
        }
    }

    /// Writes shard `shard` (0-based) of a sharded generation and marks it done, in one
    /// transaction; the last shard completes the generation and, with `activate`, makes it
    /// live. A shard already written is left alone (`alreadyWritten`).
    public func writeShard(generation: Int64, shard: Int, lists: [(user: String, items: [Int32], scores: [Float])],
                           activate: Bool) throws -> ShardProgress {
        let progress = try pool.write { db -> ShardProgress in
            guard let g = try Row.fetchOne(db, sql: "SELECT shards, events_through FROM generations WHERE id = ?", arguments: [generation]),
                  let shards = g["shards"] as Int? else {
                throw StoreError.notFound("no sharded generation \(generation)")
            }
            guard (0..<shards).contains(shard) else { throw StoreError.invalid("shard \(shard + 1) of \(shards) does not exist") }
            let live = { try Int64.fetchOne(db, sql: "SELECT generation FROM live WHERE singleton = 1") == generation }
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM generation_shards WHERE generation = ? AND shard = ?",
                                 arguments: [generation, shard]) == true {
                let done = try Int.fetchOne(db, sql: "SELECT count(*) FROM generation_shards WHERE generation = ?", arguments: [generation]) ?? 0
                return ShardProgress(generation: generation, done: done, shards: shards, live: try live(), alreadyWritten: true)
            }
            let catalog = try Int.fetchOne(db, sql: "SELECT count(*) FROM generation_items WHERE generation = ?", arguments: [generation]) ?? 0
            for l in lists {
                guard l.items.count == l.scores.count, l.items.allSatisfy({ $0 >= 0 && Int($0) < catalog }) else {
                    throw StoreError.invalid("list of user \(l.user) refers to items outside the generation's catalog")
                }
            }
            let through = g["events_through"] as Int64?
            let cst = try db.cachedStatement(sql: "INSERT INTO candidate_lists(generation, user_id, list, through_event) VALUES (?,?,?,?)")
            do {
                for l in lists { try cst.execute(arguments: [generation, l.user, SQLiteFeedStore.pack(l.items, l.scores), through]) }
            } catch let e as DatabaseError where e.resultCode == .SQLITE_CONSTRAINT {
                throw StoreError.conflict("another shard of generation \(generation) already wrote a list for one of these users")
            }
            let now = SQLiteFeedStore.now()
            try db.execute(sql: "INSERT INTO generation_shards(generation, shard, users, finished_at) VALUES (?,?,?,?)",
                           arguments: [generation, shard, lists.count, now])
            let topN = lists.map(\.items.count).max() ?? 0
            try db.execute(sql: "UPDATE generations SET users = users + ?, top_n = max(top_n, ?), shards_done = shards_done + 1 WHERE id = ?",
                           arguments: [lists.count, topN, generation])
            let done = try Int.fetchOne(db, sql: "SELECT shards_done FROM generations WHERE id = ?", arguments: [generation]) ?? 0
            if done == shards && activate { try SQLiteFeedStore.makeLive(db, generation) }
            return ShardProgress(generation: generation, done: done, shards: shards, live: try live(), alreadyWritten: false)
        }
        // Once, when the last shard is in (each would pay a checkpoint and its fsync).
        if progress.done == progress.shards && !progress.alreadyWritten { emptyTheLog() }
        return progress
    }

    /// Throws unless `generation` exists and every shard of it is written.
    static func requireComplete(_ db: Database, _ generation: Int64) throws {
        guard let r = try Row.fetchOne(db, sql: "SELECT shards, shards_done FROM generations WHERE id = ?", arguments: [generation]) else {
            throw StoreError.notFound("no generation \(generation)")
        }
        if let n = r["shards"] as Int?, let done = r["shards_done"] as Int?, done < n {
            throw StoreError.conflict("generation \(generation) is incomplete: \(done) of \(n) shards written")
        }
    }
}
