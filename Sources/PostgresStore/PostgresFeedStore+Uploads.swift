import Foundation
import PostgresNIO
import CandidateStore

// Uploads and their transcode queue (`UploadStore`).

extension PostgresFeedStore {
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
}
