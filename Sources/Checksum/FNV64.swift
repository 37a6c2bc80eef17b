/// FNV-1a, 64-bit: the whole-file digest recorded in `run.json`. (A CRC over a file that ends
/// with its own CRC is a constant, so the artifacts' trailing CRC cannot double as a digest.)
public struct FNV64: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        var h = value
        for b in buffer { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        value = h
    }

    public static func digest(_ buffer: UnsafeRawBufferPointer) -> UInt64 {
        var f = FNV64(); f.update(buffer); return f.value
    }
}
