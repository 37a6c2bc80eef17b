import Foundation
import Checksum

/// The opaque paging cursor, bound to the user and signed (HMAC, truncated to 16 bytes). It is
/// the whole state of a paging session: no server keeps any, so a page depends on the cursor and
/// on state every server shares (the store's lists and catalog, the events in the log). Any server
/// continues a session, and a cursor retried while that shared state is unchanged gets the same
/// page again. It carries:
/// - the session id (where the exploration slots start reading the fresh pool), the generation
///   being paged and the page number;
/// - `position`: the next entry of the user's list; entries before it were served or dropped and
///   are never visited again, except the `deferred` ones (at most `maxDeferred` positions skipped
///   only for diversity, offered first on the next page);
/// - `trendingPosition`: how far the trending fallback got;
/// - `served`: a Bloom filter of the videos served from outside the list (fresh uploads,
///   trending; `ServedFilter`, 2,048 bits, 3 probes), checked for every candidate, list entries
///   included. It has no false negatives, so those never come back; a false positive only passes
///   over a candidate (about 0.3 % after 100 such videos, 1.6 % after 200).
/// - under an interleaving test, `partner` (the second generation, -1 when none) and
///   `partnerPosition`, the next entry of the user's list in it.
/// Known limit: when the pinned generation has been pruned mid-session, paging continues on the
/// live list from its start, and a video the old list served may come again.
/// Encoded size (version 3): 42 bytes + 4 per deferred position + 256 when `served` is set + 16 of
/// MAC, at most 504 characters of base64url. Version 2 cursors (no partner) are still read.
struct FeedCursor: Equatable {
    var session: UInt64
    var generation: Int64
    var position: UInt32
    var trendingPosition: UInt32
    var page: UInt32
    var deferred: [UInt32] = []
    var served: ServedFilter? = nil
    var partner: Int64 = -1
    var partnerPosition: UInt32 = 0

    static let domain = "foryou-cursor-v2"
    static let version: UInt8 = 3
    static let maxDeferred = 16
    /// Version 3's fixed part; version 2 lacks the partner's 12 bytes.
    static let fixedSize = 1 + 8 + 8 + 4 + 4 + 4 + 8 + 4 + 1 + 1
    static func fixedSize(version: UInt8) -> Int { version == 2 ? fixedSize - 12 : fixedSize }
    static let macSize = 16
    /// Longest encoded cursor accepted (base64url characters).
    static let maxEncoded = 600

    /// The signed bytes: version, the fixed fields little-endian, the deferred positions, the filter.
    private func body() -> [UInt8] {
        var b = [UInt8]()
        b.reserveCapacity(Self.fixedSize + deferred.count * 4 + ServedFilter.bytes + Self.macSize)
        b.append(Self.version)
        withUnsafeBytes(of: session.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: generation.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: position.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: trendingPosition.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: page.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: partner.littleEndian) { b.append(contentsOf: $0) }
        withUnsafeBytes(of: partnerPosition.littleEndian) { b.append(contentsOf: $0) }
        b.append(UInt8(min(deferred.count, Self.maxDeferred)))
        b.append(served == nil ? 0 : 1)
        for d in deferred.prefix(Self.maxDeferred) { withUnsafeBytes(of: d.littleEndian) { b.append(contentsOf: $0) } }
        if let served { b.append(contentsOf: served.bits) }
        return b
    }

    func encode(user: String, signer: TokenSigner) -> String {
        var b = body()
        let n = b.count
        let mac = b.withUnsafeBytes { signer.cursorMAC($0, user: user) }
        mac.withUnsafeBytes { m in b.append(contentsOf: m.prefix(Self.macSize)) }
        precondition(b.count == n + Self.macSize)
        return Base64URL.encode(b)
    }

    static func decode(_ s: String, user: String, signer: TokenSigner) -> FeedCursor? {
        guard s.utf8.count <= maxEncoded, let b = Base64URL.decode(s), b.count >= 1, b[0] == version || b[0] == 2 else { return nil }
        let fixedSize = Self.fixedSize(version: b[0])
        guard b.count >= fixedSize + macSize else { return nil }
        let nDeferred = Int(b[fixedSize - 2]), hasFilter = b[fixedSize - 1]
        guard nDeferred <= maxDeferred, hasFilter <= 1 else { return nil }
        let bodySize = fixedSize + nDeferred * 4 + (hasFilter == 1 ? ServedFilter.bytes : 0)
        guard b.count == bodySize + macSize else { return nil }
        return b.withUnsafeBytes { p -> FeedCursor? in
            let full = signer.cursorMAC(UnsafeRawBufferPointer(rebasing: p[0..<bodySize]), user: user)
            // Constant-time comparison of the truncated MAC.
            var diff: UInt8 = 0
            full.withUnsafeBytes { m in
                for k in 0..<macSize { diff |= m[k] ^ p[bodySize + k] }
            }
            guard diff == 0 else { return nil }
            var c = FeedCursor(session: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 1, as: UInt64.self)),
                               generation: Int64(littleEndian: p.loadUnaligned(fromByteOffset: 9, as: Int64.self)),
                               position: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 17, as: UInt32.self)),
                               trendingPosition: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 21, as: UInt32.self)),
                               page: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 25, as: UInt32.self)))
            if p[0] == version {
                c.partner = Int64(littleEndian: p.loadUnaligned(fromByteOffset: 29, as: Int64.self))
                c.partnerPosition = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 37, as: UInt32.self))
                guard c.partner >= -1 else { return nil }
            }
            for k in 0..<nDeferred {
                c.deferred.append(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: fixedSize + 4 * k, as: UInt32.self)))
            }
            if hasFilter == 1 {
                let at = fixedSize + nDeferred * 4
                c.served = ServedFilter(bits: Array(p[at..<(at + ServedFilter.bytes)]))
            }
            return c
        }
    }
}

/// A fixed-size Bloom filter of video ids (2,048 bits, 3 probes by double hashing of the id's
/// FNV-1a 64): what a paging session served, carried in its cursor.
struct ServedFilter: Equatable {
    static let bytes = 256
    static let probes = 3
    var bits: [UInt8]

    init() { bits = [UInt8](repeating: 0, count: Self.bytes) }
    var isEmpty: Bool { !bits.contains { $0 != 0 } }
    init(bits: [UInt8]) { self.bits = bits }

    static func hash(_ video: String) -> UInt64 {
        var v = video
        return v.withUTF8 { FNV64.digest(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    private static func probe(_ h: UInt64, _ k: Int) -> Int {
        let h1 = UInt32(truncatingIfNeeded: h), h2 = UInt32(truncatingIfNeeded: h >> 32) | 1
        return Int((h1 &+ UInt32(k) &* h2) % UInt32(bytes * 8))
    }

    mutating func insert(_ video: String) { insert(hash: Self.hash(video)) }
    func contains(_ video: String) -> Bool { contains(hash: Self.hash(video)) }

    mutating func insert(hash h: UInt64) {
        for k in 0..<Self.probes {
            let bit = Self.probe(h, k)
            bits[bit >> 3] |= 1 << UInt8(bit & 7)
        }
    }

    func contains(hash h: UInt64) -> Bool {
        for k in 0..<Self.probes {
            let bit = Self.probe(h, k)
            if bits[bit >> 3] & (1 << UInt8(bit & 7)) == 0 { return false }
        }
        return true
    }
}
