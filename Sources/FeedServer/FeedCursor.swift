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

    static let bodySize = 1 + 8 + 8 + 4 + 4 + 4
    static let macSize = 16

    /// The 29 signed bytes: version 1, then the fields little-endian.
    private func body(into p: UnsafeMutableRawBufferPointer) {
        p.storeBytes(of: 1, toByteOffset: 0, as: UInt8.self)
        p.storeBytes(of: session.littleEndian, toByteOffset: 1, as: UInt64.self)
        p.storeBytes(of: generation.littleEndian, toByteOffset: 9, as: Int64.self)
        p.storeBytes(of: position.littleEndian, toByteOffset: 17, as: UInt32.self)
        p.storeBytes(of: trendingPosition.littleEndian, toByteOffset: 21, as: UInt32.self)
        p.storeBytes(of: page.littleEndian, toByteOffset: 25, as: UInt32.self)
    }

    func encode(user: String, signer: TokenSigner) -> String {
        var b = [UInt8](repeating: 0, count: Self.bodySize + Self.macSize)
        b.withUnsafeMutableBytes { p in
            body(into: p)
            let mac = signer.cursorMAC(UnsafeRawBufferPointer(rebasing: p[0..<Self.bodySize]), user: user)
            mac.withUnsafeBytes { m in
                for k in 0..<Self.macSize { p[Self.bodySize + k] = m[k] }
            }
        }
        return Base64URL.encode(b)
    }

    static func decode(_ s: String, user: String, signer: TokenSigner) -> FeedCursor? {
        guard s.utf8.count < 200, let b = Base64URL.decode(s), b.count == bodySize + macSize, b[0] == 1 else { return nil }
        return b.withUnsafeBytes { p -> FeedCursor? in
            let full = signer.cursorMAC(UnsafeRawBufferPointer(rebasing: p[0..<bodySize]), user: user)
            // Constant-time comparison of the truncated MAC.
            var diff: UInt8 = 0
            full.withUnsafeBytes { m in
                for k in 0..<macSize { diff |= m[k] ^ p[bodySize + k] }
            }
            guard diff == 0 else { return nil }
            return FeedCursor(session: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 1, as: UInt64.self)),
                              generation: Int64(littleEndian: p.loadUnaligned(fromByteOffset: 9, as: Int64.self)),
                              position: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 17, as: UInt32.self)),
                              trendingPosition: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 21, as: UInt32.self)),
                              page: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 25, as: UInt32.self)))
        }
    }
}
