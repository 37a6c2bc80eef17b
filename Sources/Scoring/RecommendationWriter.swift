import Foundation
import Interactions

/// Writes recommendations as `user<TAB>item<TAB>score` lines in rank order, with raw ids.
public enum RecommendationWriter {
    public static func write(_ recs: Recommendations, users: IdMap, items: IdMap, to path: String) throws {
        var out = BufferedWriter(path: path)
        try out.open()
        for row in 0..<recs.users.count {
            let u = users.raw[Int(recs.users[row])]
            for r in 0..<Int(recs.counts[row]) {
                out.append(u); out.append(tab: ())
                out.append(items.raw[Int(recs.items[row * recs.top + r])]); out.append(tab: ())
                out.append(score: recs.scores[row * recs.top + r])
                out.append(newline: ())
            }
        }
        try out.close()
    }
}

extension BufferedWriter {
    /// A score with 6 significant decimals after the point, formatted without Foundation.
    @inline(__always)
    public mutating func append(score v: Float) {
        guard v.isFinite else { append(v.description); return }
        var x = Double(v)
        if x < 0 { append(byte: 45); x = -x }
        let scaled = (x * 1_000_000).rounded()
        let ip = Int64(scaled / 1_000_000)
        let fp = Int64(scaled) - ip * 1_000_000
        append(int: ip)
        append(byte: 46)
        var d: Int64 = 100_000
        while d > 0 { append(byte: UInt8(48 + (fp / d) % 10)); d /= 10 }
    }
}
