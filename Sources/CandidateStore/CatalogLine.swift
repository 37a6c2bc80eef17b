import Foundation

/// The catalog's JSON-lines form (`foryou videos import|list`): one video per line.
public enum CatalogLine {
    struct Line: Codable {
        var id: String
        var caption: String?
        var tags: [String]?
        var topic: String?
        var creator: String?
        var duration_ms: Int?
        var status: String?
        var stream_url: String?
        var thumbnail_url: String?
        var created_at: Int64?
    }

    public struct Problem: Error, CustomStringConvertible { public let description: String }

    public static func decode(_ s: String, now: Int64) throws -> Video {
        let l: Line
        do { l = try JSONDecoder().decode(Line.self, from: Data(s.utf8)) } catch { throw Problem(description: "not a catalog line (\(error))") }
        guard !l.id.isEmpty else { throw Problem(description: "empty id") }
        guard let status = VideoStatus(rawValue: l.status ?? "ready") else { throw Problem(description: "unknown status '\(l.status!)'") }
        if let d = l.duration_ms, d < 0 { throw Problem(description: "negative duration_ms") }
        return Video(id: l.id, caption: l.caption ?? "", tags: l.tags ?? [], topic: l.topic ?? "", creator: l.creator ?? "",
                     durationMs: l.duration_ms ?? 0, status: status, streamURL: l.stream_url, thumbnailURL: l.thumbnail_url,
                     createdAt: l.created_at ?? now)
    }

    public static func encode(_ v: Video) -> String {
        let l = Line(id: v.id, caption: v.caption, tags: v.tags, topic: v.topic, creator: v.creator, duration_ms: v.durationMs,
                     status: v.status.rawValue, stream_url: v.streamURL, thumbnail_url: v.thumbnailURL, created_at: v.createdAt)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! enc.encode(l), as: UTF8.self)
    }
}
