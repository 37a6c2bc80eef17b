import Foundation
import Checksum
import LinearAlgebra
import Interactions
import EventLog

/// Versioned binary files for model artifacts. Layout (little-endian):
///   magic (4 bytes) | version u32 | kind-specific header | payload | CRC-32C u32 of all before it
/// Readers check the magic, version, exact size and checksum before trusting a single value,
/// so a truncated or corrupted file is an error, never garbage scores.
public enum ArtifactError: Error, CustomStringConvertible, Equatable {
    case missing(String)
    case badMagic(String)
    case unsupportedVersion(String, UInt32)
    case truncated(String, expected: Int, actual: Int)
    case checksumMismatch(String)
    case inconsistent(String, String)
    case badMetadata(String, String)

    public var description: String {
        switch self {
        case .missing(let f): return "\(f): missing"
        case .badMagic(let f): return "\(f): not a foryou artifact (bad magic number)"
        case .unsupportedVersion(let f, let v): return "\(f): format version \(v) is not supported by this build"
        case .truncated(let f, let e, let a): return "\(f): truncated or padded (expected \(e) bytes, found \(a))"
        case .checksumMismatch(let f): return "\(f): checksum mismatch, the file is corrupted"
        case .inconsistent(let f, let why): return "\(f): \(why)"
        case .badMetadata(let f, let why): return "\(f): \(why)"
        }
    }
}

enum BinaryFormat {
    static let version: UInt32 = 1
    static let matrixMagic: [UInt8] = Array("FYMX".utf8)
    static let csrMagic: [UInt8] = Array("FYCS".utf8)

    struct Writer {
        var bytes: [UInt8] = []
        mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        mutating func array<T>(_ a: [T]) { a.withUnsafeBytes { bytes.append(contentsOf: $0) } }
        mutating func buffer(_ p: UnsafeRawBufferPointer) { bytes.append(contentsOf: p) }
        mutating func finish() { u32(CRC32C.checksum(UnsafeRawBufferPointer(start: bytes, count: bytes.count))) }
    }

    struct Reader {
        let name: String
        let data: [UInt8]
        var pos = 0
        init(path: String) throws {
            name = path
            guard let d = FileManager.default.contents(atPath: path) else { throw ArtifactError.missing(path) }
            data = [UInt8](d)
        }
        func need(_ n: Int) throws {
            if pos + n > data.count { throw ArtifactError.truncated(name, expected: pos + n, actual: data.count) }
        }
        mutating func magic(_ m: [UInt8]) throws {
            try need(8)
            guard Array(data[0..<4]) == m else { throw ArtifactError.badMagic(name) }
            pos = 4
            let v = try u32()
            guard v == BinaryFormat.version else { throw ArtifactError.unsupportedVersion(name, v) }
        }
        mutating func u32() throws -> UInt32 {
            try need(4)
            var v: UInt32 = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: data[pos..<(pos + 4)]) }
            pos += 4
            return UInt32(littleEndian: v)
        }
        mutating func u64() throws -> UInt64 {
            try need(8)
            var v: UInt64 = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: data[pos..<(pos + 8)]) }
            pos += 8
            return UInt64(littleEndian: v)
        }
        /// Checks that exactly `payload` bytes and the trailing checksum remain, and the checksum.
        func verify(payload: Int) throws {
            let expected = pos + payload + 4
            guard data.count == expected else { throw ArtifactError.truncated(name, expected: expected, actual: data.count) }
            let body = data.count - 4
            let stored = data[body..<data.count].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
            let actual = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
            guard UInt32(littleEndian: stored) == actual else { throw ArtifactError.checksumMismatch(name) }
        }
        mutating func array<T>(_ type: T.Type, _ count: Int) -> [T] {
            let n = count * MemoryLayout<T>.stride
            let out = [T](unsafeUninitializedCapacity: count) { buf, initialized in
                data.withUnsafeBytes { src in
                    UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[pos..<(pos + n)]))
                }
                initialized = count
            }
            pos += n
            return out
        }
    }

    static func writeMatrix(_ m: Matrix, to path: String) throws {
        var w = Writer()
        w.raw(matrixMagic); w.u32(version)
        w.u64(UInt64(m.rows)); w.u64(UInt64(m.cols)); w.u32(1) // dtype 1 = float32
        m.withUnsafeBuffer { w.buffer(UnsafeRawBufferPointer($0)) }
        w.finish()
        try AtomicFile.write(w.bytes, to: path)
    }

    static func readMatrix(_ path: String) throws -> Matrix {
        var r = try Reader(path: path)
        try r.magic(matrixMagic)
        let rows = Int(try r.u64()), cols = Int(try r.u64())
        let dtype = try r.u32()
        guard dtype == 1 else { throw ArtifactError.inconsistent(path, "unknown element type \(dtype)") }
        guard rows >= 0, cols >= 0, rows < 1 << 40, cols < 1 << 20 else {
            throw ArtifactError.inconsistent(path, "implausible shape \(rows) x \(cols)")
        }
        try r.verify(payload: rows * cols * 4)
        let m = Matrix(rows: rows, cols: cols)
        let values = r.array(Float.self, rows * cols)
        values.withUnsafeBufferPointer { m.storage.update(from: $0.baseAddress!, count: values.count) }
        return m
    }

    static func writeCSR(_ c: CSR, to path: String) throws {
        var w = Writer()
        w.raw(csrMagic); w.u32(version)
        w.u64(UInt64(c.rows)); w.u64(UInt64(c.cols)); w.u64(UInt64(c.nnz))
        w.array(c.indptr.map { Int64($0) }); w.array(c.indices); w.array(c.values)
        w.finish()
        try AtomicFile.write(w.bytes, to: path)
    }

    static func readCSR(_ path: String) throws -> CSR {
        var r = try Reader(path: path)
        try r.magic(csrMagic)
        let rows = Int(try r.u64()), cols = Int(try r.u64()), nnz = Int(try r.u64())
        guard rows < 1 << 40, cols < 1 << 40, nnz < 1 << 40 else { throw ArtifactError.inconsistent(path, "implausible shape") }
        try r.verify(payload: (rows + 1) * 8 + nnz * 8)
        let ptr = r.array(Int64.self, rows + 1).map { Int($0) }
        let idx = r.array(Int32.self, nnz), val = r.array(Float.self, nnz)
        guard ptr.first == 0, ptr.last == nnz, zip(ptr, ptr.dropFirst()).allSatisfy({ $0 <= $1 }),
              idx.allSatisfy({ $0 >= 0 && Int($0) < cols }) else {
            throw ArtifactError.inconsistent(path, "row pointers or column indices out of range")
        }
        return CSR(rows: rows, cols: cols, indptr: ptr, indices: idx, values: val)
    }
}


#if canImport(Glibc)
import Glibc
#endif
