import Foundation
import GRDB
import GRDBSQLite
#if canImport(Glibc)
import Glibc
#endif

/// The embedded store: one SQLite file (WAL), `synchronous=FULL` so an acknowledged write
/// survives power loss. Lists are stored one row per (generation, user) as a packed blob of
/// (u32 item index, f32 score) pairs over the generation's own item table, so a 200k x 200
/// generation loads in seconds.
public final class SQLiteFeedStore: FeedStore, @unchecked Sendable {
    public let path: String
    let pool: DatabasePool
    private let lock = NSLock()
    private var itemCache: [Int64: [String]] = [:]
    private let readersLock = NSLock()
    private var readers: [UInt: DatabaseQueue] = [:]
    /// The feed server's list cache (`enableListCache`) and its watcher's stop flag.
    var listCache: ListCache?
    private let watcher = WatcherFlag()
    final class WatcherFlag: @unchecked Sendable {
        let lock = NSLock()
        var stop = false
        var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stop }
    }

    deinit {
        watcher.lock.lock(); watcher.stop = true; watcher.lock.unlock()
    }

    public init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            // Readers map the file instead of copying pages through pread.
            try db.execute(sql: "PRAGMA mmap_size = 1073741824")
            // The write-ahead log is cut back to this size whenever it restarts: a generation's
            // lists pass through it by the gigabyte, and an open reads every frame it holds.
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
        }
        pool = try DatabasePool(path: path, configuration: config)
        // GRDB puts WAL connections on synchronous=NORMAL after prepareDatabase, which can lose
        // the last commits on power loss; the (single, long-lived) writer holds acknowledged
        // data, so it runs with FULL.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try SQLiteFeedStore.migrator.migrate(pool)
    }

    /// After a large write (a generation's lists, a prune): the write-ahead log copied into the
    /// database and emptied, so that the next open does not read through gigabytes of frames to
    /// index them (half a second per 2 GiB, on a server's start-up path). Best effort: when
    /// readers keep it busy past the busy timeout, a later checkpoint does it.
    func emptyTheLog() {
        _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
    }

    /// Empties the write-ahead log and closes the file. (GRDB closes the writer before the
    /// readers, and a reader cannot checkpoint: SQLite's own emptying at the last close never
    /// happens, so it is done here first.)
    public func close() {
        emptyTheLog()
        try? pool.close()
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE videos(
                  id TEXT PRIMARY KEY, caption TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '',
                  topic TEXT NOT NULL DEFAULT '', creator TEXT NOT NULL DEFAULT '', duration_ms INTEGER NOT NULL DEFAULT 0,
                  status TEXT NOT NULL CHECK(status IN ('processing','ready','failed','removed')),
                  stream_url TEXT, thumbnail_url TEXT, created_at INTEGER NOT NULL, upload_id TEXT UNIQUE, owner TEXT);
                CREATE TABLE generations(
                  id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, run_id TEXT NOT NULL,
                  created_at INTEGER NOT NULL, users INTEGER NOT NULL, top_n INTEGER NOT NULL, activated_at INTEGER);
                CREATE TABLE live(singleton INTEGER PRIMARY KEY CHECK(singleton = 1),
                  generation INTEGER NOT NULL REFERENCES generations(id));
                CREATE TABLE generation_items(generation INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
                  idx INTEGER NOT NULL, video_id TEXT NOT NULL, PRIMARY KEY(generation, idx)) WITHOUT ROWID;
                CREATE TABLE candidates(generation INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
                  user_id TEXT NOT NULL, list BLOB NOT NULL, PRIMARY KEY(generation, user_id)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v2-meta") { db in
            try db.execute(sql: "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('catalog_version', 0)")
        }
        // A list blob (~1.6 KB for 200 candidates) overflows a WITHOUT ROWID row (index b-tree
        // payloads spill past ~1 KB); in a rowid table it stays on its leaf page.
        m.registerMigration("v3-candidates-rowid") { db in
            try db.execute(sql: """
                CREATE TABLE candidate_lists(id INTEGER PRIMARY KEY,
                  generation INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
                  user_id TEXT NOT NULL, list BLOB NOT NULL);
                INSERT INTO candidate_lists(generation, user_id, list) SELECT generation, user_id, list FROM candidates;
                DROP TABLE candidates;
                CREATE UNIQUE INDEX candidate_lists_by_user ON candidate_lists(generation, user_id);
                """)
        }
        // Consumers of the event log that write into the store commit their read position in
        // the same transaction as what they wrote (exactly-once effects across a crash).
        m.registerMigration("v4-consumer-cursors") { db in
            try db.execute(sql: """
                CREATE TABLE consumer_cursors(name TEXT PRIMARY KEY, generation INTEGER, next_event INTEGER NOT NULL)
                """)
        }
        m.registerMigration("v5-model-dir") { db in
            try db.execute(sql: "ALTER TABLE generations ADD COLUMN model_dir TEXT")
        }
        // The first event id a generation's model did not see (its training covered the log
        // below it), so the ranking worker knows whom to fold in again after a switch.
        m.registerMigration("v6-events-through") { db in
            try db.execute(sql: "ALTER TABLE generations ADD COLUMN events_through INTEGER")
            // Per list: it reflects every event with a smaller id (nil: not known).
            try db.execute(sql: "ALTER TABLE candidate_lists ADD COLUMN through_event INTEGER")
        }
        registerExperiments(&m)
        registerUploads(&m)
        registerShards(&m)
        return m
    }

    /// Where the model of a generation lives (so workers can fold users in against it).
    public func setModelDirectory(generation: Int64, path: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE generations SET model_dir = ? WHERE id = ?", arguments: [path, generation])
        }
    }

    public func modelDirectory(generation: Int64) throws -> String? {
        try source(generation: generation)?.modelDir
    }

    /// Where a generation came from: its model directory and the event-log position its
    /// training covered (nil when it was not trained on this data directory's log).
    public func source(generation: Int64) throws -> (modelDir: String?, eventsThrough: UInt64?)? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT model_dir, events_through FROM generations WHERE id = ?", arguments: [generation])
                .map { (modelDir: $0["model_dir"], eventsThrough: ($0["events_through"] as Int64?).map { UInt64($0) }) }
        }
    }

    static func bumpCatalog(_ db: Database) throws {
        try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'")
    }

    /// Increases with every catalog change, so readers can cache the catalog and reload cheaply.
    public func catalogVersion() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'catalog_version'") ?? 0 }
    }

    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: videos

    static func row(_ v: Video) -> StatementArguments {
        [v.id, v.caption, v.tags.joined(separator: ","), v.topic, v.creator, v.durationMs, v.status.rawValue,
         v.streamURL, v.thumbnailURL, v.createdAt, v.uploadId, v.owner]
    }

    static let columns = "id, caption, tags, topic, creator, duration_ms, status, stream_url, thumbnail_url, created_at, upload_id, owner"

    /// A row of `SELECT \(columns)`, read by position (a lookup by name lowercases the name for
    /// every column of every row: most of a 200k-video catalog load).
    static func video(_ r: Row) -> Video {
        let tags: String = r[2]
        return Video(id: r[0], caption: r[1], tags: tags.isEmpty ? [] : tags.split(separator: ",").map(String.init),
                     topic: r[3], creator: r[4], durationMs: r[5],
                     status: VideoStatus(rawValue: r[6]) ?? .failed, streamURL: r[7],
                     thumbnailURL: r[8], createdAt: r[9], uploadId: r[10], owner: r[11])
    }

    public func upsertVideos(_ videos: [Video]) throws {
        try pool.write { db in
            let st = try db.cachedStatement(sql: """
                INSERT INTO videos(\(SQLiteFeedStore.columns)) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
                ON CONFLICT(id) DO UPDATE SET caption=excluded.caption, tags=excluded.tags, topic=excluded.topic,
                  creator=excluded.creator, duration_ms=excluded.duration_ms, status=excluded.status,
                  stream_url=excluded.stream_url, thumbnail_url=excluded.thumbnail_url, created_at=excluded.created_at,
                  upload_id=excluded.upload_id, owner=excluded.owner
                """)
            for v in videos { try st.execute(arguments: SQLiteFeedStore.row(v)) }
            try SQLiteFeedStore.bumpCatalog(db)
        }
    }

    public func insertVideo(_ video: Video) throws {
        do {
            try pool.write { db in
                try db.execute(sql: "INSERT INTO videos(\(SQLiteFeedStore.columns)) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                               arguments: SQLiteFeedStore.row(video))
                try SQLiteFeedStore.bumpCatalog(db)
            }
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError.conflict("video \(video.id) or upload \(video.uploadId ?? "-") already exists")
        }
    }

    public func video(id: String) throws -> Video? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(SQLiteFeedStore.columns) FROM videos WHERE id = ?", arguments: [id])
                .map(SQLiteFeedStore.video)
        }
    }

    public func videos() throws -> [Video] {
        try pool.read { db in
            // Stepped through SQLite's own API, each column read in place (GRDB's row decoding
            // was most of a 200k-video catalog load, on a server's start-up path), in table
            // order, then sorted here by (created_at, id), the order SQLite's ORDER BY gives (ids
            // bytewise): its sorter copied every row first.
            var out: [Video] = []
            let statement = try db.makeStatement(sql: "SELECT \(SQLiteFeedStore.columns) FROM videos")
            try withExtendedLifetime(statement) {
                let st = statement.sqliteStatement
                defer { sqlite3_reset(st) }
                func text(_ i: Int32) -> String? {
                    guard let p = sqlite3_column_text(st, i) else { return nil }
                    return String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(st, i))), as: UTF8.self)
                }
                while true {
                    let rc = sqlite3_step(st)
                    if rc == SQLITE_DONE { break }
                    guard rc == SQLITE_ROW else {
                        throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
                    }
                    let tags = text(2) ?? ""
                    out.append(Video(id: text(0) ?? "", caption: text(1) ?? "", tags: tags.isEmpty ? [] : tags.split(separator: ",").map(String.init),
                                     topic: text(3) ?? "", creator: text(4) ?? "", durationMs: Int(sqlite3_column_int64(st, 5)),
                                     status: VideoStatus(rawValue: text(6) ?? "") ?? .failed, streamURL: text(7),
                                     thumbnailURL: text(8), createdAt: sqlite3_column_int64(st, 9), uploadId: text(10), owner: text(11)))
                }
            }
            out.sort { $0.createdAt != $1.createdAt ? $0.createdAt < $1.createdAt : $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }
            return out
        }
    }

    // MARK: generations

    static func pack(_ items: [Int32], _ scores: [Float]) -> Data { PackedCandidates.pack(items, scores) }

    public func writeGeneration(model: String, runId: String, items: [String],
                                lists: [(user: String, items: [Int32], scores: [Float])], activate: Bool) throws -> Int64 {
        try writeGeneration(model: model, runId: runId, items: items, lists: lists, activate: activate, modelDir: nil,
                            eventsThrough: nil)
    }

    /// Writes a generation with its source (model directory, event-log position) in the same
    /// transaction, so a reader never sees it live without them.
    public func writeGeneration(model: String, runId: String, items: [String],
                                lists: [(user: String, items: [Int32], scores: [Float])], activate: Bool,
                                modelDir: String?, eventsThrough: UInt64?) throws -> Int64 {
        let topN = lists.map(\.items.count).max() ?? 0
        for l in lists {
            guard l.items.count == l.scores.count, l.items.allSatisfy({ $0 >= 0 && Int($0) < items.count }) else {
                throw StoreError.invalid("list of user \(l.user) refers to items outside the generation's catalog")
            }
        }
        defer { emptyTheLog() }
        return try pool.write { db in
            try db.execute(sql: "INSERT INTO generations(model, run_id, created_at, users, top_n, model_dir, events_through) VALUES (?,?,?,?,?,?,?)",
                           arguments: [model, runId, SQLiteFeedStore.now(), lists.count, topN, modelDir,
                                       eventsThrough.map { Int64($0) }])
            let gen = db.lastInsertedRowID
            let ist = try db.cachedStatement(sql: "INSERT INTO generation_items(generation, idx, video_id) VALUES (?,?,?)")
            for (i, v) in items.enumerated() { try ist.execute(arguments: [gen, i, v]) }
            let cst = try db.cachedStatement(sql: "INSERT INTO candidate_lists(generation, user_id, list, through_event) VALUES (?,?,?,?)")
            let through = eventsThrough.map { Int64($0) }
            for l in lists { try cst.execute(arguments: [gen, l.user, SQLiteFeedStore.pack(l.items, l.scores), through]) }
            if activate { try SQLiteFeedStore.makeLive(db, gen) }
            return gen
        }
    }

    static func makeLive(_ db: Database, _ gen: Int64) throws {
        try db.execute(sql: "INSERT INTO live(singleton, generation) VALUES (1, ?) ON CONFLICT(singleton) DO UPDATE SET generation = excluded.generation",
                       arguments: [gen])
        try db.execute(sql: "UPDATE generations SET activated_at = ? WHERE id = ?", arguments: [now(), gen])
    }

    static func info(_ r: Row, live: Int64?) -> GenerationInfo {
        let id: Int64 = r["id"]
        return GenerationInfo(id: id, model: r["model"], runId: r["run_id"], createdAt: r["created_at"], users: r["users"],
                              topN: r["top_n"], live: id == live, activatedAt: r["activated_at"], shards: r["shards"],
                              shardsDone: r["shards_done"])
    }

    public func generations() throws -> [GenerationInfo] {
        try pool.read { db in
            let live = try Int64.fetchOne(db, sql: "SELECT generation FROM live WHERE singleton = 1")
            return try Row.fetchAll(db, sql: "SELECT * FROM generations ORDER BY id").map { SQLiteFeedStore.info($0, live: live) }
        }
    }

    public func liveGeneration() throws -> GenerationInfo? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT g.* FROM generations g JOIN live l ON l.generation = g.id")
                .map { SQLiteFeedStore.info($0, live: $0["id"]) }
        }
    }

    public func activate(_ generation: Int64) throws {
        try pool.write { db in
            try SQLiteFeedStore.requireComplete(db, generation)
            try SQLiteFeedStore.makeLive(db, generation)
        }
    }

    public func rollback() throws -> GenerationInfo {
        try pool.write { db in
            guard let live = try Int64.fetchOne(db, sql: "SELECT generation FROM live WHERE singleton = 1") else {
                throw StoreError.notFound("no generation is live")
            }
            guard let prev = try Row.fetchOne(db, sql: """
                SELECT * FROM generations WHERE id != ? AND activated_at IS NOT NULL ORDER BY activated_at DESC, id DESC LIMIT 1
                """, arguments: [live]) else {
                throw StoreError.notFound("no earlier live generation to roll back to")
            }
            let id: Int64 = prev["id"]
            try SQLiteFeedStore.makeLive(db, id)
            return SQLiteFeedStore.info(prev, live: id)
        }
    }

    /// Replaces some users' lists in a generation (items must already be in its item table;
    /// others are appended to it) and, in the same transaction, records the consumer's cursor.
    @discardableResult
    public func replaceLists(generation: Int64, lists: [(user: String, videos: [String], scores: [Float])],
                             consumer: String, nextEvent: UInt64, expecting: UInt64?, fence: String?) throws -> Bool {
        // BEGIN IMMEDIATE: the cursor is read under the write lock every process shares, so the
        // compare and the set are one step.
        let wrote: Bool = try pool.writeWithoutTransaction { db in
            var done = false
            try db.inTransaction(.immediate) {
                done = try replaceListsLocked(db, generation: generation, lists: lists, consumer: consumer,
                                              nextEvent: nextEvent, expecting: expecting, fence: fence ?? consumer)
                return done ? .commit : .rollback
            }
            return done
        }
        if wrote {
            lock.lock()
            itemCache[generation] = nil
            lock.unlock()
        }
        return wrote
    }

    private func replaceListsLocked(_ db: Database, generation: Int64, lists: [(user: String, videos: [String], scores: [Float])],
                                    consumer: String, nextEvent: UInt64, expecting: UInt64?, fence: String) throws -> Bool {
            if let expecting, let stored = try Int64.fetchOne(db, sql: "SELECT next_event FROM consumer_cursors WHERE name = ?",
                                                              arguments: [fence]), UInt64(stored) != expecting {
                return false
            }
            guard try Int64.fetchOne(db, sql: "SELECT id FROM generations WHERE id = ?", arguments: [generation]) != nil else {
                throw StoreError.notFound("no generation \(generation)")
            }
            var table = ItemTableBuilder(try String.fetchAll(db, sql: "SELECT video_id FROM generation_items WHERE generation = ? ORDER BY idx",
                                                             arguments: [generation]))
            let addItem = try db.cachedStatement(sql: "INSERT INTO generation_items(generation, idx, video_id) VALUES (?,?,?)")
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO candidate_lists(generation, user_id, list, through_event) VALUES (?,?,?,?)
                ON CONFLICT(generation, user_id) DO UPDATE SET list = excluded.list, through_event = excluded.through_event
                """)
            for l in lists {
                guard l.videos.count == l.scores.count else { throw StoreError.invalid("list of \(l.user): videos and scores differ in length") }
                let idx = try table.indices(l.videos) { p, v in try addItem.execute(arguments: [generation, Int(p), v]) }
                try upsert.execute(arguments: [generation, l.user, SQLiteFeedStore.pack(idx, l.scores), Int64(nextEvent)])
            }
            try db.execute(sql: """
                INSERT INTO consumer_cursors(name, generation, next_event) VALUES (?,?,?)
                ON CONFLICT(name) DO UPDATE SET generation = excluded.generation, next_event = excluded.next_event
                """, arguments: [consumer, generation, Int64(nextEvent)])
            return true
    }

    /// A consumer's committed position: the generation it wrote into and the next event to read.
    public func consumerCursor(_ name: String) throws -> (generation: Int64?, nextEvent: UInt64)? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT generation, next_event FROM consumer_cursors WHERE name = ?", arguments: [name])
                .map { (generation: $0["generation"], nextEvent: UInt64(($0["next_event"] as Int64))) }
        }
    }

    public func consumerCursors() throws -> [(name: String, generation: Int64?, nextEvent: UInt64)] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, generation, next_event FROM consumer_cursors ORDER BY name")
                .map { (name: $0["name"], generation: $0["generation"], nextEvent: UInt64(($0["next_event"] as Int64))) }
        }
    }

    public func prune(keep: Int) throws -> [Int64] {
        defer { emptyTheLog() }
        let removed: [Int64] = try pool.write { db in
            let live = try Int64.fetchOne(db, sql: "SELECT generation FROM live WHERE singleton = 1")
            let generations = try Row.fetchAll(db, sql: "SELECT * FROM generations").map { SQLiteFeedStore.info($0, live: live) }
            let experiments = try Row.fetchAll(db, sql: "SELECT * FROM experiments WHERE status != 'stopped'").map(Self.experiment)
            let doomed = GenerationPruning.doomed(generations, keep: keep, experiments: experiments, now: SQLiteFeedStore.now())
            for id in doomed {
                try db.execute(sql: "DELETE FROM candidate_lists WHERE generation = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM generation_items WHERE generation = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM generation_shards WHERE generation = ?", arguments: [id])
                try db.execute(sql: "DELETE FROM generations WHERE id = ?", arguments: [id])
            }
            return doomed
        }
        lock.lock()
        for id in removed { itemCache[id] = nil }
        lock.unlock()
        return removed
    }

    func items(of generation: Int64, _ db: Database) throws -> [String] {
        lock.lock()
        if let c = itemCache[generation] { lock.unlock(); return c }
        lock.unlock()
        let list = try String.fetchAll(db, sql: "SELECT video_id FROM generation_items WHERE generation = ? ORDER BY idx",
                                       arguments: [generation])
        lock.lock()
        itemCache[generation] = list
        lock.unlock()
        return list
    }

    /// A read-only connection for the calling thread: the feed's hot path runs on a few
    /// event-loop threads, and a connection per thread needs no pool locking. Created on first
    /// use and closed with the store. (A DatabaseQueue serialises its own use, so a reused
    /// thread id sharing one is still correct.)
    func threadReader() throws -> DatabaseQueue {
        let key = UInt(bitPattern: Int(bitPattern: UInt(pthread_self())))
        readersLock.lock()
        if let q = readers[key] { readersLock.unlock(); return q }
        readersLock.unlock()
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        // No mmap here: every page a lookup faults in through a mapping drags its neighbours in
        // too (the kernel's fault-around), and each thread's mapping counts them again, so a
        // server's RSS grew by hundreds of MB of page cache; pread into SQLite's small page
        // cache costs the hot path little (scripts/bench-serve).
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA mmap_size = 0") }
        let q = try DatabaseQueue(path: path, configuration: config)
        readersLock.lock()
        if readers.count >= 64 { readers.removeAll() }
        readers[key] = q
        readersLock.unlock()
        return q
    }

    public func packedCandidates(generation: Int64, user: String) throws -> PackedCandidates? {
        guard let cache = listCache else { return try readList(generation: generation, user: user) }
        return try cache.list(ListCache.Key(generation: generation, user: user)) { try readList(generation: generation, user: user) }
    }

    public func memoryCandidates(generation: Int64, user: String) -> PackedCandidates?? {
        listCache?.peek(ListCache.Key(generation: generation, user: user))
    }

    /// Keeps the lists the feed reads in memory (`capacity` lists, each for at most `ttl` seconds),
    /// watched every 20 ms (`enableListCache(capacity:ttl:pollSeconds:)`).
    public func enableListCache(capacity: Int = 50_000, ttl: Double = 300) throws {
        try enableListCache(capacity: capacity, ttl: ttl, pollSeconds: 0.02)
    }

    /// Keeps the lists the feed reads in memory (`capacity` lists, each for at most `ttl` seconds).
    /// A thread polls `PRAGMA data_version` every `pollSeconds` on its own connection and drops
    /// the whole cache when any other connection (a worker's `replaceLists`, an import) committed,
    /// so a replaced list is served at most `pollSeconds` (plus a poll) after its commit.
    public func enableListCache(capacity: Int, ttl: Double, pollSeconds: Double) throws {
        var config = Configuration()
        config.readonly = true
        let q = try DatabaseQueue(path: path, configuration: config)
        let cache = ListCache(capacity: capacity, ttl: ttl)
        let first = try q.inDatabase { try Int.fetchOne($0, sql: "PRAGMA data_version") ?? 0 }
        cache.setListening(true)
        listCache = cache
        let flag = watcher
        let t = Thread {
            var version = first
            while !flag.isStopped {
                usleep(useconds_t(pollSeconds * 1e6))
                guard let v = try? q.inDatabase({ try Int.fetchOne($0, sql: "PRAGMA data_version") }) else {
                    cache.setListening(false)  // cannot tell what changed: bypass until it can again
                    continue
                }
                if v != version {
                    version = v
                    cache.invalidateAll()
                }
                cache.setListening(true)
            }
        }
        t.name = "foryou.sqlite.list-cache"
        t.start()
    }

    /// Lists served from memory and read from the file since the cache was enabled.
    public var listCacheStats: (hits: Int, misses: Int, lists: Int)? { listCache?.stats }

    func readList(generation: Int64, user: String) throws -> PackedCandidates? {
        // One SELECT is consistent on its own, so no read transaction is opened around it.
        try threadReader().inDatabase { db in
            let st = try db.cachedStatement(sql: "SELECT list, through_event FROM candidate_lists WHERE generation = ? AND user_id = ?")
            guard let row = try Row.fetchOne(st, arguments: [generation, user]) else { return nil }
            let blob: Data = row[0]
            let through = (row[1] as Int64?).map { UInt64($0) }
            var packed = PackedCandidates(generation: generation, itemTable: try self.items(of: generation, db), blob: blob,
                                          throughEvent: through)
            // Another process may have appended to the item table since it was cached.
            if packed.count > 0 && Int(packed.maxItem) >= packed.itemTable.count {
                self.lock.lock(); self.itemCache[generation] = nil; self.lock.unlock()
                packed.itemTable = try self.items(of: generation, db)
            }
            return packed
        }
    }
}

extension SQLiteFeedStore {
    /// `PRAGMA synchronous` of the writer connection (2 = FULL).
    public func synchronousMode() throws -> Int {
        try pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }
}
