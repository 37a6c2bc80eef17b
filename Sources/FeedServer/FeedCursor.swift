import Foundation

/// The opaque paging cursor: session, the generation being paged, positions in its list and in
/// the trending list, bound to the user and signed (HMAC, truncated to 16 bytes).
struct FeedCursor: Equatable {
    var session: UInt64
    var generation: Int64
    var position: UInt32
    var trendingPosition: UInt32
    var page: UInt32

    static let domain = "foryou-cursor-v1"

    func encode(user: String, signer: TokenSigner) -> String {
        var b: [UInt8] = [1]
        withUnsafeBytes(of: session.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: generation.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: position.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: trendingPosition.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: page.littleEndian) { b.append(contentsOf: $0) }
        let mac = signer.mac(b + Array(user.utf8), domain: FeedCursor.domain).prefix(16)
        return Base64URL.encode(b + mac)
    }

    static func decode(_ s: String, user: String, signer: TokenSigner) -> FeedCursor? {
        guard s.count < 200, let b = Base64URL.decode(s), b.count == 1 + 8 + 8 + 4 + 4 + 4 + 16, b[0] == 1 else { return nil }
        let body = Array(b[0..<29]), mac = Array(b[29...])
        let full = signer.mac(body + Array(user.utf8), domain: domain)
        // Constant-time comparison of the truncated MAC.
        var diff: UInt8 = 0
        for (x, y) in zip(mac, full.prefix(16)) { diff |= x ^ y }
        guard diff == 0 else { return nil }
        return body.withUnsafeBytes { p in
            FeedCursor(session: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 1, as: UInt64.self)),
                       generation: Int64(littleEndian: p.loadUnaligned(fromByteOffset: 9, as: Int64.self)),
                       position: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 17, as: UInt32.self)),
                       trendingPosition: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 21, as: UInt32.self)),
                       page: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 25, as: UInt32.self)))
        }
    }
}
