import Foundation

/// Request bodies are parsed strictly: a JSON object whose keys must all be known; anything
/// else (including read-only fields such as `user_id` or `score`) is rejected, never stored.
///
/// The parser is a single pass over the bytes (no tree built by a general decoder first): depth
/// is bounded (`maxDepth`, the known request bodies need 3), a duplicate key in any object is an
/// error, and the top-level object's unknown keys are refused as soon as they are read. Work is
/// linear in the body, whose size the route bounds.
enum JSONValue: Equatable {
    case bool(Bool), int(Int64), double(Double), string(String), null, array([JSONValue]), object([String: JSONValue])

    /// Deepest nesting a request body may have (objects and arrays both count).
    static let maxDepth = 8

    static func object(_ data: [UInt8], allowed: Set<String>) throws -> [String: JSONValue] {
        var p = StrictJSONParser(data, topLevelKeys: allowed)
        let v = try p.document()
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

/// RFC 8259 JSON, strictly: no trailing commas, comments, NaN, leading zeros, unescaped control
/// characters, lone surrogates or invalid UTF-8.
struct StrictJSONParser {
    let b: [UInt8]
    var i = 0
    let topLevelKeys: Set<String>?

    init(_ bytes: [UInt8], topLevelKeys: Set<String>? = nil) {
        b = bytes
        self.topLevelKeys = topLevelKeys
    }

    func fail(_ why: String) -> APIError {
        APIError.badRequest("request body is not valid JSON: \(why) at byte \(i)", code: "malformed_json")
    }

    mutating func document() throws -> JSONValue {
        skipSpace()
        let v = try value(depth: 1)
        skipSpace()
        guard i == b.count else { throw fail("unexpected data after the value") }
        return v
    }

    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws -> JSONValue {
        guard i < b.count else { throw fail("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected character")
        }
    }

    mutating func literal(_ word: StaticString) throws {
        let n = word.utf8CodeUnitCount
        guard i + n <= b.count else { throw fail("unexpected end") }
        for k in 0..<n where b[i + k] != word.utf8Start[k] { throw fail("unexpected character") }
        i += n
    }

    mutating func enter(_ depth: Int) throws {
        guard depth <= JSONValue.maxDepth else {
            throw APIError.badRequest("request body is nested deeper than \(JSONValue.maxDepth) levels", code: "too_deep")
        }
    }

    mutating func object(depth: Int) throws -> JSONValue {
        try enter(depth)
        i += 1
        var out: [String: JSONValue] = [:]
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a field name") }
            let key = try string()
            if depth == 1, let allowed = topLevelKeys, !allowed.contains(key) {
                throw APIError.badRequest("unknown or read-only field '\(key)'", field: key, code: "unknown_field")
            }
            guard out[key] == nil else {
                throw APIError.badRequest("field '\(key)' appears twice", field: key, code: "duplicate_field")
            }
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            i += 1
            skipSpace()
            out[key] = try value(depth: depth + 1)
            skipSpace()
            guard i < b.count else { throw fail("unexpected end") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(out) }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func array(depth: Int) throws -> JSONValue {
        try enter(depth)
        i += 1
        var out: [JSONValue] = []
        skipSpace()
        if i < b.count && b[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
        while true {
            skipSpace()
            out.append(try value(depth: depth + 1))
            skipSpace()
            guard i < b.count else { throw fail("unexpected end") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(out) }
            throw fail("expected ',' or ']'")
        }
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - 55)
            default: throw fail("bad \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    mutating func string() throws -> String {
        i += 1  // the opening quote
        var out: [UInt8] = []
        var start = i
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                out.append(contentsOf: b[start..<i])
                i += 1
                break
            }
            if c < 0x20 { throw fail("control character in a string") }
            if c != UInt8(ascii: "\\") { i += 1; continue }
            out.append(contentsOf: b[start..<i])
            i += 1
            guard i < b.count else { throw fail("unterminated string") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw fail("lone surrogate")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail("lone surrogate")
                }
                out.append(contentsOf: Array(String(Unicode.Scalar(scalar)!).utf8))
            default: throw fail("bad escape")
            }
            start = i
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in a string") }
        return s
    }

    mutating func number() throws -> JSONValue {
        let start = i
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) else { throw fail("bad number") }
        if b[i] == UInt8(ascii: "0") {
            i += 1
            if i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) { throw fail("leading zero") }
        } else {
            while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) { i += 1 }
        }
        var integral = true
        if i < b.count, b[i] == UInt8(ascii: ".") {
            integral = false
            i += 1
            let digits = i
            while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) { i += 1 }
            guard i > digits else { throw fail("bad number") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            integral = false
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            let digits = i
            while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) { i += 1 }
            guard i > digits else { throw fail("bad number") }
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        if integral, let v = Int64(text) { return .int(v) }
        guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
        return .double(d)
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
