import CChecksum

/// CRC-32C (Castagnoli), the checksum of model artifacts and log records: the CPU's CRC32
/// instruction when it has one (SSE 4.2), else table-driven slice-by-8 (`software`, also the
/// reference the hardware path is tested against); `CRC32C.checksum("123456789") == 0xE3069283`.
public struct CRC32C: Sendable {
    static let hardware = foryou_crc32c_hw_available() != 0

    public private(set) var value: UInt32 = 0xFFFF_FFFF

    public init() {}

    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0, let base = buffer.baseAddress else { return }
        if CRC32C.hardware {
            value = foryou_crc32c_hw(value, base.assumingMemoryBound(to: UInt8.self), buffer.count)
        } else {
            software(buffer)
        }
    }

    /// The table-driven path.
    public mutating func software(_ buffer: UnsafeRawBufferPointer) {
        var crc = value
        let n = buffer.count
        guard n > 0, let base = buffer.baseAddress else { return }
        let p = base.assumingMemoryBound(to: UInt8.self)
        CRC32C.tables.withUnsafeBufferPointer { tabs in
            let t0 = tabs[0], t1 = tabs[1], t2 = tabs[2], t3 = tabs[3]
            let t4 = tabs[4], t5 = tabs[5], t6 = tabs[6], t7 = tabs[7]
            var i = 0
            while i + 8 <= n {
                let lo = UInt32(p[i]) | UInt32(p[i + 1]) << 8 | UInt32(p[i + 2]) << 16 | UInt32(p[i + 3]) << 24
                let hi = UInt32(p[i + 4]) | UInt32(p[i + 5]) << 8 | UInt32(p[i + 6]) << 16 | UInt32(p[i + 7]) << 24
                let x = crc ^ lo
                crc = t7[Int(x & 0xFF)] ^ t6[Int((x >> 8) & 0xFF)] ^ t5[Int((x >> 16) & 0xFF)] ^ t4[Int(x >> 24)]
                    ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                crc = t0[Int((crc ^ UInt32(p[i])) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
        }
        value = crc
    }

    public mutating func update<T>(array: [T]) {
        array.withUnsafeBytes { update($0) }
    }

    public var finalValue: UInt32 { value ^ 0xFFFF_FFFF }

    public static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var c = CRC32C(); c.update(buffer); return c.finalValue
    }

    public static func checksum(_ string: String) -> UInt32 {
        var s = string
        return s.withUTF8 { checksum(UnsafeRawBufferPointer($0)) }
    }
}
