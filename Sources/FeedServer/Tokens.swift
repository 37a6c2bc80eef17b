import Foundation
import Crypto

/// Bearer tokens: `base64url(header).base64url(claims).base64url(HMAC-SHA256)`, JWT-shaped.
/// The algorithm is pinned: a header other than exactly HS256 is refused before any signature
/// work (so `alg: none` never verifies), the MAC is compared in constant time, and `exp` is
/// required.
public struct TokenSigner: @unchecked Sendable {
    let key: SymmetricKey
    /// HMAC state with the key schedule done once; copied per message.
    /// HMAC state for cursors: key schedule done and the cursor domain absorbed; copied per use.
    let cursorKeyed: HMAC<SHA256>
    static let header = #"{"alg":"HS256","typ":"JWT"}"#
    static let headerBytes = Array(header.utf8)

    public init(key: [UInt8]) {
        self.key = SymmetricKey(data: key)
        var c = HMAC<SHA256>(key: self.key)
        c.update(data: Array(FeedCursor.domain.utf8) + [0])
        cursorKeyed = c
    }

    public struct Claims: Codable, Sendable, Equatable {
        public var sub: String
        public var iat: Int64
        public var exp: Int64

        public init(sub: String, iat: Int64, exp: Int64) {
            self.sub = sub; self.iat = iat; self.exp = exp
        }

        /// The exact form `issue` writes, `{"exp":N,"iat":N,"sub":"S"}` with S free of escapes,
        /// read without a JSON decoder; nil for anything else (which then goes to the decoder).
        init?(canonical b: [UInt8]) {
            var i = 0
            func literal(_ s: StaticString) -> Bool {
                let n = s.utf8CodeUnitCount
                guard i + n <= b.count else { return false }
                for k in 0..<n where b[i + k] != s.utf8Start[k] { return false }
                i += n
                return true
            }
            func number() -> Int64? {
                let start = i
                var v: Int64 = 0
                while i < b.count, b[i] >= 48, b[i] <= 57, i - start < 18 {
                    v = v * 10 + Int64(b[i] - 48)
                    i += 1
                }
                guard i > start, !(b[start] == 48 && i - start > 1) else { return nil }
                return v
            }
            guard literal(#"{"exp":"#), let exp = number(), literal(#","iat":"#), let iat = number(),
                  literal(#","sub":""#) else { return nil }
            let start = i
            while i < b.count, b[i] != 34, b[i] != 92, b[i] >= 32 { i += 1 }
            let end = i
            guard literal(#""}"#), i == b.count, let sub = String(validating: b[start..<end], as: UTF8.self) else { return nil }
            self.init(sub: sub, iat: iat, exp: exp)
        }
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed, badAlgorithm, badSignature, expired, noSubject
        public var description: String {
            switch self {
            case .malformed: return "malformed token"
            case .badAlgorithm: return "token algorithm is not HS256"
            case .badSignature: return "token signature does not verify"
            case .expired: return "token expired"
            case .noSubject: return "token names no user"
            }
        }
    }

    public func issue(user: String, ttlSeconds: Int64, now: Int64 = Int64(Date().timeIntervalSince1970)) -> String {
        let claims = Claims(sub: user, iat: now, exp: now + ttlSeconds)
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        let body = Base64URL.encode(Array(TokenSigner.header.utf8)) + "." + Base64URL.encode(Array(try! enc.encode(claims)))
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: key)
        return body + "." + Base64URL.encode(Array(mac))
    }

    public func verify(_ token: String, now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> Claims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let h = Base64URL.decode(parts[0]), let c = Base64URL.decode(parts[1]),
              let sig = Base64URL.decode(parts[2]) else { throw Failure.malformed }
        // The header this signer issues is recognised by its bytes; any other is parsed.
        if !h.elementsEqual(TokenSigner.headerBytes) {
            guard let header = try? JSONSerialization.jsonObject(with: Data(h)) as? [String: Any],
                  header["alg"] as? String == "HS256", header.count <= 2,
                  header["typ"] == nil || header["typ"] as? String == "JWT" else { throw Failure.badAlgorithm }
        }
        let signed = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard HMAC<SHA256>.isValidAuthenticationCode(sig, authenticating: signed, using: key) else { throw Failure.badSignature }
        guard let claims = Claims(canonical: c) ?? (try? JSONDecoder().decode(Claims.self, from: Data(c))) else { throw Failure.malformed }
        guard claims.exp > now else { throw Failure.expired }
        guard !claims.sub.isEmpty else { throw Failure.noSubject }
        return claims
    }

    /// MAC of a paging cursor (domain-separated from tokens): `body` then the user's bytes, with
    /// the key schedule and the domain prefix absorbed once at start-up.
    func cursorMAC(_ body: UnsafeRawBufferPointer, user: String) -> HMAC<SHA256>.MAC {
        var h = cursorKeyed
        h.update(data: body)
        var u = user
        u.withUTF8 { h.update(data: UnsafeRawBufferPointer($0)) }
        return h.finalize()
    }
}

/// Unpadded base64url (RFC 4648 §5), without Foundation string rewriting (cursors are
/// encoded on every feed request).
enum Base64URL {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    static let reverse: [UInt8] = {
        var r = [UInt8](repeating: 255, count: 256)
        for (i, c) in alphabet.enumerated() { r[Int(c)] = UInt8(i) }
        return r
    }()

    static func encode(_ b: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((b.count * 4 + 2) / 3)
        var i = 0
        while i + 3 <= b.count {
            let v = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2])
            out.append(alphabet[Int(v >> 18)]); out.append(alphabet[Int((v >> 12) & 63)])
            out.append(alphabet[Int((v >> 6) & 63)]); out.append(alphabet[Int(v & 63)])
            i += 3
        }
        let rest = b.count - i
        if rest == 1 {
            let v = UInt32(b[i]) << 16
            out.append(alphabet[Int(v >> 18)]); out.append(alphabet[Int((v >> 12) & 63)])
        } else if rest == 2 {
            let v = UInt32(b[i]) << 16 | UInt32(b[i + 1]) << 8
            out.append(alphabet[Int(v >> 18)]); out.append(alphabet[Int((v >> 12) & 63)]); out.append(alphabet[Int((v >> 6) & 63)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode<S: StringProtocol>(_ s: S) -> [UInt8]? {
        let chars = Array(s.utf8)
        guard chars.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var acc: UInt32 = 0, bits = 0
        for c in chars {
            let v = reverse[Int(c)]
            guard v != 255 else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8((acc >> UInt32(bits)) & 0xFF))
            }
        }
        // Leftover bits must be zero (canonical encoding).
        guard acc & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }
}

/// Remembers tokens that verified, so a client's every request does not redo the JSON and HMAC
/// work; the exact token string is the key and expiry is checked on every use.
final class TokenCache: @unchecked Sendable {
    let signer: TokenSigner
    private let lock = NSLock()
    private var verified: [String: TokenSigner.Claims] = [:]
    static let capacity = 100_000

    init(signer: TokenSigner) { self.signer = signer }

    func verify(_ token: String, now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> TokenSigner.Claims {
        lock.lock()
        let hit = verified[token]
        lock.unlock()
        if let hit {
            guard hit.exp > now else { throw TokenSigner.Failure.expired }
            return hit
        }
        let claims = try signer.verify(token, now: now)
        lock.lock()
        if verified.count >= TokenCache.capacity { verified.removeAll(keepingCapacity: true) }
        verified[token] = claims
        lock.unlock()
        return claims
    }
}
