import XCTest
import Foundation
import Crypto
@testable import FeedServer

/// The token verifier reads the header and claims it issues itself without a JSON decoder; any
/// other well-formed token must verify exactly as through the decoder, and bad ones must not.
final class TokenTests: XCTestCase {
    let key: [UInt8] = Array(0..<32)

    func b64(_ s: String) -> String { Base64URL.encode(Array(s.utf8)) }

    /// A token with the given header and claims JSON, signed with `key`.
    func sign(header: String, claims: String, key: [UInt8]? = nil) -> String {
        let body = b64(header) + "." + b64(claims)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: SymmetricKey(data: key ?? self.key))
        return body + "." + Base64URL.encode(Array(mac))
    }

    func testIssuedTokensTakeTheCanonicalPath() throws {
        let signer = TokenSigner(key: key)
        let t = signer.issue(user: "gus", ttlSeconds: 60, now: 1_000)
        let claimsBytes = Base64URL.decode(t.split(separator: ".")[1])!
        XCTAssertEqual(TokenSigner.Claims(canonical: claimsBytes), TokenSigner.Claims(sub: "gus", iat: 1_000, exp: 1_060))
        XCTAssertEqual(try signer.verify(t, now: 1_001), TokenSigner.Claims(sub: "gus", iat: 1_000, exp: 1_060))
        XCTAssertThrowsError(try signer.verify(t, now: 1_060)) { XCTAssertEqual($0 as? TokenSigner.Failure, .expired) }
    }

    func testCanonicalReaderRefusesEverythingElse() {
        for s in [#"{"exp":5,"iat":1,"sub":"a"} "#, #"{"exp":5,"iat":1}"#, #"{"iat":1,"exp":5,"sub":"a"}"#,
                  #"{"exp":05,"iat":1,"sub":"a"}"#, #"{"exp":-5,"iat":1,"sub":"a"}"#, #"{"exp":5,"iat":1,"sub":"a\"b"}"#,
                  #"{"exp":5,"iat":1,"sub":"a\u0062"}"#, #"{"exp":5.5,"iat":1,"sub":"a"}"#, #"{"exp":5,"iat":1,"sub":"a"#,
                  #"{"exp":99999999999999999999,"iat":1,"sub":"a"}"#, ""] {
            XCTAssertNil(TokenSigner.Claims(canonical: Array(s.utf8)), s)
        }
        XCTAssertNil(TokenSigner.Claims(canonical: Array(#"{"exp":5,"iat":1,"sub":""#.utf8) + [0xFF, 0x22, 0x7D]), "invalid UTF-8")
        XCTAssertEqual(TokenSigner.Claims(canonical: Array(#"{"exp":5,"iat":0,"sub":"ünï"}"#.utf8)),
                       TokenSigner.Claims(sub: "ünï", iat: 0, exp: 5))
    }

    func testOtherWellFormedTokensStillVerifyThroughTheDecoder() throws {
        let signer = TokenSigner(key: key)
        let expect = TokenSigner.Claims(sub: "gus", iat: 0, exp: 9_999)
        // Header keys reordered, claims spaced, reordered and escaped: same claims.
        for (h, c) in [(#"{"typ":"JWT","alg":"HS256"}"#, #"{"exp":9999,"iat":0,"sub":"gus"}"#),
                       (#"{"alg":"HS256"}"#, #"{ "sub": "gus", "exp": 9999, "iat": 0 }"#),
                       (#"{"alg":"HS256","typ":"JWT"}"#, #"{"exp":9999,"iat":0,"sub":"g\u0075s"}"#)] {
            XCTAssertEqual(try signer.verify(sign(header: h, claims: c), now: 10), expect, "\(h) \(c)")
        }
        // Refused: other algorithms, extra header fields, tampering, another key, no subject.
        let claims = #"{"exp":9999,"iat":0,"sub":"gus"}"#
        let cases: [(String, TokenSigner.Failure)] = [
            (sign(header: #"{"alg":"none","typ":"JWT"}"#, claims: claims), .badAlgorithm),
            (sign(header: #"{"alg":"HS256","typ":"JWT","kid":"x"}"#, claims: claims), .badAlgorithm),
            (sign(header: #"{"alg":"HS512","typ":"JWT"}"#, claims: claims), .badAlgorithm),
            (sign(header: #"{"alg":"HS256","typ":"JWT"}"#, claims: claims, key: Array(repeating: 1, count: 32)), .badSignature),
            (sign(header: #"{"alg":"HS256","typ":"JWT"}"#, claims: #"{"exp":9999,"iat":0,"sub":""}"#), .noSubject),
            (sign(header: #"{"alg":"HS256","typ":"JWT"}"#, claims: #"{"exp":9999,"iat":0}"#), .malformed),
        ]
        for (t, failure) in cases {
            XCTAssertThrowsError(try signer.verify(t, now: 10)) { XCTAssertEqual($0 as? TokenSigner.Failure, failure, t) }
        }
        let good = sign(header: #"{"alg":"HS256","typ":"JWT"}"#, claims: claims).split(separator: ".").map(String.init)
        let forged = good[0] + "." + b64(#"{"exp":9999,"iat":0,"sub":"admin"}"#) + "." + good[2]
        XCTAssertThrowsError(try signer.verify(forged, now: 10)) { XCTAssertEqual($0 as? TokenSigner.Failure, .badSignature) }
    }

    func testCursorsRoundTripAndAreBoundToTheUser() {
        let signer = TokenSigner(key: key)
        let c = FeedCursor(session: 0xDEAD_BEEF_0123, generation: 7, position: 130, trendingPosition: 4, page: 3)
        let s = c.encode(user: "gus", signer: signer)
        XCTAssertEqual(FeedCursor.decode(s, user: "gus", signer: signer), c)
        XCTAssertNil(FeedCursor.decode(s, user: "ivy", signer: signer))
        XCTAssertNil(FeedCursor.decode(s, user: "gus", signer: TokenSigner(key: Array(repeating: 9, count: 32))))
        var bytes = Base64URL.decode(s)!
        bytes[9] ^= 1  // another generation, same MAC
        XCTAssertNil(FeedCursor.decode(Base64URL.encode(bytes), user: "gus", signer: signer))
    }

    /// Version 3 carries an interleaving test's partner list; version 2 cursors (issued before)
    /// still decode, with no partner.
    func testCursorsCarryThePartnerListAndVersion2StillReads() {
        let signer = TokenSigner(key: key)
        var c = FeedCursor(session: 42, generation: 3, position: 17, trendingPosition: 0, page: 2, deferred: [5, 9])
        c.partner = 4
        c.partnerPosition = 21
        let s = c.encode(user: "gus", signer: signer)
        XCTAssertEqual(FeedCursor.decode(s, user: "gus", signer: signer), c)
        // A version 2 body: the version 3 bytes without the partner's 12, signed the same way.
        let v3 = Array(Base64URL.decode(FeedCursor(session: 42, generation: 3, position: 17, trendingPosition: 0, page: 2, deferred: [5, 9])
            .encode(user: "gus", signer: signer))!.dropLast(FeedCursor.macSize))
        var v2 = Array(v3[0..<29]) + Array(v3[41...])
        v2[0] = 2
        let mac = v2.withUnsafeBytes { signer.cursorMAC($0, user: "gus") }
        mac.withUnsafeBytes { v2.append(contentsOf: $0.prefix(FeedCursor.macSize)) }
        let old = FeedCursor.decode(Base64URL.encode(v2), user: "gus", signer: signer)
        XCTAssertEqual(old, FeedCursor(session: 42, generation: 3, position: 17, trendingPosition: 0, page: 2, deferred: [5, 9]))
        XCTAssertEqual(old?.partner, -1)
    }
}
