import Foundation
import Hummingbird
import HTTPTypes
import CandidateStore
import EventLog

/// Builds the router: `/api/v1/...` behind token auth and rate limits, plus health and metrics.
public func buildRouter(_ service: FeedService) -> Router<FeedContext> {
    let router = Router(context: FeedContext.self)
    router.add(middleware: ObservabilityMiddleware(service: service))
    router.add(middleware: ProtocolMiddleware())
    readable(router, "/healthz") { _, _ in jsonResponse(.ok, #"{"status":"ok"}"#) }
    readable(router, "/") { request, context in WebClient.page(request, context) }
    readable(router, "/readyz") { _, _ in
        guard let live = service.state.generations.live else {
            throw APIError(.serviceUnavailable, "not_ready", "no candidate generation is live yet")
        }
        if let f = service.log.writerFailure ?? service.followFailure { throw APIError(.serviceUnavailable, "event_log_failed", f) }
        return jsonResponse(.ok, #"{"status":"ready","generation":\#(live.id)}"#)
    }
    readable(router, "/metrics") { _, _ in
        let counts = service.state.counts
        var gauges: [(String, String, Double)] = [
            ("foryou_events_total", "Events applied to the in-memory state (replayed, appended, followed).", Double(service.state.eventsApplied)),
            ("foryou_users_known", "Users with events.", Double(counts.users)),
            ("foryou_videos", "Videos in the catalog.", Double(counts.videos)),
        ]
        if let live = service.state.generations.live {
            gauges.append(("foryou_live_generation", "Id of the live candidate generation.", Double(live.id)))
            let at = Double(live.activatedAt ?? live.createdAt) / 1000
            gauges.append(("foryou_live_generation_age_seconds", "Seconds since the live generation went live.",
                           Date().timeIntervalSince1970 - at))
        }
        var h = HTTPFields()
        h[.contentType] = "text/plain; version=0.0.4"
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: service.metrics.render(gauges: gauges))))
    }
    let api = router.group("api/v1").add(middleware: AuthMiddleware(service: service))
    readable(api, "foryou") { request, context in try await FeedRoutes.foryou(service, request, context) }
    api.post("events") { request, context in try await EventRoutes.post(service, request, context) }
    api.post("events:batch") { request, context in try await EventRoutes.batch(service, request, context) }
    api.post("videos") { request, context in try await VideoRoutes.create(service, request, context) }
    readable(api, "videos/:id") { request, context in try await VideoRoutes.get(service, request, context) }
    api.post("uploads") { request, context in try await UploadRoutes.create(service, request, context) }
    router.get("media/**") { request, context in try MediaRoutes.get(service, request, context) }
    router.head("media/**") { request, context in try MediaRoutes.get(service, request, context) }
    return router
}

public func buildApplication(_ service: FeedService,
                             onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
    let router = buildRouter(service)
    // Idle connections, and connections that never finish sending a request head, are closed
    // after `idleTimeoutSeconds` (the timer runs until a complete head has been read).
    return Application(router: router,
                       server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(service.config.idleTimeoutSeconds * 1000)))),
                       configuration: .init(address: .hostname(service.config.host, port: service.config.port),
                                            serverName: "foryou"),
                       onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) })
}

func jsonResponse(_ status: HTTPResponse.Status, _ body: String) -> Response {
    var h = HTTPFields()
    h[.contentType] = "application/json"
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: body)))
}

func jsonResponse(_ status: HTTPResponse.Status, _ w: JSONWriter) -> Response {
    var h = HTTPFields()
    h[.contentType] = "application/json"
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
}

/// Latency histograms by route and status, and one JSON log line per request when asked.
struct ObservabilityMiddleware: RouterMiddleware {
    typealias Context = FeedContext
    let service: FeedService

    func handle(_ request: Request, context: FeedContext, next: (Request, FeedContext) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        var status = 500
        defer {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let route = context.endpointPath ?? "unmatched"
            service.metrics.observeRequest(method: request.method.rawValue, route: route, status: status, seconds: seconds)
            if service.config.logRequests {
                // Every string escaped by the writer: a quote in a path cannot forge a field.
                let w = JSONWriter()
                w.object {
                    w.field("method", request.method.rawValue)
                    w.field("path", request.uri.path)
                    w.field("status", status)
                    w.field("ms", (seconds * 1e6).rounded() / 1000)
                    w.field("user", context.user)
                }
                if let sink = service.config.requestLogSink { sink(w.bytes) } else { FileHandle.standardError.write(Data(w.bytes + [0x0A])) }
            }
        }
        do {
            let r = try await next(request, context)
            status = Int(r.status.code)
            return r
        } catch let e as APIError {
            status = Int(e.status.code)
            throw e
        } catch let e as HTTPResponseError {
            status = Int(e.status.code)
            throw APIError(e.status, "http_error", "\(e.status.reasonPhrase)")
        }
    }
}

/// Registers `handler` for GET and for HEAD, which answers with GET's status and headers
/// (Content-Length included) and no body.
func readable<Context: RequestContext>(_ router: some RouterMethods<Context>, _ path: RouterPath,
                                       _ handler: @escaping @Sendable (Request, Context) async throws -> Response) {
    router.get(path, use: handler)
    router.head(path) { request, context in
        let response = try await handler(request, context)
        var headers = response.headers
        if headers[.contentLength] == nil, let n = response.body.contentLength { headers[.contentLength] = String(n) }
        return Response(status: response.status, headers: headers, body: .init())
    }
}

/// A transfer coding other than chunked is refused (501) before any body is read.
struct ProtocolMiddleware: RouterMiddleware {
    typealias Context = FeedContext

    func handle(_ request: Request, context: FeedContext, next: (Request, FeedContext) async throws -> Response) async throws -> Response {
        if let te = request.headers[.transferEncoding] {
            let codings = te.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard codings == ["chunked"] else {
                var e = APIError(.notImplemented, "unsupported_transfer_coding",
                                 "Transfer-Encoding '\(te)' is not supported (only chunked)", field: "Transfer-Encoding")
                e.headers[.connection] = "close"
                throw e
            }
        }
        return try await next(request, context)
    }
}

/// Bearer-token authentication and the per-user rate limit.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = FeedContext
    let service: FeedService

    func handle(_ request: Request, context: FeedContext, next: (Request, FeedContext) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else { throw APIError.unauthorized }
        let claims: TokenSigner.Claims
        do { claims = try service.tokens.verify(String(header.dropFirst(7))) } catch let f as TokenSigner.Failure {
            throw APIError(.unauthorized, "unauthorized", f.description)
        }
        if let wait = service.state.rateLimiter.take(user: claims.sub) {
            var e = APIError(.tooManyRequests, "rate_limited", "too many requests; retry later")
            e.headers[.retryAfter] = "\(max(1, Int(wait.rounded(.up))))"
            throw e
        }
        var context = context
        context.user = claims.sub
        return try await next(request, context)
    }
}

enum Body {
    /// The body, refusing anything past the configured size with 413.
    static func collect(_ request: Request, max: Int) async throws -> [UInt8] {
        if let len = request.headers[.contentLength].flatMap(Int.init), len > max {
            throw APIError(.contentTooLarge, "body_too_large", "request body exceeds \(max) bytes")
        }
        var r = request
        let buffer: ByteBuffer
        do { buffer = try await r.collectBody(upTo: max) } catch {
            throw APIError(.contentTooLarge, "body_too_large", "request body exceeds \(max) bytes")
        }
        return Array(buffer.readableBytesView)
    }
}
