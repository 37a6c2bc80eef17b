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
    public mutating func reserveCapacity(_ n: Int) { bytes.reserveCapacity(n) }
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
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let bytes: [UInt8]
    private let body: Int
    private var pos: Int

    /// `what` names the format in the error for a wrong magic ("not a snapshot").
    public init(_ bytes: [UInt8], magic: [UInt8], what: String) throws {
        guard bytes.count >= magic.count + 8, Array(bytes[0..<magic.count]) == magic else { throw Failure(description: "not \(what)") }
        body = bytes.count - 4
        let stored = bytes[body...].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        guard bytes[..<body].withUnsafeBytes({ CRC32C.checksum($0) }) == stored else { throw Failure(description: "checksum mismatch") }
        self.bytes = bytes
        pos = magic.count
    }

    public mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, pos + n <= body else { throw Failure(description: "truncated at byte \(pos)") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }
    public mutating func u8() throws -> UInt8 { try take(1).first! }
    public mutating func u32() throws -> UInt32 { try take(4).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) } }
    public mutating func u64() throws -> UInt64 { try take(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } }
    public mutating func string() throws -> String { String(decoding: try take(Int(try u32())), as: UTF8.self) }
    /// `n` u32 values at once, as their Int32 bit patterns (a snapshot's seen sets hold tens of millions).
    public mutating func i32s(_ n: Int) throws -> [Int32] {
        let raw = try take(n * 4)
        return [Int32](unsafeUninitializedCapacity: n) { out, count in
            raw.withUnsafeBytes { src in
                for k in 0..<n { out[k] = Int32(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self))) }
            }
            count = n
        }
    }

    /// A u32 count of entries of at least `minBytes` each that fits in what is left.
    public mutating func count(_ minBytes: Int) throws -> Int {
        let n = Int(try u32())
        guard n * minBytes <= body - pos else { throw Failure(description: "count \(n) past the end at byte \(pos)") }
        return n
    }

    /// Throws unless every byte before the checksum was read.
    public func end() throws {
        guard pos == body else { throw Failure(description: "\(body - pos) bytes left over") }
    }
}
