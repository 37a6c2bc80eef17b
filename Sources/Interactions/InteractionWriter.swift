import Foundation

/// Writes interactions in the split format (`user<TAB>item<TAB>weight[<TAB>time]`, raw ids).
public enum InteractionWriter {
    public static func write(_ data: Interactions, to path: String) throws {
        var out = BufferedWriter(path: path)
        try out.open()
        for r in 0..<data.count {
            out.append(data.users.raw[Int(data.userIndex[r])]); out.append(tab: ())
            out.append(data.items.raw[Int(data.itemIndex[r])]); out.append(tab: ())
            out.append(float: data.weights[r])
            if let t = data.timestamps { out.append(tab: ()); out.append(int: t[r]) }
            out.append(newline: ())
        }
        try out.close()
    }
}

/// A buffered file writer for large TSV outputs (written to `path.tmp`, then renamed, so a
/// crash never leaves a half-written file under the final name).
public struct BufferedWriter {
    public let path: String
    private var buffer: [UInt8] = []
    private var handle: FileHandle?
    private var tmpPath: String { path + ".tmp" }

    public init(path: String) {
        self.path = path
        buffer.reserveCapacity(1 << 20)
    }

    public mutating func open() throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        guard FileManager.default.createFile(atPath: tmpPath, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: tmpPath])
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: tmpPath))
    }

    @inline(__always) public mutating func append(_ s: String) {
        var s = s
        s.withUTF8 { buffer.append(contentsOf: $0) }
        if buffer.count >= 1 << 20 { flush() }
    }
    @inline(__always) public mutating func append(tab: Void) { buffer.append(9) }
    @inline(__always) public mutating func append(byte: UInt8) { buffer.append(byte) }
    @inline(__always) public mutating func append(newline: Void) {
        buffer.append(10)
        if buffer.count >= 1 << 20 { flush() }
    }

    public mutating func append(int v: Int64) {
        if v == 0 { buffer.append(48); return }
        var x = v.magnitude
        if v < 0 { buffer.append(45) }
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            while x > 0 { t[n] = UInt8(48 + x % 10); x /= 10; n += 1 }
            for k in stride(from: n - 1, through: 0, by: -1) { buffer.append(t[k]) }
        }
    }

    /// Shortest text that reads back to the same float (integers print without a fraction).
    public mutating func append(float v: Float) {
        if v == v.rounded(), abs(v) < 1e15 { append(int: Int64(v)); return }
        append(v.description)
    }

    public mutating func flush() {
        guard !buffer.isEmpty, let handle else { return }
        handle.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }

    public mutating func close() throws {
        flush()
        try handle?.synchronize()
        try handle?.close()
        handle = nil
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: tmpPath, toPath: path)
    }
}
