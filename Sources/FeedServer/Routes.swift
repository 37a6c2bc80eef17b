import Foundation
import Hummingbird
import HTTPTypes
import CandidateStore
import EventLog

enum FeedRoutes {
    /// GET /api/v1/foryou?cursor=&limit=10
    static func foryou(_ s: FeedService, _ request: Request, _ context: FeedContext) async throws -> Response {
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            return try await foryouPage(s, request, context, started: started)
        } catch let e as APIError {
            throw e
        } catch {
            // A failed page under an experiment is an exposure too: the variant's error rate.
            if let e = s.state.generations.experiment, let user = context.user {
                s.recordExposure(Exposure(user: user, timeMs: Int64(Date().timeIntervalSince1970 * 1000), experiment: e.name,
                                          variant: e.kind == .interleave ? Experiment.interleaved : e.variant(for: user).name,
                                          videos: [], latencyUs: Int((DispatchTime.now().uptimeNanoseconds - started) / 1000),
                                          error: true))
            }
            throw error
        }
    }

    static func foryouPage(_ s: FeedService, _ request: Request, _ context: FeedContext, started: UInt64) async throws -> Response {
        let user = context.user!
        let q = request.uri.queryParameters
        var limit = 10
        if let l = q["limit"] {
            guard let v = Int(String(l)), v >= 1, v <= s.config.maxLimit else {
                throw APIError.badRequest("limit must be an integer from 1 to \(s.config.maxLimit)", field: "limit")
            }
            limit = v
        }
        var cursor: FeedCursor?
        if let c = q["cursor"], !c.isEmpty {
            guard let decoded = FeedCursor.decode(String(c), user: user, signer: s.signer) else {
                throw APIError.badRequest("cursor is not one this server issued to this user", field: "cursor", code: "bad_cursor")
            }
            cursor = decoded
        }
        let builder = FeedBuilder(config: s.config, state: s.state, store: s.store)
        let (pageCursor, pageLimit) = (cursor, limit)
        // Built here when its list is in memory; otherwise on the blocking pool, where a disk
        // read or a round trip waits without holding up this event loop's other requests.
        let page: FeedBuilder.Page
        if let p = try builder.page(user: user, cursor: cursor, limit: limit, memoryOnly: true) {
            page = p
        } else {
            page = try await Blocking.run { try builder.page(user: user, cursor: pageCursor, limit: pageLimit) }
        }
        // Each video's catalog fields are rendered once, when first served (VideoBox.jsonFields);
        // only the ranker, generation and cursor are written per request.
        var out = ByteBuffer()
        out.reserveCapacity(256 + page.items.count * 320)
        out.writeString(#"{"videos":["#)
        let experiment = page.assignment.map { (JSONWriter.quoted($0.experiment), JSONWriter.quoted($0.variant)) }
        // A page has one or a few rankers (the model, "trending", "fresh"): each quoted once.
        var rankers: [(name: String, json: [UInt8])] = []
        for (n, it) in page.items.enumerated() {
            if n > 0 { out.writeInteger(UInt8(44)) }
            out.writeInteger(UInt8(123))
            it.video.jsonFields.withUnsafeBytes { _ = out.writeBytes($0) }
            out.writeString(#""ranker":"#)
            if let r = rankers.first(where: { $0.name == it.ranker }) {
                out.writeBytes(r.json)
            } else {
                let json = JSONWriter.quoted(it.ranker)
                rankers.append((it.ranker, json))
                out.writeBytes(json)
            }
            out.writeString(#","generation":"#)
            out.writeString(it.generation.map { String($0) } ?? "null")
            if let (e, v) = experiment {
                out.writeString(#","experiment":"#)
                out.writeBytes(e)
                out.writeString(#","variant":"#)
                if let team = it.team, let teams = page.assignment?.teams {
                    out.writeBytes(JSONWriter.quoted(teams[team]))
                } else {
                    out.writeBytes(v)
                }
            }
            out.writeInteger(UInt8(125))
        }
        out.writeString(#"],"next_cursor":"#)
        if let next = page.next?.encode(user: user, signer: s.signer) {
            out.writeString("\"" + next + "\"")  // base64url: nothing to escape
        } else {
            out.writeString("null")
        }
        out.writeString(#","events_through":"#)
        out.writeString(page.eventsThrough.map { String($0) } ?? "null")
        out.writeInteger(UInt8(125))
        if let a = page.assignment {
            s.recordExposure(Exposure(user: user, timeMs: Int64(Date().timeIntervalSince1970 * 1000), experiment: a.experiment,
                                      variant: a.variant, videos: page.items.map(\.video.v.id),
                                      teams: a.teams == nil ? nil : page.items.map { $0.team ?? -1 },
                                      fallback: page.items.filter { $0.ranker == "trending" }.count,
                                      latencyUs: Int((DispatchTime.now().uptimeNanoseconds - started) / 1000)))
        }
        var h = HTTPFields()
        h[.contentType] = "application/json"
        return Response(status: .ok, headers: h, body: .init(byteBuffer: out))
    }

    static func url(_ s: FeedService, _ u: String?) -> String? { VideoBox.url(u, s.config.publicBaseURL) }
}

enum EventRoutes {
    static let fields: Set<String> = ["video_id", "type", "watch_ms"]

    static func draft(_ s: FeedService, _ o: [String: JSONValue], user: String, key: String, prefix: String = "") throws -> EventDraft {
        let video = try o.string("video_id")!
        let typeName = try o.string("type")!
        guard let type = EventType(name: typeName) else {
            throw APIError.badRequest("unknown event type '\(typeName)' (view, complete, like, share, skip, hide)",
                                      field: prefix + "type", code: "unknown_type")
        }
        let watch = try o.integer("watch_ms") ?? 0
        guard watch >= 0, watch <= Int64(s.config.maxWatchMs) else {
            throw APIError.badRequest("watch_ms must be between 0 and \(s.config.maxWatchMs)", field: prefix + "watch_ms")
        }
        guard s.state.catalog.video(id: video) != nil else {
            throw APIError(.notFound, "unknown_video", "no video '\(video)'", field: prefix + "video_id")
        }
        return EventDraft(user: user, video: video, type: type, watchMs: UInt32(watch),
                          timeMs: Int64(Date().timeIntervalSince1970 * 1000), idempotencyKey: key,
                          extra: s.state.generations.experiment?.annotation(for: user) ?? "")
    }

    static func idempotencyKey(_ request: Request) throws -> String {
        guard let k = request.headers[HTTPField.Name("Idempotency-Key")!] else { return "" }
        guard !k.isEmpty, k.utf8.count <= 128 else {
            throw APIError.badRequest("Idempotency-Key must be 1 to 128 bytes", field: "Idempotency-Key")
        }
        return k
    }

    /// POST /api/v1/events -> 202 {"event_id"} once the event is fsynced.
    static func post(_ s: FeedService, _ request: Request, _ context: FeedContext) async throws -> Response {
        let user = context.user!
        let body = try await Body.collect(request, max: s.config.maxBodyBytes)
        let o = try JSONValue.object(body, allowed: fields)
        let key = try idempotencyKey(request)
        var d = try draft(s, o, user: user, key: key)
        if !key.isEmpty {
            switch s.state.keys.claim(user: user, key: key, fingerprint: IdempotencyKeys.fingerprint(d)) {
            case .done(let id): return accepted(id, replay: true)
            case .inFlight: throw APIError(.conflict, "in_flight", "a request with this Idempotency-Key is in progress",
                                           field: "Idempotency-Key")
            case .mismatch: throw APIError(.unprocessableContent, "idempotency_key_reused",
                                           "this Idempotency-Key was used with a different request (video, type or watch_ms)",
                                           field: "Idempotency-Key")
            case .new: break
            }
        }
        d.idempotencyKey = key
        let ids: [UInt64]
        do { ids = try await s.log.append([d]) } catch {
            if !key.isEmpty { s.state.keys.release(user: user, key: key) }
            throw APIError(.serviceUnavailable, "event_log_unavailable", "the event was not stored: \(error)")
        }
        s.applyAppended([Event(id: ids[0], draft: d)])
        s.metrics.add("foryou_events_appended_total")
        return accepted(ids[0], replay: false)
    }

    static func accepted(_ id: UInt64, replay: Bool) -> Response {
        let w = JSONWriter()
        w.object { w.field("event_id", "\(id)"); w.field("status", "accepted"); if replay { w.field("replayed", true) } }
        return jsonResponse(.accepted, w)
    }

    /// POST /api/v1/events:batch {"events":[...]} (up to 100) -> 202 {"event_ids":[...]}.
    static func batch(_ s: FeedService, _ request: Request, _ context: FeedContext) async throws -> Response {
        let user = context.user!
        let body = try await Body.collect(request, max: s.config.maxBodyBytes)
        let o = try JSONValue.object(body, allowed: ["events"])
        guard case .array(let list)? = o["events"] else {
            throw APIError.badRequest("'events' must be an array", field: "events", code: o["events"] == nil ? "missing_field" : "wrong_type")
        }
        guard !list.isEmpty, list.count <= 100 else { throw APIError.badRequest("'events' must hold 1 to 100 events", field: "events") }
        var drafts: [EventDraft] = []
        for (n, item) in list.enumerated() {
            guard case .object(let e) = item else { throw APIError.badRequest("events[\(n)] must be an object", field: "events[\(n)]") }
            do { try JSONValue.check(e, allowed: fields) } catch var err as APIError {
                err.field = "events[\(n)].\(err.field ?? "")"
                throw err
            }
            drafts.append(try draft(s, e, user: user, key: "", prefix: "events[\(n)]."))
        }
        let ids: [UInt64]
        do { ids = try await s.log.append(drafts) } catch {
            throw APIError(.serviceUnavailable, "event_log_unavailable", "the events were not stored: \(error)")
        }
        s.applyAppended(zip(ids, drafts).map { Event(id: $0, draft: $1) })
        s.metrics.add("foryou_events_appended_total", Double(ids.count))
        let w = JSONWriter()
        w.object { w.key("event_ids"); w.array { for id in ids { w.value("\(id)") } }; w.field("status", "accepted") }
        return jsonResponse(.accepted, w)
    }
}

enum VideoRoutes {
    /// POST /api/v1/videos {"upload_id","caption"} -> 202 {"video_id","status":"processing"}.
    static func create(_ s: FeedService, _ request: Request, _ context: FeedContext) async throws -> Response {
        let user = context.user!
        let body = try await Body.collect(request, max: s.config.maxBodyBytes)
        let o = try JSONValue.object(body, allowed: ["upload_id", "caption"])
        let upload = try o.string("upload_id", maxLength: 128)!
        let caption = try o.string("caption", required: false, maxLength: 2_200) ?? ""
        var g = SystemRandomNumberGenerator()
        let id = "v" + String(UInt64.random(in: 0...UInt64.max, using: &g), radix: 36)
        let v = Video(id: id, caption: caption, tags: Self.hashtags(caption), status: .processing,
                      createdAt: Int64(Date().timeIntervalSince1970 * 1000), uploadId: upload, owner: user)
        let store = s.store
        do { try await s.storeCall { try store.createVideo(v, fromUpload: upload, by: user) } } catch let e as UploadError {
            switch e {
            case .unknownUpload: throw APIError(.notFound, "unknown_upload", e.description, field: "upload_id")
            case .notYours: throw APIError(.forbidden, "not_your_upload", e.description, field: "upload_id")
            case .alreadyUsed: throw APIError(.conflict, "upload_used", e.description, field: "upload_id")
            }
        }
        s.state.catalog.add(v)
        let w = JSONWriter()
        w.object { w.field("video_id", id); w.field("status", "processing") }
        return jsonResponse(.accepted, w)
    }

    /// GET /api/v1/videos/{id}
    static func get(_ s: FeedService, _ request: Request, _ context: FeedContext) async throws -> Response {
        let id = context.parameters.get("id") ?? ""
        let store = s.store
        let (found, job) = try await s.storeCall { () -> (Video?, TranscodeJob?) in
            let v = try store.video(id: id)
            return (v, v?.status == .failed ? try? store.transcodeJob(video: id) : nil)
        }
        guard let v = found, v.status != .removed else { throw APIError.notFound("no video '\(id)'", field: "id") }
        let w = JSONWriter()
        w.object {
            w.field("id", v.id); w.field("caption", v.caption); w.field("status", v.status.rawValue)
            w.field("duration_ms", v.durationMs); w.field("topic", v.topic); w.field("creator", v.creator)
            w.field("stream_url", FeedRoutes.url(s, v.streamURL)); w.field("thumbnail_url", FeedRoutes.url(s, v.thumbnailURL))
            if v.status == .failed, let reason = job?.error { w.field("failure", reason) }
        }
        return jsonResponse(.ok, w)
    }

    /// "#cooking and #diy" -> ["cooking", "diy"]: the caption's hashtags become tags.
    static func hashtags(_ caption: String) -> [String] {
        var out: [String] = []
        for word in caption.split(whereSeparator: { $0.isWhitespace }) where word.hasPrefix("#") {
            let t = word.dropFirst().filter { $0.isLetter || $0.isNumber || $0 == "_" }.lowercased()
            if !t.isEmpty && !out.contains(t) { out.append(t) }
        }
        return out
    }
}
