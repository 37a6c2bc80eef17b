import Foundation

/// Each (user, item) pair's time from a separate file, for training files that have none (the
/// shared splits carry weights only; MovieLens `ratings.csv` has every rating's time). Lines
/// are `user,item,...` with the time in the column named `timestamp` when the first line is
/// a header naming it, else in the third column; commas or tabs separate fields. A pair listed
/// twice keeps its latest time.
public struct PairTimes: Sendable {
    public private(set) var times: [String: [String: Int64]] = [:]
    public private(set) var count = 0

    public enum ReadError: Error, CustomStringConvertible {
        case unreadable(String)
        case badLine(String, Int, String)
        case missing(String, missing: Int, total: Int, example: (String, String))
        public var description: String {
            switch self {
            case .unreadable(let p): return "cannot read \(p)"
            case .badLine(let p, let n, let why): return "\(p):\(n): \(why)"
            case .missing(let p, let m, let t, let e):
                return "\(m) of \(t) training pairs have no time in \(p) (first: user \(e.0), item \(e.1)); "
                    + "it must list every (user, item) of the training file"
            }
        }
    }

    public init(path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ReadError.unreadable(path) }
        var column = 2
        // "\r\n" is one Character in Swift: split on any line break.
        for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.isEmpty { continue }
            let fields = line.split(separator: line.contains("\t") ? "\t" : ",", omittingEmptySubsequences: false)
            if n == 0, let c = fields.firstIndex(where: { $0.lowercased() == "timestamp" }) { column = c; continue }
            guard fields.count > column else { throw ReadError.badLine(path, n + 1, "expected user,item and a time in column \(column + 1)") }
            guard let t = Int64(fields[column].trimmingCharacters(in: .whitespaces)) else {
                if n == 0 { continue }  // another header
                throw ReadError.badLine(path, n + 1, "time '\(fields[column])' is not an integer")
            }
            let u = String(fields[0]), i = String(fields[1])
            times[u, default: [:]][i] = max(t, times[u]?[i] ?? .min)
            count += 1
        }
    }

    public func time(user: String, item: String) -> Int64? { times[user]?[item] }

    /// `data` with each row's time from this table; every pair must be listed.
    public func attach(to data: Interactions, path: String) throws -> Interactions {
        var out = data
        var ts = [Int64](repeating: 0, count: data.count)
        var missing = 0
        var example: (String, String)?
        for r in 0..<data.count {
            let u = data.users.raw[Int(data.userIndex[r])], i = data.items.raw[Int(data.itemIndex[r])]
            if let t = time(user: u, item: i) { ts[r] = t } else {
                missing += 1
                if example == nil { example = (u, i) }
            }
        }
        if let example { throw ReadError.missing(path, missing: missing, total: data.count, example: example) }
        out.timestamps = ts
        return out
    }
}
