/// Reads interaction files into `Interactions`.
///
/// Formats: the shared split format (`user<TAB>item<TAB>weight[<TAB>time]`, no header),
/// MovieLens `ratings.csv`, Last.fm `user_artists.dat`, and generic CSV/TSV with a header row and
/// named columns. Any bad line stops the import with the file and line number.
///
/// Deliberate rules for untidy input:
/// - spaces around a field are trimmed ("65 " and "65" are one item), inside one they are kept;
/// - a negative weight is refused unless `negativeWeights` is `.explicit` (then it is explicit
///   negative evidence: preference 0 with confidence 1 + alpha f(|w|), see `Confidence.apply`);
/// - the split format has 3 or 4 fields on every line, as its first line has: a time column
///   that comes and goes, or a fifth field, is an error;
/// - times and weights must parse whole (a 64-bit integer time, a finite weight), else the error
///   names the value.
public struct Importer: Sendable {
    /// What a negative weight in a file means.
    public enum NegativeWeights: String, Sendable, CaseIterable, Codable {
        /// An error naming the line (the default: a negative rating is more often a mistake).
        case refuse
        /// Explicit negative evidence (as the event mapping's skips and hides).
        case explicit
    }

    public enum Format: String, Sendable, CaseIterable, Codable {
        case split, movielens, lastfm, csv
    }

    /// Column layout for `.csv` (and how the named formats are described internally).
    public struct Columns: Sendable, Equatable {
        public var user: String
        public var item: String
        public var weight: String?
        public var time: String?
        public init(user: String = "user", item: String = "item", weight: String? = "weight", time: String? = nil) {
            self.user = user
            self.item = item
            self.weight = weight
            self.time = time
        }
    }

    public var format: Format
    public var columns: Columns
    /// Field separator for `.csv`; nil picks tab for `.tsv`/`.dat` files and comma otherwise.
    public var delimiter: UInt8?
    /// Rows whose weight is below this are skipped (e.g. 4 for MovieLens positives).
    public var minWeight: Float?
    public var negativeWeights: NegativeWeights

    public init(format: Format = .split, columns: Columns = Columns(), delimiter: UInt8? = nil, minWeight: Float? = nil,
                negativeWeights: NegativeWeights = .refuse) {
        self.format = format
        self.columns = columns
        self.delimiter = delimiter
        self.minWeight = minWeight
        self.negativeWeights = negativeWeights
    }

    /// Every this many bytes of a mapped file parsed, the pages behind are given back
    /// (`MappedFile.release`).
    public var releaseEvery = 64 << 20

    public func read(path: String) throws -> Interactions {
        var out = Interactions()
        try read(path: path, into: &out)
        return out
    }

    public func read(paths: [String]) throws -> Interactions {
        var all = Interactions()
        for p in paths { try read(path: p, into: &all) }
        return all
    }

    /// Appends a file's rows to `into`, extending its id maps.
    public func read(path: String, into: inout Interactions) throws {
        let file = try MappedFile(path: path)
        try parse(file.bytes, name: path, into: &into, consumed: file.release(upTo:))
    }

    public func parse(_ bytes: UnsafeRawBufferPointer, name: String) throws -> Interactions {
        var out = Interactions()
        try parse(bytes, name: name, into: &out)
        return out
    }

    struct Layout {
        var delimiter: UInt8
        var header: Bool
        var user = 0, item = 1
        var weight: Int? = 2
        var time: Int? = nil
    }

    func layout(name: String) -> Layout {
        let tab = UInt8(ascii: "\t"), comma = UInt8(ascii: ",")
        switch format {
        case .split: return Layout(delimiter: delimiter ?? tab, header: false, weight: 2, time: 3)
        case .movielens: return Layout(delimiter: delimiter ?? comma, header: true)
        case .lastfm: return Layout(delimiter: delimiter ?? tab, header: true)
        case .csv:
            let lower = name.lowercased()
            let d = delimiter ?? ((lower.hasSuffix(".tsv") || lower.hasSuffix(".dat")) ? tab : comma)
            return Layout(delimiter: d, header: true)
        }
    }

    func namedColumns() -> Columns? {
        switch format {
        case .split: return nil
        case .movielens: return Columns(user: "userId", item: "movieId", weight: "rating", time: "timestamp")
        case .lastfm: return Columns(user: "userID", item: "artistID", weight: "weight", time: nil)
        case .csv: return columns
        }
    }

    /// `consumed(offset)`: every `releaseEvery` bytes, the offset of the line being read (nothing
    /// before it is read again).
    public func parse(_ bytes: UnsafeRawBufferPointer, name: String, into out: inout Interactions,
                      consumed: ((Int) -> Void)? = nil) throws {
        var lay = layout(name: name)
        var scanner = LineScanner(bytes: bytes, delimiter: lay.delimiter)
        var lineNo = 0
        if lay.header {
            guard let headerLine = scanner.nextLine() else {
                throw ImportError(file: name, line: 0, message: "empty file (no header, no interactions)")
            }
            lineNo = 1
            let header = scanner.fields(of: headerLine).map { String(decoding: LineScanner.trimmed($0), as: UTF8.self) }
            let want = namedColumns()!
            func find(_ col: String, _ what: String) throws -> Int {
                if let i = header.firstIndex(of: col) { return i }
                throw ImportError(file: name, line: 1,
                                  message: "missing column '\(col)' (\(what)) in header [\(header.joined(separator: ", "))]")
            }
            lay.user = try find(want.user, "user id")
            lay.item = try find(want.item, "item id")
            lay.weight = try want.weight.map { try find($0, "weight") }
            lay.time = try want.time.map { try find($0, "time") }
        }
        // Times are kept when the layout has a time column (for the split format: when the
        // first line has a fourth field) and everything appended so far had times too.
        var timesOn: Bool? = lay.time == nil ? false : (format == .split ? nil : true)
        if out.count > 0 && out.timestamps == nil { timesOn = false }
        var times: [Int64] = out.timestamps ?? []
        var timesFrom = 0
        let needed = max(lay.user, lay.item, lay.weight ?? 0) + 1
        let maxCol = max(needed, (lay.time ?? 0) + 1)
        // One slot more than the columns used, so that the split format sees a fifth field.
        // A buffer pointer, not an array: the per-field reads and writes of the hot loop carry no
        // bounds checks (every index below is < maxCol + 1 by construction).
        let fields = UnsafeMutableBufferPointer<UnsafeRawBufferPointer>.allocate(capacity: maxCol + 1)
        fields.initialize(repeating: UnsafeRawBufferPointer(start: nil, count: 0))
        defer { fields.deallocate() }
        // Room for every line the file can hold (a row is at least 6 bytes: "1\t2\t1\n"): reserved
        // pages nobody writes are not resident, while growing past a short estimate copies every
        // array with the old and new buffers both resident (at 100M rows that copy was the peak).
        let estimate = bytes.count / 6 + 1
        out.userIndex.reserveCapacity(out.count + estimate)
        out.itemIndex.reserveCapacity(out.count + estimate)
        out.weights.reserveCapacity(out.count + estimate)
        let minWeight = self.minWeight
        var dataLines = 0
        var released = 0
        while let line = scanner.nextLine() {
            lineNo += 1
            if let consumed, let at = line.baseAddress, let base = bytes.baseAddress, at - base - released >= releaseEvery {
                released = at - base
                consumed(released)
            }
            if line.count == 0 { continue }
            dataLines += 1
            var nf = scanner.split(line, into: fields)
            for f in 0..<min(nf, maxCol) { fields[f] = LineScanner.trimmed(fields[f]) }
            // The split format: empty fields after the required ones (a trailing tab) are not columns.
            while format == .split && nf > needed && nf <= maxCol + 1 && fields[nf - 1].count == 0 { nf -= 1 }
            if nf < needed {
                let which = nf <= lay.user ? "user" : nf <= lay.item ? "item" : "weight"
                throw ImportError(file: name, line: lineNo,
                                  message: "missing column \(which) (expected at least \(needed) fields, found \(nf))")
            }
            if format == .split && nf > maxCol {
                throw ImportError(file: name, line: lineNo,
                                  message: "more than 4 fields: the split format is user, item, weight and an optional time")
            }
            var w: Float = 1
            if let wc = lay.weight {
                guard let v = NumberParser.double(fields[wc]) else {
                    throw ImportError(file: name, line: lineNo,
                                      message: "non-numeric weight '\(String(decoding: fields[wc], as: UTF8.self))'")
                }
                guard v.isFinite, Float(v).isFinite else {
                    throw ImportError(file: name, line: lineNo,
                                      message: "weight '\(String(decoding: fields[wc], as: UTF8.self))' is not a finite number")
                }
                w = Float(v)
            }
            if timesOn == nil { timesOn = nf > lay.time!; timesFrom = lineNo }
            if format == .split, timesOn == false, let tc = lay.time, nf > tc {
                throw ImportError(file: name, line: lineNo,
                                  message: "a fourth field (time) '\(String(decoding: fields[tc], as: UTF8.self))', "
                                      + (timesFrom > 0 ? "but line \(timesFrom) has none" : "but the files read before this one have none")
                                      + ": every line has a time, or none does")
            }
            var t: Int64 = 0
            if timesOn!, let tc = lay.time {
                guard tc < nf else {
                    throw ImportError(file: name, line: lineNo, message: "missing column time (expected \(tc + 1) fields, found \(nf))")
                }
                guard let v = NumberParser.int(fields[tc]) else {
                    throw ImportError(file: name, line: lineNo,
                                      message: "time '\(String(decoding: fields[tc], as: UTF8.self))' is not a 64-bit integer")
                }
                t = v
            }
            if let m = minWeight, w < m { continue }
            if w < 0 && negativeWeights == .refuse {
                throw ImportError(file: name, line: lineNo,
                                  message: "negative weight '\(String(decoding: fields[lay.weight!], as: UTF8.self))': pass "
                                      + "--negative-weights explicit to train it as an explicit negative, or --min-weight 0 to skip such rows")
            }
            let uf = fields[lay.user], itf = fields[lay.item]
            if uf.count == 0 { throw ImportError(file: name, line: lineNo, message: "empty user id") }
            if itf.count == 0 { throw ImportError(file: name, line: lineNo, message: "empty item id") }
            let u: Int32 = IdMap.canonicalInt(uf).map { out.users.index(insertingInt: $0) }
                ?? out.users.index(inserting: String(decoding: uf, as: UTF8.self))
            let i: Int32 = IdMap.canonicalInt(itf).map { out.items.index(insertingInt: $0) }
                ?? out.items.index(inserting: String(decoding: itf, as: UTF8.self))
            out.userIndex.append(u)
            out.itemIndex.append(i)
            out.weights.append(w)
            if timesOn! { times.append(t) }
        }
        if dataLines == 0 {
            throw ImportError(file: name, line: lineNo, message: "empty file (no interactions)")
        }
        out.timestamps = (timesOn == true && times.count == out.count) ? times : nil
    }
}

/// Splits a byte buffer into lines and fields (CRLF tolerated, double-quoted CSV fields honoured).
struct LineScanner {
    let base: UnsafePointer<UInt8>?
    let count: Int
    let delimiter: UInt8
    var pos = 0

    init(bytes: UnsafeRawBufferPointer, delimiter: UInt8) {
        base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        count = bytes.count
        self.delimiter = delimiter
    }

    @inline(__always)
    mutating func nextLine() -> UnsafeRawBufferPointer? {
        guard pos < count, let base else { return nil }
        let start = pos
        var end: Int
        if let nl = memchr(base + start, Int32(UInt8(ascii: "\n")), count - start) {
            end = base.distance(to: nl.assumingMemoryBound(to: UInt8.self))
            pos = end + 1
        } else {
            end = count
            pos = count
        }
        if end > start && base[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        return UnsafeRawBufferPointer(start: base + start, count: end - start)
    }

    /// Fills `fields` with up to `fields.count` fields of `line`; returns how many the line has
    /// (counting only up to `fields.count`).
    @inline(__always)
    func split(_ line: UnsafeRawBufferPointer, into fields: UnsafeMutableBufferPointer<UnsafeRawBufferPointer>) -> Int {
        let p = line.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let n = line.count
        var f = 0
        var s = 0
        let cap = fields.count
        while f < cap {
            if s < n && p[s] == UInt8(ascii: "\"") && delimiter == UInt8(ascii: ",") {
                // Quoted field: take the text between the quotes ("" inside stays doubled).
                var e = s + 1
                while e < n {
                    if p[e] == UInt8(ascii: "\"") {
                        if e + 1 < n && p[e + 1] == UInt8(ascii: "\"") { e += 2; continue }
                        break
                    }
                    e += 1
                }
                fields[f] = UnsafeRawBufferPointer(start: p + s + 1, count: max(0, min(e, n) - s - 1))
                f += 1
                var d = e + 1
                while d < n && p[d] != delimiter { d += 1 }
                if d >= n { return f }
                s = d + 1
                continue
            }
            var e = n
            if s < n, let d = memchr(p + s, Int32(delimiter), n - s) { e = p.distance(to: d.assumingMemoryBound(to: UInt8.self)) }
            fields[f] = UnsafeRawBufferPointer(start: p + s, count: e - s)
            f += 1
            if e >= n { return f }
            s = e + 1
        }
        return f
    }

    /// `field` without the spaces around it.
    @inline(__always)
    static func trimmed(_ field: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        guard let base = field.baseAddress, field.count > 0, field[0] == 0x20 || field[field.count - 1] == 0x20 else { return field }
        var s = 0, e = field.count
        while s < e && field[s] == 0x20 { s += 1 }
        while e > s && field[e - 1] == 0x20 { e -= 1 }
        return UnsafeRawBufferPointer(start: base + s, count: e - s)
    }

    func fields(of line: UnsafeRawBufferPointer) -> [UnsafeRawBufferPointer] {
        let out = UnsafeMutableBufferPointer<UnsafeRawBufferPointer>.allocate(capacity: 4096)
        defer { out.deallocate() }
        out.initialize(repeating: UnsafeRawBufferPointer(start: nil, count: 0))
        let n = split(line, into: out)
        return Array(out[0..<n])
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Fast number parsing over raw bytes (no allocation).
enum NumberParser {
    @inline(__always)
    static func int(_ b: UnsafeRawBufferPointer) -> Int64? {
        let n = b.count
        guard n > 0 && n <= 20 else { return nil }
        var i = 0
        var neg = false
        if b[0] == UInt8(ascii: "-") || b[0] == UInt8(ascii: "+") { neg = b[0] == UInt8(ascii: "-"); i = 1 }
        guard i < n else { return nil }
        // Accumulated negatively so that Int64.min parses; any overflow is nil, never a wrap.
        var v: Int64 = 0
        while i < n {
            let d = b[i] &- 48
            if d > 9 { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (r, o2) = m.subtractingReportingOverflow(Int64(d))
            if o1 || o2 { return nil }
            v = r
            i += 1
        }
        if neg { return v }
        return v == .min ? nil : -v
    }

    static let pow10: [Double] = (0...22).map { Foundation.pow(10.0, Double($0)) }

    /// Decimal number; "nan"/"inf" parse (and are rejected by the caller as non-finite).
    @inline(__always)
    static func double(_ b: UnsafeRawBufferPointer) -> Double? {
        let n = b.count
        guard n > 0 else { return nil }
        var i = 0
        var neg = false
        if b[0] == UInt8(ascii: "-") || b[0] == UInt8(ascii: "+") { neg = b[0] == UInt8(ascii: "-"); i = 1 }
        var mant: UInt64 = 0
        var digits = 0
        var frac = 0
        // Wrapping operators where overflow cannot happen (at most 18 digits; i < n): no checks
        // in the per-byte loop.
        while i < n, b[i] &- 48 <= 9 {
            if digits < 18 { mant = mant &* 10 &+ UInt64(b[i] &- 48); digits &+= 1 } else { frac &-= 1 }
            i &+= 1
        }
        var any = digits > 0
        if i < n && b[i] == UInt8(ascii: ".") {
            i += 1
            while i < n, b[i] &- 48 <= 9 {
                if digits < 18 { mant = mant &* 10 &+ UInt64(b[i] &- 48); digits &+= 1; frac &+= 1 }
                i &+= 1
                any = true
            }
        }
        if !any { return slow(b) }
        var exp = 0
        if i < n && (b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E")) {
            i += 1
            var eneg = false
            if i < n && (b[i] == UInt8(ascii: "-") || b[i] == UInt8(ascii: "+")) { eneg = b[i] == UInt8(ascii: "-"); i += 1 }
            guard i < n else { return nil }
            while i < n, b[i] &- 48 <= 9 { exp = min(exp * 10 + Int(b[i] &- 48), 10_000); i += 1 }
            if eneg { exp = -exp }
        }
        guard i == n else { return nil }
        let e = exp - frac
        var v = Double(mant)
        if e == 0 {
        } else if e > 0 && e <= 22 {
            v *= pow10[e]
        } else if e < 0 && e >= -22 {
            v /= pow10[-e]
        } else {
            return slow(b)
        }
        return neg ? -v : v
    }

    static func slow(_ b: UnsafeRawBufferPointer) -> Double? {
        let s = String(decoding: b, as: UTF8.self).lowercased()
        switch s {
        case "nan", "+nan", "-nan": return .nan
        case "inf", "+inf", "infinity", "+infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        default: return Double(s)
        }
    }
}

import Foundation
