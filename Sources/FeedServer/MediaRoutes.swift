import Foundation
import Hummingbird
import HTTPTypes
import CandidateStore
import Media
import Checksum

/// Uploads in, transcoded media out.
enum UploadRoutes {
    /// POST /api/v1/uploads: the raw file as the body, streamed to disk (never held in memory),
    /// refused past `maxUploadBytes` (413), checked with ffprobe (422 with the reason) ->
    /// 201 {"upload_id","duration_ms","width","height"}.
    static func create(_ s: FeedService, _ request: Request, _ context: FeedContext) async throws -> Response {
        let user = context.user!
        let max = s.config.maxUploadBytes
        if let len = request.headers[.contentLength].flatMap(Int64.init), len > max {
            throw APIError(.contentTooLarge, "upload_too_large", "uploads are limited to \(max) bytes")
        }
        let dir = DataDirectory(s.config.dataDir)
        try FileManager.default.createDirectory(atPath: dir.uploads, withIntermediateDirectories: true)
        var g = SystemRandomNumberGenerator()
        let id = "u" + String(UInt64.random(in: 0...UInt64.max, using: &g), radix: 36)
        let tmp = dir.uploads + "/.tmp-" + id, final = dir.uploads + "/" + id
        guard FileManager.default.createFile(atPath: tmp, contents: nil), let fh = FileHandle(forWritingAtPath: tmp) else {
            throw APIError(.internalServerError, "storage", "cannot write the upload")
        }
        var written: Int64 = 0
        do {
            defer { try? fh.close() }
            for try await chunk in request.body {
                written += Int64(chunk.readableBytes)
                if written > max { throw APIError(.contentTooLarge, "upload_too_large", "uploads are limited to \(max) bytes") }
                try fh.write(contentsOf: chunk.readableBytesView)
            }
            try fh.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw error
        }
        guard written > 0 else {
            try? FileManager.default.removeItem(atPath: tmp)
            throw APIError.badRequest("the upload is empty", field: "body")
        }
        let probe: Probe
        do {
            var limits = s.config.uploadLimits
            limits.maxSeconds = s.config.maxUploadSeconds
            let checked = limits
            probe = try await Self.offload { try FFprobe.probe(tmp, limits: checked) }
        } catch let e as MediaError {
            try? FileManager.default.removeItem(atPath: tmp)
            switch e {
            case .missingTool: throw APIError(.serviceUnavailable, "no_ffprobe", e.description)
            case .unsupportedContainer: throw APIError(.unprocessableContent, "unsupported_container", e.description, field: "body")
            case .overLimit, .tooLong: throw APIError(.unprocessableContent, "media_limit", e.description, field: "body")
            default: throw APIError(.unprocessableContent, "not_a_video", e.description, field: "body")
            }
        }
        try FileManager.default.moveItem(atPath: tmp, toPath: final)
        let store = s.store, upload = Upload(id: id, owner: user, path: final, bytes: written, durationMs: probe.durationMs,
                                             width: probe.width, height: probe.height, createdAt: SQLiteFeedStore.now())
        try await s.storeCall { try store.insertUpload(upload) }
        let w = JSONWriter()
        w.object {
            w.field("upload_id", id); w.field("bytes", Int(written)); w.field("duration_ms", probe.durationMs)
            w.field("width", probe.width); w.field("height", probe.height)
        }
        return jsonResponse(.created, w)
    }

    /// Runs blocking work (a child process) off the event loop.
    static func offload<T: Sendable>(_ f: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async { c.resume(with: Result { try f() }) }
        }
    }
}

/// GET /media/...: files of the transcoded ladders. Everything under a video's digest folder
/// is immutable (`Cache-Control: public, max-age=31536000, immutable`, strong ETag from the
/// digest); playlists get a short max-age. `If-None-Match` -> 304, one byte range -> 206.
enum MediaRoutes {
    static func types(_ ext: String) -> String {
        switch ext {
        case "m3u8": return "application/vnd.apple.mpegurl"
        case "m4s", "mp4": return "video/mp4"
        case "jpg", "jpeg": return "image/jpeg"
        case "png": return "image/png"
        default: return "application/octet-stream"
        }
    }

    static func get(_ s: FeedService, _ request: Request, _ context: FeedContext) throws -> Response {
        let parts = context.parameters.getCatchAll()
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(".") && !$0.contains("\\") }) else {
            throw APIError.notFound("no such media file", field: "path")
        }
        let rel = parts.joined(separator: "/")
        let root = DataDirectory(s.config.dataDir).media
        // Never out of media/: the path with every symlink resolved must still lie under the
        // resolved media folder, and be a regular file (a link inside media/ is not followed out).
        guard let real = realPath(root + "/" + rel), let realRoot = realPath(root), real.hasPrefix(realRoot + "/"),
              let attrs = try? FileManager.default.attributesOfItem(atPath: real), attrs[.type] as? FileAttributeType == .typeRegular,
              let size = (attrs[.size] as? NSNumber)?.int64Value else {
            throw APIError.notFound("no such media file", field: "path")
        }
        let path = real
        let ext = String(rel.split(separator: ".").last ?? "")
        var h = HTTPFields()
        h[.contentType] = types(ext)
        h[.acceptRanges] = "bytes"
        h[.cacheControl] = ext == "m3u8" ? "public, max-age=60" : "public, max-age=31536000, immutable"
        // The digest folder names the bytes: a strong validator.
        let etag = "\"" + String(format: "%016llx", Array((rel + ":\(size)").utf8).withUnsafeBytes { FNV64.digest($0) }) + "\""
        h[.eTag] = etag
        if let inm = request.headers[.ifNoneMatch],
           inm.split(separator: ",").contains(where: { let t = $0.trimmingCharacters(in: .whitespaces); return t == etag || t == "*" }) {
            return Response(status: .notModified, headers: h)
        }
        var lo: Int64 = 0, hi: Int64 = size - 1, partial = false
        if let range = request.headers[.range] {
            guard let r = parseRange(range, size: size) else {
                h[.contentRange] = "bytes */\(size)"
                return Response(status: .rangeNotSatisfiable, headers: h)
            }
            (lo, hi) = r
            partial = true
            h[.contentRange] = "bytes \(lo)-\(hi)/\(size)"
        }
        let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        guard let whole = try s.mediaCache.file(path, size: size, mtime: mtime) else {
            throw APIError.notFound("no such media file", field: "path")
        }
        // A slice of the cached buffer: no copy per request.
        let slice = whole.getSlice(at: whole.readerIndex + Int(lo), length: Int(hi - lo + 1)) ?? ByteBuffer()
        h[.contentLength] = String(slice.readableBytes)
        return Response(status: partial ? .partialContent : .ok, headers: h,
                        body: .init(byteBuffer: request.method == .head ? ByteBuffer() : slice))
    }

    /// `path` with every symbolic link and `.`/`..` resolved (realpath(3)); nil when it does not exist.
    static func realPath(_ path: String) -> String? {
        guard let r = realpath(path, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    /// One range of "bytes=a-b", "bytes=a-" or "bytes=-n", clamped to the file; nil when unsatisfiable.
    static func parseRange(_ header: String, size: Int64) -> (Int64, Int64)? {
        guard header.hasPrefix("bytes="), size > 0 else { return nil }
        let spec = header.dropFirst(6)
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return nil }
        let a = spec[..<dash].trimmingCharacters(in: .whitespaces), b = spec[spec.index(after: dash)...].trimmingCharacters(in: .whitespaces)
        if a.isEmpty {
            guard let n = Int64(b), n > 0 else { return nil }
            return (max(0, size - n), size - 1)
        }
        guard let start = Int64(a), start < size else { return nil }
        if b.isEmpty { return (start, size - 1) }
        guard let end = Int64(b), end >= start else { return nil }
        return (start, min(end, size - 1))
    }
}


/// Recently served media files in memory (least recently used dropped past `capacity` bytes),
/// keyed by path and checked against size and modification time, so a hot segment is read
/// from disk once and every response shares its buffer.
final class MediaCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: (buffer: ByteBuffer, size: Int64, mtime: Double, used: UInt64)] = [:]
    private var bytes = 0
    private var clock: UInt64 = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// The file's bytes, opened with O_NOFOLLOW (a symlink swapped in after the path was checked
    /// is refused) and only if it is a regular file.
    static func readNoFollow(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        let size = Int(st.st_size)
        var out = [UInt8](repeating: 0, count: size)
        var got = 0
        while got < size {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, size - got) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            got += n
        }
        return got == size ? out : nil  // changed under us: refuse rather than cache a short copy
    }

    func file(_ path: String, size: Int64, mtime: Double) throws -> ByteBuffer? {
        lock.lock()
        clock += 1
        if let e = entries[path], e.size == size, e.mtime == mtime {
            entries[path]!.used = clock
            lock.unlock()
            return e.buffer
        }
        lock.unlock()
        guard let data = Self.readNoFollow(path) else { return nil }
        let buffer = ByteBuffer(bytes: data)
        guard buffer.readableBytes <= capacity / 4 else { return buffer }  // too big to keep
        lock.lock()
        defer { lock.unlock() }
        if let old = entries[path] { bytes -= old.buffer.readableBytes }
        entries[path] = (buffer, size, mtime, clock)
        bytes += buffer.readableBytes
        while bytes > capacity, let victim = entries.min(by: { $0.value.used < $1.value.used }) {
            bytes -= victim.value.buffer.readableBytes
            entries[victim.key] = nil
        }
        return buffer
    }
}
