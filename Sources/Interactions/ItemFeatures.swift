import Foundation

/// Content features of items as hashed tokens: each token (a genre, a tag, a caption word) is
/// hashed into one of `buckets` rows of an embedding table, so unseen tokens and unseen items
/// need no vocabulary. Read from a features file, one item per line:
///
///     item_id<TAB>token|token|token
///
/// Tokens are trimmed and lower-cased; empty tokens are skipped; a repeated item appends tokens.
public struct ItemFeatures: Sendable {
    public let buckets: Int
    /// Bucket ids per raw item id.
    public private(set) var byId: [String: [Int32]] = [:]

    public init(buckets: Int) {
        precondition(buckets > 0)
        self.buckets = buckets
    }

    public static func bucket(_ token: String, buckets: Int) -> Int32 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in token.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int32(truncatingIfNeeded: h % UInt64(buckets))
    }

    public mutating func add(item: String, tokens: [String]) {
        var ids = byId[item] ?? []
        for t in tokens {
            let s = t.trimmingCharacters(in: .whitespaces).lowercased()
            if s.isEmpty { continue }
            let b = Self.bucket(s, buckets: buckets)
            if !ids.contains(b) { ids.append(b) }
        }
        byId[item] = ids
    }

    public static func load(_ path: String, buckets: Int) throws -> ItemFeatures {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ImportError(file: path, line: 0, message: "cannot read the features file")
        }
        var f = ItemFeatures(buckets: buckets)
        var lineNo = 0
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            let l = line.hasSuffix("\r") ? line.dropLast() : line
            if l.isEmpty { continue }
            guard let tab = l.firstIndex(of: "\t") else {
                throw ImportError(file: path, line: lineNo, message: "expected item<TAB>token|token..., found no tab")
            }
            let item = String(l[..<tab])
            guard !item.isEmpty else { throw ImportError(file: path, line: lineNo, message: "empty item id") }
            f.add(item: item, tokens: l[l.index(after: tab)...].split(separator: "|").map(String.init))
        }
        return f
    }

    /// The tokens of a catalog video: its tags and the words of its caption (split on anything
    /// that is not a letter or digit, so "#cooking" and "cooking," are the token "cooking").
    public static func catalogTokens(caption: String, tags: [String]) -> [String] {
        tags + caption.split(whereSeparator: { !($0.isLetter || $0.isNumber) }).map(String.init)
    }

    /// Bucket ids of `tokens` (trimmed, lower-cased, empty skipped, each bucket once).
    public static func buckets(of tokens: [String], buckets: Int) -> [Int32] {
        var f = ItemFeatures(buckets: buckets)
        f.add(item: "", tokens: tokens)
        return f.byId[""] ?? []
    }

    /// Bucket lists in the order of `items` (empty for items without features).
    public func lists(for items: [String]) -> [[Int32]] { items.map { byId[$0] ?? [] } }

    /// Share of `items` with at least one feature.
    public func coverage(of items: [String]) -> Double {
        items.isEmpty ? 0 : Double(items.count { !(byId[$0] ?? []).isEmpty }) / Double(items.count)
    }
}
