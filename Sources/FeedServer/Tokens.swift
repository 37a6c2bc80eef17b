import Foundation
import Crypto

/// Bearer tokens: `base64url(header).base64url(claims).base64url(HMAC-SHA256)`, JWT-shaped.
/// The algorithm is pinned: a header other than exactly HS256 is refused before any signature
/// work (so `alg: none` never verifies), the MAC is compared in constant time, and `exp` is
/// required.
public struct TokenSigner: @unchecked Sendable {
    let key: SymmetricKey
    static let header = #"{"alg":"HS256","typ":"JWT"}"#

    public init(key: [UInt8]) { self.key = SymmetricKey(data: key) }

    public struct Claims: Codable, Sendable, Equatable {
        public var sub: String
        public var iat: Int64
        public var exp: Int64
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
        guard let header = try? JSONSerialization.jsonObject(with: Data(h)) as? [String: Any],
              header["alg"] as? String == "HS256", header.count <= 2,
              header["typ"] == nil || header["typ"] as? String == "JWT" else { throw Failure.badAlgorithm }
        let signed = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard HMAC<SHA256>.isValidAuthenticationCode(sig, authenticating: signed, using: key) else { throw Failure.badSignature }
        guard let claims = try? JSONDecoder().decode(Claims.self, from: Data(c)) else { throw Failure.malformed }
        guard claims.exp > now else { throw Failure.expired }
        guard !claims.sub.isEmpty else { throw Failure.noSubject }
        return claims
    }

    /// MAC for other signed values (cursors), domain-separated from tokens.
    func mac(_ bytes: [UInt8], domain: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(domain.utf8) + [0] + bytes, using: key))
    }

    func validMac(_ mac: [UInt8], for bytes: [UInt8], domain: String) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Array(domain.utf8) + [0] + bytes, using: key)
    }
}

enum Base64URL {
    static func encode(_ b: [UInt8]) -> String {
        Data(b).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode<S: StringProtocol>(_ s: S) -> [UInt8]? {
        var t = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard t.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "+" || $0 == "/" }) else { return nil }
        while t.count % 4 != 0 { t += "=" }
        return Data(base64Encoded: t).map { [UInt8]($0) }
    }
}
