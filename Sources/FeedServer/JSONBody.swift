import Foundation

/// Request bodies are parsed strictly: a JSON object whose keys must all be known; anything
/// else (including read-only fields such as `user_id` or `score`) is rejected, never stored.
enum JSONValue: Decodable, Equatable {
    case bool(Bool), int(Int64), double(Double), string(String), null, array([JSONValue]), object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }

    static func object(_ data: [UInt8], allowed: Set<String>) throws -> [String: JSONValue] {
        guard let v = try? JSONDecoder().decode(JSONValue.self, from: Data(data)) else {
            throw APIError.badRequest("request body is not valid JSON", code: "malformed_json")
        }
        guard case .object(let o) = v else { throw APIError.badRequest("request body must be a JSON object", code: "malformed_json") }
        try check(o, allowed: allowed)
        return o
    }

    static func check(_ o: [String: JSONValue], allowed: Set<String>) throws {
        for k in o.keys.sorted() where !allowed.contains(k) {
            throw APIError.badRequest("unknown or read-only field '\(k)'", field: k, code: "unknown_field")
        }
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    func string(_ k: String, required: Bool = true, maxLength: Int = 256) throws -> String? {
        switch self[k] {
        case .none:
            if required { throw APIError.badRequest("'\(k)' is required", field: k, code: "missing_field") }
            return nil
        case .some(.string(let s)):
            guard !s.isEmpty || !required else { throw APIError.badRequest("'\(k)' must not be empty", field: k) }
            guard s.utf8.count <= maxLength else { throw APIError.badRequest("'\(k)' is longer than \(maxLength) bytes", field: k) }
            return s
        default:
            throw APIError.badRequest("'\(k)' must be a string", field: k, code: "wrong_type")
        }
    }

    func integer(_ k: String) throws -> Int64? {
        switch self[k] {
        case .none: return nil
        case .some(.int(let i)): return i
        case .some(.double(let d)) where d == d.rounded() && abs(d) < 9e15: return Int64(d)
        default: throw APIError.badRequest("'\(k)' must be an integer", field: k, code: "wrong_type")
        }
    }
}
