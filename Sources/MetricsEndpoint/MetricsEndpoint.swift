import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Prometheus text exposition (format 0.0.4): one `# HELP`, `# TYPE` and sample per metric.
public struct PrometheusText: Sendable {
    public private(set) var text = ""

    public init() {}

    public mutating func metric(_ name: String, _ type: String, _ help: String, _ value: Double) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
    }
}

/// A small HTTP server for a worker process: `GET|HEAD /metrics` (Prometheus text from
/// `render`) and `GET|HEAD /healthz`. Workers use it instead of the feed server's application,
/// so a worker never links the feed's routes.
public func buildMetricsApplication(host: String, port: Int, render: @escaping @Sendable () -> String,
                                    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
    let router = Router()
    func both(_ path: RouterPath, contentType: String, _ body: @escaping @Sendable () -> String) {
        router.get(path) { _, _ in
            var h = HTTPFields()
            h[.contentType] = contentType
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: body())))
        }
        router.head(path) { _, _ in
            var h = HTTPFields()
            h[.contentType] = contentType
            h[.contentLength] = String(body().utf8.count)
            return Response(status: .ok, headers: h, body: .init())
        }
    }
    both("/metrics", contentType: "text/plain; version=0.0.4", render)
    both("/healthz", contentType: "application/json") { #"{"status":"ok"}"# }
    return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "foryou-worker"),
                       onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) })
}
