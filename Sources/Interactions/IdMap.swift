/// Dense index <-> raw id map. Raw ids are kept as text; ids written as canonical decimal
/// integers (the common case) take a fast integer-keyed path.
public struct IdMap: Sendable, Equatable {
    public private(set) var raw: [String] = []
    private var intIndex: [Int64: Int32] = [:]
    private var stringIndex: [String: Int32] = [:]

    public init() {}

    public init(raw ids: [String]) {
        for id in ids { _ = index(inserting: id) }
    }

    public var count: Int { raw.count }

    public static func == (a: IdMap, b: IdMap) -> Bool { a.raw == b.raw }

    public func rawId(_ index: Int) -> String { raw[index] }

    public func index(of id: String) -> Int32? {
        if let v = IdMap.canonicalInt(id) { return intIndex[v] }
        return stringIndex[id]
    }

    /// Index of an id that parsed as a canonical integer.
    @inline(__always)
    public mutating func index(insertingInt v: Int64) -> Int32 {
        if let i = intIndex[v] { return i }
        let i = Int32(raw.count)
        intIndex[v] = i
        raw.append(String(v))
        return i
    }

    @inline(__always)
    public func index(ofInt v: Int64) -> Int32? { intIndex[v] }

    public mutating func index(inserting id: String) -> Int32 {
        if let v = IdMap.canonicalInt(id) { return index(insertingInt: v) }
        if let i = stringIndex[id] { return i }
        let i = Int32(raw.count)
        stringIndex[id] = i
        raw.append(id)
        return i
    }

    public mutating func reserveCapacity(_ n: Int) {
        intIndex.reserveCapacity(n)
        raw.reserveCapacity(n)
    }

    /// An integer whose decimal text is exactly `s` ("12", "-3"; not "012", "+3", "1e3").
    public static func canonicalInt(_ s: String) -> Int64? {
        var s = s
        return s.withUTF8 { canonicalInt(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    public static func canonicalInt(_ b: UnsafeRawBufferPointer) -> Int64? {
        let n = b.count
        guard n > 0, n <= 18 else { return nil }
        var i = 0
        var negative = false
        if b[0] == UInt8(ascii: "-") { negative = true; i = 1; if n == 1 { return nil } }
        if b[i] == UInt8(ascii: "0") && n - i > 1 { return nil }
        if negative && b[i] == UInt8(ascii: "0") { return nil }
        var v: Int64 = 0
        while i < n {  // at most 18 digits: cannot overflow
            let d = b[i] &- 48
            if d > 9 { return nil }
            v = v &* 10 &+ Int64(d)
            i &+= 1
        }
        return negative ? -v : v
    }
}
