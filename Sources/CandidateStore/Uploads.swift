import Foundation
import GRDB

/// A raw upload on disk, checked by ffprobe, waiting to become a video.
public struct Upload: Sendable, Equatable {
    public var id: String
    public var owner: String
    public var path: String
    public var bytes: Int64
    public var durationMs: Int
    public var width: Int
    public var height: Int
    public var createdAt: Int64
    public init(id: String, owner: String, path: String, bytes: Int64, durationMs: Int, width: Int, height: Int, createdAt: Int64) {
        self.id = id; self.owner = owner; self.path = path; self.bytes = bytes; self.durationMs = durationMs
        self.width = width; self.height = height; self.createdAt = createdAt
    }
}

/// A transcode job: one video's upload to its adaptive ladder.
public struct TranscodeJob: Sendable, Equatable {
    public enum Status: String, Sendable { case queued, running, done, failed }
    public var id: Int64
    public var video: String
    public var upload: String
    public var status: Status
    public var attempts: Int
    public var error: String?
    public init(id: Int64, video: String, upload: String, status: Status, attempts: Int, error: String?) {
        self.id = id; self.video = video; self.upload = upload; self.status = status; self.attempts = attempts; self.error = error
    }
}

public enum UploadError: Error, Equatable, CustomStringConvertible {
    case unknownUpload(String)
    case notYours(String)
    case alreadyUsed(String)

    public var description: String {
        switch self {
        case .unknownUpload(let u): return "no upload '\(u)'"
        case .notYours(let u): return "upload '\(u)' belongs to another user"
        case .alreadyUsed(let u): return "upload '\(u)' already has a video"
        }
    }
}

extension SQLiteFeedStore {
    static func registerUploads(_ m: inout DatabaseMigrator) {
        m.registerMigration("v8-uploads-transcode") { db in
            try db.execute(sql: """
                CREATE TABLE uploads(id TEXT PRIMARY KEY, owner TEXT NOT NULL, path TEXT NOT NULL, bytes INTEGER NOT NULL,
                  duration_ms INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created_at INTEGER NOT NULL);
                CREATE TABLE transcode_jobs(id INTEGER PRIMARY KEY AUTOINCREMENT, video_id TEXT NOT NULL UNIQUE,
                  upload_id TEXT NOT NULL, status TEXT NOT NULL CHECK(status IN ('queued','running','done','failed')),
                  attempts INTEGER NOT NULL DEFAULT 0, lease_until INTEGER, error TEXT, updated_at INTEGER NOT NULL);
                """)
        }
    }

    public func insertUpload(_ u: Upload) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT INTO uploads(id, owner, path, bytes, duration_ms, width, height, created_at) VALUES (?,?,?,?,?,?,?,?)",
                           arguments: [u.id, u.owner, u.path, u.bytes, u.durationMs, u.width, u.height, u.createdAt])
        }
    }

    public func upload(id: String) throws -> Upload? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM uploads WHERE id = ?", arguments: [id]).map {
                Upload(id: $0["id"], owner: $0["owner"], path: $0["path"], bytes: $0["bytes"], durationMs: $0["duration_ms"],
                       width: $0["width"], height: $0["height"], createdAt: $0["created_at"])
            }
        }
    }

    /// The video (status `processing`) and its transcode job, in one transaction; only the
    /// uploader can use an upload, and only once.
    public func createVideo(_ video: Video, fromUpload uploadId: String, by user: String) throws {
        try pool.write { db in
            guard let owner = try String.fetchOne(db, sql: "SELECT owner FROM uploads WHERE id = ?", arguments: [uploadId]) else {
                throw UploadError.unknownUpload(uploadId)
            }
            guard owner == user else { throw UploadError.notYours(uploadId) }
            if try Int.fetchOne(db, sql: "SELECT 1 FROM videos WHERE upload_id = ?", arguments: [uploadId]) != nil {
                throw UploadError.alreadyUsed(uploadId)
            }
            var v = video
            v.status = .processing
            v.uploadId = uploadId
            v.owner = user
            try db.execute(sql: "INSERT INTO videos(\(SQLiteFeedStore.columns)) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                           arguments: SQLiteFeedStore.row(v))
            try db.execute(sql: "INSERT INTO transcode_jobs(video_id, upload_id, status, updated_at) VALUES (?,?,'queued',?)",
                           arguments: [v.id, uploadId, Self.now()])
            try SQLiteFeedStore.bumpCatalog(db)
        }
    }

    static func job(_ r: Row) -> TranscodeJob {
        TranscodeJob(id: r["id"], video: r["video_id"], upload: r["upload_id"], status: TranscodeJob.Status(rawValue: r["status"]) ?? .failed,
                     attempts: r["attempts"], error: r["error"])
    }

    /// Claims the oldest queued job, or a running one whose lease ran out (its worker died):
    /// running, attempts + 1, leased for `leaseSeconds`.
    public func claimTranscodeJob(leaseSeconds: Int64, now: Int64 = SQLiteFeedStore.now()) throws -> TranscodeJob? {
        try pool.write { db in
            guard let r = try Row.fetchOne(db, sql: """
                SELECT * FROM transcode_jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < ?)
                ORDER BY id LIMIT 1
                """, arguments: [now]) else { return nil }
            try db.execute(sql: "UPDATE transcode_jobs SET status = 'running', attempts = attempts + 1, lease_until = ?, updated_at = ? WHERE id = ?",
                           arguments: [now + leaseSeconds * 1000, now, r["id"] as Int64])
            return Self.job(try Row.fetchOne(db, sql: "SELECT * FROM transcode_jobs WHERE id = ?", arguments: [r["id"] as Int64])!)
        }
    }

    public func transcodeJob(video: String) throws -> TranscodeJob? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM transcode_jobs WHERE video_id = ?", arguments: [video]).map(Self.job) }
    }

    /// The job's video becomes `ready` with its stream, poster and duration; the job `done`.
    public func completeTranscode(job: Int64, video: String, streamURL: String, posterURL: String, durationMs: Int) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE videos SET status = 'ready', stream_url = ?, thumbnail_url = ?, duration_ms = ? WHERE id = ?",
                           arguments: [streamURL, posterURL, durationMs, video])
            try db.execute(sql: "UPDATE transcode_jobs SET status = 'done', lease_until = NULL, error = NULL, updated_at = ? WHERE id = ?",
                           arguments: [Self.now(), job])
            try SQLiteFeedStore.bumpCatalog(db)
        }
    }

    /// A failed attempt: back to the queue, or, after `maxAttempts` (or when `permanent`), the
    /// job and its video end `failed` with the reason.
    public func failTranscode(job: Int64, error: String, permanent: Bool, maxAttempts: Int) throws -> TranscodeJob.Status {
        try pool.write { db in
            guard let r = try Row.fetchOne(db, sql: "SELECT * FROM transcode_jobs WHERE id = ?", arguments: [job]) else {
                throw StoreError.notFound("no transcode job \(job)")
            }
            let j = Self.job(r)
            let final = permanent || j.attempts >= maxAttempts
            try db.execute(sql: "UPDATE transcode_jobs SET status = ?, lease_until = NULL, error = ?, updated_at = ? WHERE id = ?",
                           arguments: [final ? "failed" : "queued", error, Self.now(), job])
            if final {
                try db.execute(sql: "UPDATE videos SET status = 'failed' WHERE id = ?", arguments: [j.video])
                try SQLiteFeedStore.bumpCatalog(db)
            }
            return final ? .failed : .queued
        }
    }
}
