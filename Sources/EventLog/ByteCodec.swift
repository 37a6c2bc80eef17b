import Foundation
import Checksum

/// The little-endian layout of the checkpoint files (serving snapshots, interaction tables):
/// a magic, fixed-width integers, u32-length-prefixed UTF-8 strings, and a CRC-32C of everything
/// before it at the end.
public struct ByteWriter {
    public private(set) var bytes: [UInt8]
    public init(magic: [UInt8]) { bytes = magic }
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func string(_ s: String) { let b = Array(s.utf8); u32(UInt32(b.count)); bytes.append(contentsOf: b) }
    /// Each value as a u32 (its bit pattern).
    public mutating func i32s(_ vs: ArraySlice<Int32>) {
        append(count: vs.count * 4) { out in
            for (k, v) in vs.enumerated() { out.storeBytes(of: UInt32(bitPattern: v).littleEndian, toByteOffset: 4 * k, as: UInt32.self) }
        }
    }
    /// Bytes as they are (a section already in the format, e.g. copied from a mapped file).
    public mutating func raw<C: Collection<UInt8>>(_ b: C) { bytes.append(contentsOf: b) }
    public mutating func reserveCapacity(_ n: Int) { bytes.reserveCapacity(n) }
    /// The bytes so far, leaving the writer empty with its capacity (`ByteStream`).
    public mutating func drain() -> [UInt8] {
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }
    /// `count` bytes written in place by `fill` (bulk sections: millions of fixed-width records).
    public mutating func append(count: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        bytes.withUnsafeMutableBytes { fill(UnsafeMutableRawBufferPointer(rebasing: $0[start..<(start + count)])) }
    }
    /// The bytes with their CRC-32C appended.
    /// (Mutating, so the checksum is appended in place: a copy of a 2 GB table would double it.)
    public mutating func finished() -> [UInt8] {
        u32(bytes.withUnsafeBytes { CRC32C.checksum($0) })
        return bytes
    }
}

/// Reads what `ByteWriter` wrote, checking the magic and the checksum first and every length
/// against what is left before trusting it.
public struct ByteReader {
    public typealias Failure = RawByteReader.Failure

    private let bytes: [UInt8]
    private let body: Int
    private var pos: Int

    /// `what` names the format in the error for a wrong magic ("not a snapshot").
    public init(_ bytes: [UInt8], magic: [UInt8], what: String) throws {
        (body, pos) = try bytes.withUnsafeBytes { b in
            let r = try RawByteReader(b, magic: magic, what: what)
            return (r.body, r.position)
        }
        self.bytes = bytes
    }

    /// Runs `read` on a raw reader over the array at this reader's position, then moves past what it read.
    private mutating func read<T>(_ read: (inout RawByteReader) throws -> T) throws -> T {
        let (body, start) = (self.body, pos)
        var end = start
        defer { pos = end }
        return try bytes.withUnsafeBytes { b in
            var r = RawByteReader(unchecked: b, body: body, position: start)
            defer { end = r.position }
            return try read(&r)
        }
    }

    public mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        let start = pos
        _ = try read { try $0.take(n) }
        return bytes[start..<pos]
    }
    public mutating func u8() throws -> UInt8 { try read { try $0.u8() } }
    public mutating func u32() throws -> UInt32 { try read { try $0.u32() } }
    public mutating func u64() throws -> UInt64 { try read { try $0.u64() } }
    public mutating func string() throws -> String { try read { try $0.string() } }
    /// `n` u32 values at once, as their Int32 bit patterns (a snapshot's seen sets hold tens of millions).
    public mutating func i32s(_ n: Int) throws -> [Int32] { try read { try $0.i32s(n) } }
    /// A u32 count of entries of at least `minBytes` each that fits in what is left.
    public mutating func count(_ minBytes: Int) throws -> Int { try read { try $0.count(minBytes) } }
    /// Throws unless every byte before the checksum was read.
    public func end() throws {
        guard pos == body else { throw Failure(description: "\(body - pos) bytes left over") }
    }
}

/// `ByteReader` over memory the caller keeps alive and unchanged (a mapped file: a format laid
/// out to be used in place is read without copying it).
public struct RawByteReader {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public let bytes: UnsafeRawBufferPointer
    /// Where the checksum starts.
    public let body: Int
    public private(set) var position: Int

    /// Checks the magic and the CRC-32C of everything before the last four bytes.
    public init(_ bytes: UnsafeRawBufferPointer, magic: [UInt8], what: String) throws {
        guard bytes.count >= magic.count + 8, bytes.prefix(magic.count).elementsEqual(magic) else {
            throw Failure(description: "not \(what)")
        }
        body = bytes.count - 4
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: body, as: UInt32.self))
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[..<body])) == stored else {
            throw Failure(description: "checksum mismatch")
        }
        self.bytes = bytes
        position = magic.count
    }

    /// At `position`, the checksum already checked (`body`: where it starts).
    public init(unchecked bytes: UnsafeRawBufferPointer, body: Int, position: Int) {
        self.bytes = bytes
        self.body = body
        self.position = position
    }

    public mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= body - position else { throw Failure(description: "truncated at byte \(position)") }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }
    public mutating func u8() throws -> UInt8 { try take(1)[0] }
    public mutating func u32() throws -> UInt32 { UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self)) }
    public mutating func u64() throws -> UInt64 { UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self)) }
    public mutating func string() throws -> String { String(decoding: try take(Int(try u32())), as: UTF8.self) }
    /// `n` u32 values at once, as their Int32 bit patterns.
    public mutating func i32s(_ n: Int) throws -> [Int32] {
        guard n >= 0, n <= (body - position) / 4 else { throw Failure(description: "truncated at byte \(position)") }
        return RawByteReader.i32s(try take(n * 4))
    }
    /// The u32 values of `raw` as Int32 bit patterns.
    public static func i32s(_ raw: UnsafeRawBufferPointer) -> [Int32] {
        let n = raw.count / 4
        return [Int32](unsafeUninitializedCapacity: n) { out, count in
            for k in 0..<n { out[k] = Int32(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))) }
            count = n
        }
    }
    /// A u32 count of entries of at least `minBytes` each that fits in what is left.
    public mutating func count(_ minBytes: Int) throws -> Int {
        let n = Int(try u32())
        guard n * minBytes <= body - position else { throw Failure(description: "count \(n) past the end at byte \(position)") }
        return n
    }
    /// Skips the zero padding up to the next multiple of `alignment` (from the start of the bytes).
    public mutating func align(_ alignment: Int) throws {
        let pad = (alignment - position % alignment) % alignment
        guard try take(pad).allSatisfy({ $0 == 0 }) else { throw Failure(description: "padding not zero at byte \(position - pad)") }
    }
    /// Throws unless every byte before the checksum was read.
    public func end() throws {
        guard position == body else { throw Failure(description: "\(body - position) bytes left over") }
    }
}

/// `ByteWriter`'s format streamed to a file in pieces of about a MiB, its CRC-32C kept as it
/// goes (a checkpoint of hundreds of MiB is never assembled in memory).
public final class ByteStream {
    private let output: (UnsafeRawBufferPointer) throws -> Void
    private var buffer: ByteWriter
    private var crc = CRC32C()
    /// Bytes written before the buffer.
    private var flushed = 0

    /// `output` takes the bytes in order (`AtomicFile.Sink.write`, or an array being filled).
    public init(magic: [UInt8], output: @escaping (UnsafeRawBufferPointer) throws -> Void) {
        self.output = output
        buffer = ByteWriter(magic: magic)
        buffer.reserveCapacity(1 << 20 + 4096)
    }

    /// Bytes written so far.
    public var offset: Int { flushed + buffer.bytes.count }

    /// `body` appends to the buffer; it is written out once it passes a MiB.
    public func write(_ body: (inout ByteWriter) -> Void) throws {
        body(&buffer)
        if buffer.bytes.count >= 1 << 20 { try flush() }
    }

    /// Zero bytes up to the next multiple of `alignment` from the start.
    public func align(_ alignment: Int) throws {
        let pad = (alignment - offset % alignment) % alignment
        try write { w in for _ in 0..<pad { w.u8(0) } }
    }

    private func flush() throws {
        let bytes = buffer.drain()
        try bytes.withUnsafeBytes { b in
            crc.update(b)
            try output(b)
        }
        flushed += bytes.count
    }

    /// Writes what is buffered and the checksum of everything.
    public func finish() throws {
        try flush()
        var c = crc.finalValue.littleEndian
        try withUnsafeBytes(of: &c) { try output($0) }
        flushed += 4
    }
}
