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
///
/// This file holds the connection pool, transactions, COPY and the schema; each role's methods
/// are in `PostgresFeedStore+<Role>.swift` (catalog, generations, shards, uploads, cursors,
/// experiments) and the list cache in PostgresListCache.swift.
public final class PostgresFeedStore: FeedStore, @unchecked Sendable {
    public let url: String
    let configuration: PostgresConnection.Configuration
    let maxConnections: Int
    let logger: Logger
    private let cond = NSCondition()
    private var idle: [PostgresConnection] = []
    private var opened = 0
    private var nextId = 0
    /// Generations' item tables (PostgresFeedStore+Generations.swift).
    let cacheLock = NSLock()
    var itemCache: [Int64: [String]] = [:]
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
        """
        ALTER TABLE experiments ADD COLUMN kind TEXT NOT NULL DEFAULT 'ab';
        ALTER TABLE experiments ADD COLUMN primary_metric TEXT;
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
}
