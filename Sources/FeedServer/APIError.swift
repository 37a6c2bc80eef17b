import Foundation
import Hummingbird

/// Every error the API returns: `{"error":{"code","message","field"}}` with a 4xx/5xx status.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var field: String?
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let w = JSONWriter()
        w.object {
            w.key("error")
            w.object {
                w.field("code", code)
                w.field("message", message)
                if let field { w.field("field", field) } else { w.key("field"); w.null() }
            }
        }
        var h = headers
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }

    static func badRequest(_ message: String, field: String? = nil, code: String = "invalid_request") -> APIError {
        APIError(.badRequest, code, message, field: field)
    }
    static let unauthorized = APIError(.unauthorized, "unauthorized", "a valid bearer token is required")
    static func notFound(_ message: String, field: String? = nil) -> APIError { APIError(.notFound, "not_found", message, field: field) }
}

/// A small, fast JSON writer for responses (the feed's hot path avoids JSONEncoder).
final class JSONWriter {
    var bytes: [UInt8] = []
    private var needComma = [false]

    init(capacity: Int = 2048) { bytes.reserveCapacity(capacity) }

    private func sep() {
        if needComma[needComma.count - 1] { bytes.append(44) }
        needComma[needComma.count - 1] = true
    }

    func object(_ body: () -> Void) {
        sep(); bytes.append(123); needComma.append(false); body(); needComma.removeLast(); bytes.append(125)
    }
    func array(_ body: () -> Void) {
        sep(); bytes.append(91); needComma.append(false); body(); needComma.removeLast(); bytes.append(93)
    }
    func key(_ k: String) {
        sep(); string(k); bytes.append(58)
        needComma[needComma.count - 1] = false
    }
    func field(_ k: String, _ v: String) { key(k); sep(); string(v) }
    func field(_ k: String, _ v: Int) { key(k); sep(); bytes.append(contentsOf: String(v).utf8) }
    func field(_ k: String, _ v: Int64) { key(k); sep(); bytes.append(contentsOf: String(v).utf8) }
    func field(_ k: String, _ v: UInt64) { key(k); sep(); bytes.append(contentsOf: String(v).utf8) }
    func field(_ k: String, _ v: Double) { key(k); sep(); bytes.append(contentsOf: (v.isFinite ? "\(v)" : "null").utf8) }
    func field(_ k: String, _ v: Bool) { key(k); sep(); bytes.append(contentsOf: (v ? "true" : "false").utf8) }
    func field(_ k: String, _ v: String?) { if let v { field(k, v) } else { key(k); null() } }
    func null() { sep(); bytes.append(contentsOf: "null".utf8) }
    func value(_ v: String) { sep(); string(v) }
    func value(_ v: UInt64) { sep(); bytes.append(contentsOf: String(v).utf8) }

    /// A JSON string literal (quotes included).
    static func quoted(_ s: String) -> [UInt8] {
        let w = JSONWriter(capacity: s.utf8.count + 2)
        w.value(s)
        return w.bytes
    }

    private func string(_ s: String) { JSONWriter.appendQuoted(s, to: &bytes) }

    /// Appends `s` as a JSON string literal (quotes included) to `bytes`.
    static func appendQuoted(_ s: String, to bytes: inout [UInt8]) {
        var s = s
        let plain = s.withUTF8 { u in u.allSatisfy { $0 >= 32 && $0 != 34 && $0 != 92 } }
        if plain {
            bytes.append(34)
            s.withUTF8 { bytes.append(contentsOf: $0) }
            bytes.append(34)
            return
        }
        bytes.append(34)
        for b in s.utf8 {
            switch b {
            case 34: bytes.append(92); bytes.append(34)
            case 92: bytes.append(92); bytes.append(92)
            case 10: bytes.append(92); bytes.append(110)
            case 13: bytes.append(92); bytes.append(114)
            case 9: bytes.append(92); bytes.append(116)
            case 0..<32:
                bytes.append(contentsOf: String(format: "\\u%04x", b).utf8)
            default: bytes.append(b)
            }
        }
        bytes.append(34)
    }
}
