import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small HTTP client for tests against a real server on 127.0.0.1.
public struct HTTPClient: Sendable {
    public let base: String
    public init(port: Int) { base = "http://127.0.0.1:\(port)" }

    public struct Reply: Sendable {
        public let status: Int
        public let body: Data
        public let headers: [String: String]
        public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
        public var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    }

    public func send(_ method: String, _ path: String, token: String? = nil, body: String? = nil,
                     headers: [String: String] = [:]) async throws -> Reply {
        var r = URLRequest(url: URL(string: base + path)!)
        r.httpMethod = method
        if let token { r.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
        if let body { r.httpBody = Data(body.utf8); r.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let (data, resp) = try await URLSession.shared.data(for: r)
        let h = resp as! HTTPURLResponse
        var hs: [String: String] = [:]
        for (k, v) in h.allHeaderFields { hs[String(describing: k).lowercased()] = String(describing: v) }
        return Reply(status: h.statusCode, body: data, headers: hs)
    }

    public func get(_ path: String, token: String? = nil) async throws -> Reply { try await send("GET", path, token: token) }
    public func post(_ path: String, token: String?, _ body: String, headers: [String: String] = [:]) async throws -> Reply {
        try await send("POST", path, token: token, body: body, headers: headers)
    }
}
