import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 client over plain POSIX sockets for tests against a real server on
/// 127.0.0.1 (one connection per request, `Connection: close`). It avoids URLSession, whose
/// Linux implementation has crashed in the test process when a server was killed mid-request.
public struct HTTPClient: Sendable {
    public let port: Int
    public init(port: Int) { self.port = port }

    public struct Reply: Sendable {
        public let status: Int
        public let body: Data
        public let headers: [String: String]
        public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
        public var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public func send(_ method: String, _ path: String, token: String? = nil, body: String? = nil, bytes: [UInt8]? = nil,
                     headers: [String: String] = [:]) async throws -> Reply {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        let payload = bytes ?? Array((body ?? "").utf8)
        if body != nil { head += "Content-Type: application/json\r\n" }
        if bytes != nil { head += "Content-Type: application/octet-stream\r\n" }
        head += "Content-Length: \(payload.count)\r\n\r\n"
        let request = Array(head.utf8) + payload
        let port = self.port
        return try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async {
                c.resume(with: Result { try HTTPClient.exchange(port: port, request) })
            }
        }
    }

    /// A TCP socket connected to 127.0.0.1:`port`, receives timing out after `timeoutSeconds`
    /// (the caller closes it).
    public static func connect(port: Int, timeoutSeconds: Int = 60) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { close(fd); throw Failure(description: "connect to 127.0.0.1:\(port): errno \(errno)") }
        return fd
    }

    public static func exchange(port: Int, _ request: [UInt8]) throws -> Reply {
        let fd = try connect(port: port)
        defer { close(fd) }
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += n
        }
        var raw = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n < 0 { throw Failure(description: "recv: errno \(errno)") }
            if n == 0 { break }
            raw.append(contentsOf: buf[0..<n])
        }
        guard let split = raw.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw Failure(description: "no HTTP response (\(raw.count) bytes)")
        }
        let head = String(decoding: raw[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[split.upperBound...])
        if let len = headers["content-length"].flatMap(Int.init), len < body.count { body = Array(body.prefix(len)) }
        return Reply(status: status, body: Data(body), headers: headers)
    }

    public func get(_ path: String, token: String? = nil) async throws -> Reply { try await send("GET", path, token: token) }
    public func post(_ path: String, token: String?, _ body: String, headers: [String: String] = [:]) async throws -> Reply {
        try await send("POST", path, token: token, body: body, headers: headers)
    }
}
