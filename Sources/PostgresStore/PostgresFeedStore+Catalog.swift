import Foundation
import PostgresNIO
import CandidateStore

// The catalog (`CatalogStore`): videos and the catalog version.

extension PostgresFeedStore {
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
}
