import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import CandidateStore

/// A failure talking to PostgreSQL, with the server's message when there is one.
public struct PostgresStoreError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ message: String) { description = message }
    init(_ error: any Error) {
        if let e = error as? PSQLError, let info = e.serverInfo {
            description = "postgres: \(info[.message] ?? "error") (SQLSTATE \(info[.sqlState] ?? "?"))"
        } else if let e = error as? PSQLError {
            description = "postgres: \(e.code)"
        } else {
            description = "postgres: \(error)"
        }
    }
}

/// The candidate store and catalog on PostgreSQL: the same behaviour as `SQLiteFeedStore`
/// (generations written whole and switched live atomically, or built by shards; per-user lists as
/// the same packed bytes over a per-generation item table) for deployments where several feed
/// servers and scoring machines share one store.
///
/// Calls are synchronous, like the embedded store's: each checks a connection out of a small
/// pool (opened lazily, at most `maxConnections`) and waits on its result on the calling thread.
/// Generation loads stream through `COPY ... FROM STDIN`. Schema changes are versioned and applied
/// under an advisory lock, so processes starting together migrate once.
public final class PostgresFeedStore: FeedStore, @unchecked Sendable {
    public let url: String
    let configuration: PostgresConnection.Configuration
    let maxConnections: Int
    let logger: Logger
    private let cond = NSCondition()
    private var idle: [PostgresConnection] = []
    private var opened = 0
    private var nextId = 0
    private let cacheLock = NSLock()
    private var itemCache: [Int64: [String]] = [:]
    /// The feed server's list cache (`enableListCache`) and the connection its invalidations arrive on.
    var listCache: ListCache?
    let listenerLock = NSLock()
    var listener: PostgresConnection?

    /// `url`: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (no TLS: a loopback or private
    /// network; put a TLS-terminating proxy in front otherwise).
    public init(url: String, maxConnections: Int = 8) throws {
        guard let c = URLComponents(string: url), c.scheme == "postgres" || c.scheme == "postgresql", let host = c.host,
              !host.isEmpty else {
            throw PostgresStoreError("not a PostgreSQL URL: '\(Self.redact(url))' (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)")
        }
        guard c.queryItems?.isEmpty ?? true else {
            // Silently ignoring e.g. sslmode=require would send the password in clear.
            throw PostgresStoreError("connection options in the URL (\(c.query ?? "")) are not supported: the store connects "
                                     + "without TLS, for loopback or a private network")
        }
        let database = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
        var conf = PostgresConnection.Configuration(host: host, port: c.port ?? 5432, username: c.user ?? "postgres",
                                                    password: c.password, database: database.isEmpty ? nil : database, tls: .disable)
        conf.options.connectTimeout = .seconds(10)
        self.url = url
        configuration = conf
        self.maxConnections = max(1, maxConnections)
        var log = Logger(label: "foryou.postgres")
        log.logLevel = .critical
        logger = log
        try migrate()
    }

    public var waitsOnNetwork: Bool { true }

    deinit {
        for c in idle { try? c.close().wait() }
        if let l = listener, !l.isClosed { try? l.close().wait() }
    }

    // MARK: connections

    /// Runs `body` with a pooled connection. A connection that failed is closed, not returned.
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        cond.lock()
        var conn: PostgresConnection?
        while conn == nil {
            if let c = idle.popLast() {
                if c.isClosed { opened -= 1; continue }
                conn = c
            } else if opened < maxConnections {
                opened += 1
                nextId += 1
                let id = nextId
                cond.unlock()
                do {
                    conn = try PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
                                                          id: id, logger: logger).wait()
                } catch {
                    cond.lock(); opened -= 1; cond.signal(); cond.unlock()
                    throw PostgresStoreError("cannot connect to \(redacted): \(PostgresStoreError(error).description)")
                }
                cond.lock()
            } else {
                cond.wait()
            }
        }
        cond.unlock()
        let c = conn!
        do {
            let r = try body(c)
            release(c)
            return r
        } catch {
            release(c)
            throw error
        }
    }

    private func release(_ c: PostgresConnection) {
        cond.lock()
        if c.isClosed { opened -= 1 } else { idle.append(c) }
        cond.signal()
        cond.unlock()
    }

    /// The URL without its password.
    var redacted: String { Self.redact(url) }

    public static func redact(_ url: String) -> String {
        guard var c = URLComponents(string: url) else { return "(unparsable URL)" }
        if c.password != nil { c.password = "***" }
        return c.string ?? "(unparsable URL)"
    }

    /// One transaction on one connection: committed when `body` returns, rolled back when it throws.
    func transaction<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try withConnection { c in
            try run(c, "BEGIN")
            do {
                let r = try body(c)
                try run(c, "COMMIT")
                return r
            } catch {
                _ = try? run(c, "ROLLBACK")
                throw error
            }
        }
    }

    @discardableResult
    func run(_ c: PostgresConnection, _ q: PostgresQuery) throws -> [PostgresRow] {
        do { return try c.query(q, logger: logger).wait().rows } catch { throw Self.mapped(error) }
    }

    func read(_ q: PostgresQuery) throws -> [PostgresRow] { try withConnection { try run($0, q) } }

    /// Unique violations become `StoreError.conflict`; everything else a `PostgresStoreError`.
    static func mapped(_ error: any Error) -> any Error {
        if let e = error as? PSQLError, e.serverInfo?[.sqlState] == "23505" {
            return StoreError.conflict(e.serverInfo?[.detail] ?? e.serverInfo?[.message] ?? "duplicate key")
        }
        if error is StoreError || error is PostgresStoreError { return error }
        return PostgresStoreError(error)
    }

    /// Streams `rows` (already in COPY text format, one line each) into `table`.
    func copy(_ c: PostgresConnection, table: String, columns: [String], lines: Int, _ line: @escaping @Sendable (Int, inout ByteBuffer) -> Void) throws {
        let logger = self.logger
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        // postgres-nio's COPY is async-only. The task prefers an executor of its own (a dispatch
        // queue), so waiting for it here never needs a cooperative thread: callers on one (an
        // async context) cannot deadlock the pool by blocking while it waits.
        Task(executorPreference: Self.copyExecutor) {
            do {
                try await c.copyFrom(table: table, columns: columns, logger: logger) { writer in
                    var buf = ByteBufferAllocator().buffer(capacity: 1 << 20)
                    for i in 0..<lines {
                        line(i, &buf)
                        if buf.readableBytes >= 1 << 20 {
                            try await writer.write(buf)
                            buf.clear()
                        }
                    }
                    if buf.readableBytes > 0 { try await writer.write(buf) }
                }
            } catch { box.error = error }
            done.signal()
        }
        done.wait()
        if let e = box.error { throw Self.mapped(e) }
    }

    private final class ResultBox: @unchecked Sendable { var error: (any Error)? }

    /// Runs the COPY tasks' jobs on a dispatch queue instead of the cooperative pool.
    final class QueueExecutor: TaskExecutor, @unchecked Sendable {
        let queue = DispatchQueue(label: "foryou.postgres.copy", attributes: .concurrent)
        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            let me = asUnownedTaskExecutor()
            queue.async { job.runSynchronously(on: me) }
        }
    }

    static let copyExecutor = QueueExecutor()

    // MARK: schema

    static let migrations: [String] = [
        """
        CREATE TABLE videos(
          id TEXT PRIMARY KEY, caption TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '',
          topic TEXT NOT NULL DEFAULT '', creator TEXT NOT NULL DEFAULT '', duration_ms BIGINT NOT NULL DEFAULT 0,
          status TEXT NOT NULL CHECK(status IN ('processing','ready','failed','removed')),
          stream_url TEXT, thumbnail_url TEXT, created_at BIGINT NOT NULL, upload_id TEXT UNIQUE, owner TEXT);
        CREATE TABLE meta(key TEXT PRIMARY KEY, value BIGINT NOT NULL);
        INSERT INTO meta(key, value) VALUES ('catalog_version', 0);
        CREATE TABLE generations(
          id BIGSERIAL PRIMARY KEY, model TEXT NOT NULL, run_id TEXT NOT NULL, created_at BIGINT NOT NULL,
          users BIGINT NOT NULL, top_n INTEGER NOT NULL, activated_at BIGINT, model_dir TEXT, events_through BIGINT,
          build_key TEXT UNIQUE, shards INTEGER, shards_done INTEGER);
        CREATE TABLE live(singleton INTEGER PRIMARY KEY CHECK(singleton = 1), generation BIGINT NOT NULL REFERENCES generations(id));
        CREATE TABLE generation_items(generation BIGINT NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
          idx INTEGER NOT NULL, video_id TEXT NOT NULL, PRIMARY KEY(generation, idx));
        CREATE TABLE candidate_lists(generation BIGINT NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
          user_id TEXT NOT NULL, list BYTEA NOT NULL, through_event BIGINT, PRIMARY KEY(generation, user_id));
        CREATE TABLE generation_shards(generation BIGINT NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
          shard INTEGER NOT NULL, users INTEGER NOT NULL, finished_at BIGINT NOT NULL, PRIMARY KEY(generation, shard));
        CREATE TABLE consumer_cursors(name TEXT PRIMARY KEY, generation BIGINT, next_event BIGINT NOT NULL);
        CREATE TABLE experiments(name TEXT PRIMARY KEY, salt TEXT NOT NULL,
          status TEXT NOT NULL CHECK(status IN ('draft','running','stopped')), variants TEXT NOT NULL,
          created_at BIGINT NOT NULL, started_at BIGINT, stopped_at BIGINT);
        """,
        """
        CREATE TABLE uploads(id TEXT PRIMARY KEY, owner TEXT NOT NULL, path TEXT NOT NULL, bytes BIGINT NOT NULL,
          duration_ms BIGINT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created_at BIGINT NOT NULL);
        CREATE TABLE transcode_jobs(id BIGSERIAL PRIMARY KEY, video_id TEXT NOT NULL UNIQUE,
          upload_id TEXT NOT NULL, status TEXT NOT NULL CHECK(status IN ('queued','running','done','failed')),
          attempts INTEGER NOT NULL DEFAULT 0, lease_until BIGINT, error TEXT, updated_at BIGINT NOT NULL);
        """,
    ]

    func migrate() throws {
        try transaction { c in
            // One migrating process at a time (any number may start together).
            try run(c, "SELECT pg_advisory_xact_lock(727001)")
            try run(c, "CREATE TABLE IF NOT EXISTS foryou_schema(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            let have = try run(c, "SELECT coalesce(max(version), 0) FROM foryou_schema")[0].decode(Int.self)
            for (i, sql) in Self.migrations.enumerated() where i + 1 > have {
                // Simple-protocol statements may hold several commands; run each one.
                for statement in sql.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }) where !statement.isEmpty {
                    try run(c, PostgresQuery(unsafeSQL: statement))
                }
                try run(c, "INSERT INTO foryou_schema(version) VALUES (\(i + 1))")
            }
        }
    }

    public static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: videos

    static let columns = "id, caption, tags, topic, creator, duration_ms, status, stream_url, thumbnail_url, created_at, upload_id, owner"

    static func insert(_ v: Video, upsert: Bool) -> PostgresQuery {
        let tags = v.tags.joined(separator: ","), duration = Int64(v.durationMs), status = v.status.rawValue
        let conflict = upsert ? """
             ON CONFLICT(id) DO UPDATE SET caption=excluded.caption, tags=excluded.tags, topic=excluded.topic,
              creator=excluded.creator, duration_ms=excluded.duration_ms, status=excluded.status,
              stream_url=excluded.stream_url, thumbnail_url=excluded.thumbnail_url, created_at=excluded.created_at,
              upload_id=excluded.upload_id, owner=excluded.owner
            """ : ""
        return """
            INSERT INTO videos(\(unescaped: columns)) VALUES (\(v.id), \(v.caption), \(tags), \(v.topic), \(v.creator), \(duration),
              \(status), \(v.streamURL), \(v.thumbnailURL), \(v.createdAt), \(v.uploadId), \(v.owner))\(unescaped: conflict)
            """
    }

    static func video(_ r: PostgresRow) throws -> Video {
        let (id, caption, tags, topic, creator, duration, status, stream, thumb, created, upload, owner) =
            try r.decode((String, String, String, String, String, Int64, String, String?, String?, Int64, String?, String?).self)
        return Video(id: id, caption: caption, tags: tags.isEmpty ? [] : tags.split(separator: ",").map(String.init), topic: topic,
                     creator: creator, durationMs: Int(duration), status: VideoStatus(rawValue: status) ?? .failed, streamURL: stream,
                     thumbnailURL: thumb, createdAt: created, uploadId: upload, owner: owner)
    }

    public func upsertVideos(_ videos: [Video]) throws {
        try transaction { c in
            for v in videos { try run(c, Self.insert(v, upsert: true)) }
            try run(c, "UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'")
        }
    }

    public func insertVideo(_ video: Video) throws {
        do {
            try transaction { c in
                try run(c, Self.insert(video, upsert: false))
                try run(c, "UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'")
            }
        } catch StoreError.conflict {
            throw StoreError.conflict("video \(video.id) or upload \(video.uploadId ?? "-") already exists")
        }
    }

    public func video(id: String) throws -> Video? {
        try read("SELECT \(unescaped: Self.columns) FROM videos WHERE id = \(id)").first.map(Self.video)
    }

    public func videos() throws -> [Video] {
        try read("SELECT \(unescaped: Self.columns) FROM videos ORDER BY created_at, id COLLATE \"C\"").map(Self.video)
    }

    public func catalogVersion() throws -> Int64 {
        try read("SELECT value FROM meta WHERE key = 'catalog_version'").first?.decode(Int64.self) ?? 0
    }

    // MARK: generations

    /// COPY text format: backslash, tab, newline and carriage return escaped.
    static func appendText(_ s: String, to buf: inout ByteBuffer) {
        for b in s.utf8 {
            switch b {
            case 0x5C: buf.writeStaticString("\\\\")
            case 0x09: buf.writeStaticString("\\t")
            case 0x0A: buf.writeStaticString("\\n")
            case 0x0D: buf.writeStaticString("\\r")
            default: buf.writeInteger(b)
            }
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A bytea value in COPY text format: \\x followed by hex digits.
    static func appendBytea(_ d: Data, to buf: inout ByteBuffer) {
        buf.writeStaticString("\\\\x")
        buf.reserveCapacity(minimumWritableBytes: d.count * 2)
        d.withUnsafeBytes { raw in
            for b in raw {
                buf.writeInteger(hexDigits[Int(b >> 4)])
                buf.writeInteger(hexDigits[Int(b & 15)])
            }
        }
    }

    func copyItems(_ c: PostgresConnection, generation: Int64, items: [String]) throws {
        try copy(c, table: "generation_items", columns: ["generation", "idx", "video_id"], lines: items.count) { i, buf in
            buf.writeString("\(generation)\t\(i)\t")
            Self.appendText(items[i], to: &buf)
            buf.writeStaticString("\n")
        }
    }

    func copyLists(_ c: PostgresConnection, generation: Int64, through: Int64?, lists: [(user: String, items: [Int32], scores: [Float])]) throws {
        let through = through.map(String.init) ?? "\\N"
        try copy(c, table: "candidate_lists", columns: ["generation", "user_id", "list", "through_event"], lines: lists.count) { i, buf in
            buf.writeString("\(generation)\t")
            Self.appendText(lists[i].user, to: &buf)
            buf.writeStaticString("\t")
            Self.appendBytea(PackedCandidates.pack(lists[i].items, lists[i].scores), to: &buf)
            buf.writeString("\t\(through)\n")
        }
    }

    static func check(_ lists: [(user: String, items: [Int32], scores: [Float])], catalog: Int) throws {
        for l in lists {
            guard l.items.count == l.scores.count, l.items.allSatisfy({ $0 >= 0 && Int($0) < catalog }) else {
                throw StoreError.invalid("list of user \(l.user) refers to items outside the generation's catalog")
            }
        }
    }

    public func writeGeneration(model: String, runId: String, items: [String],
                                lists: [(user: String, items: [Int32], scores: [Float])], activate: Bool) throws -> Int64 {
        try writeGeneration(model: model, runId: runId, items: items, lists: lists, activate: activate, modelDir: nil, eventsThrough: nil)
    }

    public func writeGeneration(model: String, runId: String, items: [String],
                                lists: [(user: String, items: [Int32], scores: [Float])], activate: Bool,
                                modelDir: String?, eventsThrough: UInt64?) throws -> Int64 {
        try Self.check(lists, catalog: items.count)
        let topN = lists.map(\.items.count).max() ?? 0
        let through = eventsThrough.map { Int64($0) }
        return try transaction { c in
            let gen = try run(c, """
                INSERT INTO generations(model, run_id, created_at, users, top_n, model_dir, events_through)
                VALUES (\(model), \(runId), \(Self.now()), \(Int64(lists.count)), \(topN), \(modelDir), \(through)) RETURNING id
                """)[0].decode(Int64.self)
            try copyItems(c, generation: gen, items: items)
            try copyLists(c, generation: gen, through: through, lists: lists)
            if activate { try makeLive(c, gen) }
            return gen
        }
    }

    func makeLive(_ c: PostgresConnection, _ gen: Int64) throws {
        try run(c, """
            INSERT INTO live(singleton, generation) VALUES (1, \(gen))
            ON CONFLICT(singleton) DO UPDATE SET generation = excluded.generation
            """)
        try run(c, "UPDATE generations SET activated_at = \(Self.now()) WHERE id = \(gen)")
    }

    static let infoColumns = "id, model, run_id, created_at, users, top_n, activated_at, shards, shards_done"

    static func info(_ r: PostgresRow, live: Int64?) throws -> GenerationInfo {
        let (id, model, runId, created, users, topN, activated, shards, done) =
            try r.decode((Int64, String, String, Int64, Int64, Int32, Int64?, Int32?, Int32?).self)
        return GenerationInfo(id: id, model: model, runId: runId, createdAt: created, users: Int(users), topN: Int(topN),
                              live: id == live, activatedAt: activated, shards: shards.map(Int.init), shardsDone: done.map(Int.init))
    }

    func live(_ c: PostgresConnection) throws -> Int64? {
        try run(c, "SELECT generation FROM live WHERE singleton = 1").first?.decode(Int64.self)
    }

    public func generations() throws -> [GenerationInfo] {
        try withConnection { c in
            let l = try live(c)
            return try run(c, "SELECT \(unescaped: Self.infoColumns) FROM generations ORDER BY id").map { try Self.info($0, live: l) }
        }
    }

    public func liveGeneration() throws -> GenerationInfo? {
        try read("SELECT \(unescaped: Self.infoColumns) FROM generations g JOIN live l ON l.generation = g.id").first
            .map { try Self.info($0, live: try $0.decode(Int64.self)) }
    }

    func requireComplete(_ c: PostgresConnection, _ generation: Int64) throws {
        guard let r = try run(c, "SELECT shards, shards_done FROM generations WHERE id = \(generation)").first else {
            throw StoreError.notFound("no generation \(generation)")
        }
        let (n, done) = try r.decode((Int32?, Int32?).self)
        if let n, let done, done < n {
            throw StoreError.conflict("generation \(generation) is incomplete: \(done) of \(n) shards written")
        }
    }

    public func activate(_ generation: Int64) throws {
        try transaction { c in
            try requireComplete(c, generation)
            try makeLive(c, generation)
        }
    }

    public func rollback() throws -> GenerationInfo {
        try transaction { c in
            guard let l = try live(c) else { throw StoreError.notFound("no generation is live") }
            guard let prev = try run(c, """
                SELECT \(unescaped: Self.infoColumns) FROM generations WHERE id != \(l) AND activated_at IS NOT NULL
                ORDER BY activated_at DESC, id DESC LIMIT 1
                """).first else {
                throw StoreError.notFound("no earlier live generation to roll back to")
            }
            let id = try prev.decode(Int64.self)
            try makeLive(c, id)
            return try Self.info(prev, live: id)
        }
    }

    func experimentGenerations(_ c: PostgresConnection) throws -> Set<Int64> {
        var out = Set<Int64>()
        for r in try run(c, "SELECT variants FROM experiments WHERE status != 'stopped'") {
            let variants = try JSONDecoder().decode([Experiment.Variant].self, from: Data(try r.decode(String.self).utf8))
            for v in variants { out.insert(v.generation) }
        }
        return out
    }

    public func prune(keep: Int) throws -> [Int64] {
        let removed: [Int64] = try transaction { c in
            // Experiments being created name generations prune must keep: one at a time.
            try run(c, "SELECT pg_advisory_xact_lock(727003)")
            let l = try live(c)
            let ids = try run(c, "SELECT id FROM generations ORDER BY id DESC").map { try $0.decode(Int64.self) }
            let serving = try experimentGenerations(c)
            let since = Self.now() - ShardProgress.abandonedAfterMs
            let building = Set(try run(c, "SELECT id FROM generations WHERE shards IS NOT NULL AND shards_done < shards AND created_at > \(since)")
                .map { try $0.decode(Int64.self) })
            let doomed = ids.dropFirst(max(0, keep)).filter { $0 != l && !serving.contains($0) && !building.contains($0) }
            for id in doomed { try run(c, "DELETE FROM generations WHERE id = \(id)") }  // lists, items, shards cascade
            return Array(doomed)
        }
        cacheLock.lock()
        for id in removed { itemCache[id] = nil }
        cacheLock.unlock()
        return removed
    }

    public func source(generation: Int64) throws -> (modelDir: String?, eventsThrough: UInt64?)? {
        try read("SELECT model_dir, events_through FROM generations WHERE id = \(generation)").first.map { r in
            let (dir, through) = try r.decode((String?, Int64?).self)
            return (modelDir: dir, eventsThrough: through.map { UInt64($0) })
        }
    }

    func items(of generation: Int64, _ c: PostgresConnection, fresh: Bool = false) throws -> [String] {
        cacheLock.lock()
        if !fresh, let cached = itemCache[generation] { cacheLock.unlock(); return cached }
        cacheLock.unlock()
        let list = try run(c, "SELECT video_id FROM generation_items WHERE generation = \(generation) ORDER BY idx")
            .map { try $0.decode(String.self) }
        cacheLock.lock()
        itemCache[generation] = list
        cacheLock.unlock()
        return list
    }

    public func memoryCandidates(generation: Int64, user: String) -> PackedCandidates?? {
        listCache?.peek(ListCache.Key(generation: generation, user: user))
    }

    public func packedCandidates(generation: Int64, user: String) throws -> PackedCandidates? {
        try cachedList(generation: generation, user: user) { try readList(generation: generation, user: user) }
    }

    private func readList(generation: Int64, user: String) throws -> PackedCandidates? {
        try withConnection { c in
            guard let r = try run(c, "SELECT list, through_event FROM candidate_lists WHERE generation = \(generation) AND user_id = \(user)")
                .first else { return nil }
            let (blob, through) = try r.decode((Data, Int64?).self)
            var packed = PackedCandidates(generation: generation, itemTable: try items(of: generation, c), blob: blob,
                                          throughEvent: through.map { UInt64($0) })
            // Another process may have appended to the item table since it was cached.
            if packed.count > 0 && Int(packed.maxItem) >= packed.itemTable.count {
                packed.itemTable = try items(of: generation, c, fresh: true)
            }
            return packed
        }
    }

    public func runningExperiment() throws -> Experiment? {
        try read("SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE status = 'running'").first.map(Self.experiment)
    }

    // MARK: sharded generations

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

    // MARK: uploads and transcode jobs

    public func insertUpload(_ u: Upload) throws {
        try read("""
            INSERT INTO uploads(id, owner, path, bytes, duration_ms, width, height, created_at)
            VALUES (\(u.id), \(u.owner), \(u.path), \(u.bytes), \(Int64(u.durationMs)), \(u.width), \(u.height), \(u.createdAt))
            """)
    }

    public func upload(id: String) throws -> Upload? {
        try read("SELECT id, owner, path, bytes, duration_ms, width, height, created_at FROM uploads WHERE id = \(id)").first.map { r in
            let (id, owner, path, bytes, duration, width, height, created) =
                try r.decode((String, String, String, Int64, Int64, Int32, Int32, Int64).self)
            return Upload(id: id, owner: owner, path: path, bytes: bytes, durationMs: Int(duration), width: Int(width),
                          height: Int(height), createdAt: created)
        }
    }

    public func createVideo(_ video: Video, fromUpload uploadId: String, by user: String) throws {
        try transaction { c in
            // The upload's row lock orders two requests for the same upload.
            guard let r = try run(c, "SELECT owner FROM uploads WHERE id = \(uploadId) FOR UPDATE").first else {
                throw UploadError.unknownUpload(uploadId)
            }
            guard try r.decode(String.self) == user else { throw UploadError.notYours(uploadId) }
            if try !run(c, "SELECT 1 FROM videos WHERE upload_id = \(uploadId)").isEmpty { throw UploadError.alreadyUsed(uploadId) }
            var v = video
            v.status = .processing
            v.uploadId = uploadId
            v.owner = user
            try run(c, Self.insert(v, upsert: false))
            try run(c, "INSERT INTO transcode_jobs(video_id, upload_id, status, updated_at) VALUES (\(v.id), \(uploadId), 'queued', \(Self.now()))")
            try run(c, "UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'")
        }
    }

    static let jobColumns = "id, video_id, upload_id, status, attempts, error"

    static func job(_ r: PostgresRow) throws -> TranscodeJob {
        let (id, video, upload, status, attempts, error) = try r.decode((Int64, String, String, String, Int32, String?).self)
        return TranscodeJob(id: id, video: video, upload: upload, status: TranscodeJob.Status(rawValue: status) ?? .failed,
                            attempts: Int(attempts), error: error)
    }

    public func transcodeJob(video: String) throws -> TranscodeJob? {
        try read("SELECT \(unescaped: Self.jobColumns) FROM transcode_jobs WHERE video_id = \(video)").first.map(Self.job)
    }

    public func claimTranscodeJob(leaseSeconds: Int64, now: Int64 = PostgresFeedStore.now()) throws -> TranscodeJob? {
        // SKIP LOCKED: workers on several machines claim different jobs without waiting on each other.
        try read("""
            UPDATE transcode_jobs SET status = 'running', attempts = attempts + 1, lease_until = \(now + leaseSeconds * 1000),
              updated_at = \(now)
            WHERE id = (SELECT id FROM transcode_jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < \(now))
                        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING \(unescaped: Self.jobColumns)
            """).first.map(Self.job)
    }

    public func completeTranscode(job: Int64, video: String, streamURL: String, posterURL: String, durationMs: Int) throws {
        try transaction { c in
            try run(c, """
                UPDATE videos SET status = 'ready', stream_url = \(streamURL), thumbnail_url = \(posterURL),
                  duration_ms = \(Int64(durationMs)) WHERE id = \(video)
                """)
            try run(c, "UPDATE transcode_jobs SET status = 'done', lease_until = NULL, error = NULL, updated_at = \(Self.now()) WHERE id = \(job)")
            try run(c, "UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'")
        }
    }

    public func failTranscode(job: Int64, error: String, permanent: Bool, maxAttempts: Int) throws -> TranscodeJob.Status {
        try transaction { c in
            guard let r = try run(c, "SELECT \(unescaped: Self.jobColumns) FROM transcode_jobs WHERE id = \(job) FOR UPDATE").first else {
                throw StoreError.notFound("no transcode job \(job)")
            }
            let j = try Self.job(r)
            let final = permanent || j.attempts >= maxAttempts
            let status = final ? "failed" : "queued"
            try run(c, "UPDATE transcode_jobs SET status = \(status), lease_until = NULL, error = \(error), updated_at = \(Self.now()) WHERE id = \(job)")
            if final {
                try run(c, "UPDATE videos SET status = 'failed' WHERE id = \(j.video)")
                try run(c, "UPDATE meta SET value = value + 1 WHERE key = 'catalog_version'")
            }
            return final ? .failed : .queued
        }
    }

    // MARK: consumers of the event log

    @discardableResult
    public func replaceLists(generation: Int64, lists: [(user: String, videos: [String], scores: [Float])], consumer: String,
                             nextEvent: UInt64, expecting: UInt64?, fence: String?) throws -> Bool {
        let fenceName = fence ?? consumer
        let wrote: Bool = try transaction { c in
            // Read committed (each statement sees what committed before it), and one writer per
            // fenced cursor at a time (a transaction-scoped advisory lock on its name), so the
            // cursor read below and the write at the end are one compare-and-set.
            try run(c, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            try run(c, "SELECT pg_advisory_xact_lock(hashtext(\("foryou-cursor:" + fenceName)))")
            if let expecting,
               let stored = try run(c, "SELECT next_event FROM consumer_cursors WHERE name = \(fenceName)").first,
               UInt64(try stored.decode(Int64.self)) != expecting {
                return false
            }
            // The generation's row lock serialises writers appending to its item table.
            guard !(try run(c, "SELECT id FROM generations WHERE id = \(generation) FOR UPDATE")).isEmpty else {
                throw StoreError.notFound("no generation \(generation)")
            }
            var table = ItemTableBuilder(try items(of: generation, c, fresh: true))
            let next = Int64(nextEvent)
            for l in lists {
                guard l.videos.count == l.scores.count else { throw StoreError.invalid("list of \(l.user): videos and scores differ in length") }
                let idx = try table.indices(l.videos) { p, v in
                    try run(c, "INSERT INTO generation_items(generation, idx, video_id) VALUES (\(generation), \(p), \(v))")
                }
                let blob = PackedCandidates.pack(idx, l.scores)
                try run(c, """
                    INSERT INTO candidate_lists(generation, user_id, list, through_event) VALUES (\(generation), \(l.user), \(blob), \(next))
                    ON CONFLICT(generation, user_id) DO UPDATE SET list = excluded.list, through_event = excluded.through_event
                    """)
            }
            try run(c, """
                INSERT INTO consumer_cursors(name, generation, next_event) VALUES (\(consumer), \(generation), \(next))
                ON CONFLICT(name) DO UPDATE SET generation = excluded.generation, next_event = excluded.next_event
                """)
            // Servers caching these lists drop them when this commits (delivered after commit only).
            for payload in ListCache.payloads(generation: generation, users: lists.map(\.user)) {
                try run(c, "SELECT pg_notify(\(ListCache.channel), \(payload))")
            }
            return true
        }
        if wrote {
            cacheLock.lock()
            itemCache[generation] = nil
            cacheLock.unlock()
        }
        return wrote
    }

    public func consumerCursor(_ name: String) throws -> (generation: Int64?, nextEvent: UInt64)? {
        try read("SELECT generation, next_event FROM consumer_cursors WHERE name = \(name)").first.map { r in
            let (g, next) = try r.decode((Int64?, Int64).self)
            return (generation: g, nextEvent: UInt64(next))
        }
    }

    // MARK: experiments

    static let experimentColumns = "name, salt, status, variants, created_at, started_at, stopped_at"

    static func experiment(_ r: PostgresRow) throws -> Experiment {
        let (name, salt, status, variants, created, started, stopped) =
            try r.decode((String, String, String, String, Int64, Int64?, Int64?).self)
        return Experiment(name: name, salt: salt, status: Experiment.Status(rawValue: status) ?? .stopped,
                          variants: try JSONDecoder().decode([Experiment.Variant].self, from: Data(variants.utf8)),
                          createdAt: created, startedAt: started, stoppedAt: stopped)
    }

    public func createExperiment(name: String, variants: [Experiment.Variant]) throws -> Experiment {
        let e = try Experiment.draft(name: name, variants: variants, now: Self.now())
        let json = String(decoding: try JSONEncoder().encode(variants), as: UTF8.self)
        try transaction { c in
            try run(c, "SELECT pg_advisory_xact_lock(727003)")  // not while a prune decides what to delete
            for v in variants {
                do { try requireComplete(c, v.generation) } catch StoreError.notFound {
                    throw ExperimentError.invalid("variant \(v.name): no generation \(v.generation)")
                } catch let err as StoreError {
                    throw ExperimentError.invalid("variant \(v.name): \(err)")
                }
            }
            let inserted = try run(c, """
                INSERT INTO experiments(name, salt, status, variants, created_at) VALUES (\(name), \(e.salt), \(e.status.rawValue), \(json),
                  \(e.createdAt)) ON CONFLICT(name) DO NOTHING RETURNING name
                """)
            if inserted.isEmpty { throw ExperimentError.exists(name) }
        }
        return e
    }

    public func experiments() throws -> [Experiment] {
        try read("SELECT \(unescaped: Self.experimentColumns) FROM experiments ORDER BY created_at, name COLLATE \"C\"").map(Self.experiment)
    }

    public func experiment(named name: String) throws -> Experiment? {
        try read("SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE name = \(name)").first.map(Self.experiment)
    }

    @discardableResult
    public func startExperiment(_ name: String, at time: Int64 = PostgresFeedStore.now()) throws -> Experiment {
        try transaction { c in
            // One experiment runs at a time: starts are serialised on a transaction-scoped lock.
            try run(c, "SELECT pg_advisory_xact_lock(727002)")
            guard let row = try run(c, "SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE name = \(name)").first else {
                throw ExperimentError.notFound(name)
            }
            let e = try Self.experiment(row)
            guard e.status == .draft else { throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue); only a draft starts") }
            if let other = try run(c, "SELECT name FROM experiments WHERE status = 'running'").first {
                throw ExperimentError.anotherRunning(try other.decode(String.self))
            }
            try run(c, "UPDATE experiments SET status = 'running', started_at = \(time) WHERE name = \(name)")
        }
        return try experiment(named: name)!
    }

    @discardableResult
    public func stopExperiment(_ name: String, at time: Int64 = PostgresFeedStore.now()) throws -> Experiment {
        try transaction { c in
            guard let row = try run(c, "SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE name = \(name) FOR UPDATE").first else {
                throw ExperimentError.notFound(name)
            }
            let e = try Self.experiment(row)
            guard e.status == .running else { throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue), not running") }
            try run(c, "UPDATE experiments SET status = 'stopped', stopped_at = \(time) WHERE name = \(name)")
        }
        return try experiment(named: name)!
    }
}
