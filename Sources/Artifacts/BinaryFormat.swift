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

    /// Writes straight to the file (no copy of the payload in memory), the CRC kept as it goes.
    struct Writer {
        let sink: AtomicFile.Sink
        var crc = CRC32C()
        mutating func buffer(_ p: UnsafeRawBufferPointer) throws { crc.update(p); try sink.write(p) }
        mutating func raw(_ b: [UInt8]) throws { try b.withUnsafeBytes { try buffer($0) } }
        mutating func u32(_ v: UInt32) throws { try withUnsafeBytes(of: v.littleEndian) { try buffer($0) } }
        mutating func u64(_ v: UInt64) throws { try withUnsafeBytes(of: v.littleEndian) { try buffer($0) } }
        mutating func array<T>(_ a: [T]) throws { try a.withUnsafeBytes { try buffer($0) } }
        mutating func finish() throws {
            try withUnsafeBytes(of: crc.finalValue.littleEndian) { try sink.write($0) }
        }
        /// `body` writing through a Writer to a file put in place atomically.
        static func file(_ path: String, _ body: (inout Writer) throws -> Void) throws {
            try AtomicFile.write(to: path) { sink in
                var w = Writer(sink: sink)
                try body(&w)
                try w.finish()
            }
        }
    }

    /// Reads the file in order from its descriptor: the header into values, each array straight
    /// into its storage (one copy of the payload in memory, never the file and the arrays
    /// both), the CRC kept as it goes and checked at `end()`. The size is known up front, so
    /// truncation is named before any payload is read.
    final class Reader {
        let name: String
        let fd: Int32
        let size: Int
        private(set) var pos = 0
        private var crc = CRC32C()

        init(path: String) throws {
            name = path
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ArtifactError.missing(path) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { close(fd); throw ArtifactError.missing(path) }
            size = Int(st.st_size)
        }
        deinit { close(fd) }

        func need(_ n: Int) throws {
            if pos + n > size { throw ArtifactError.truncated(name, expected: pos + n, actual: size) }
        }
        /// Exactly `n` bytes into `p` (a short read: the file shrank under us, i.e. truncated).
        private func fill(_ p: UnsafeMutableRawPointer, _ n: Int, checksum: Bool = true) throws {
            try need(n)
            var off = 0
            while off < n {
                let got = pread(fd, p + off, n - off, off_t(pos + off))
                if got < 0 && errno == EINTR { continue }
                if got < 0 { throw AtomicFile.posixError("read \(name)") }
                guard got > 0 else { throw ArtifactError.truncated(name, expected: pos + n, actual: pos + off) }
                off += got
            }
            if checksum { crc.update(UnsafeRawBufferPointer(start: p, count: n)) }
            pos += n
        }
        func magic(_ m: [UInt8]) throws {
            try need(8)
            var head = [UInt8](repeating: 0, count: 4)
            try head.withUnsafeMutableBytes { try fill($0.baseAddress!, 4) }
            guard head == m else { throw ArtifactError.badMagic(name) }
            let v = try u32()
            guard v == BinaryFormat.version else { throw ArtifactError.unsupportedVersion(name, v) }
        }
        func u32() throws -> UInt32 {
            var v: UInt32 = 0
            try withUnsafeMutableBytes(of: &v) { try fill($0.baseAddress!, 4) }
            return UInt32(littleEndian: v)
        }
        func u64() throws -> UInt64 {
            var v: UInt64 = 0
            try withUnsafeMutableBytes(of: &v) { try fill($0.baseAddress!, 8) }
            return UInt64(littleEndian: v)
        }
        /// Checks that exactly `payload` bytes and the trailing checksum remain (before reading them).
        func expect(payload: Int) throws {
            let expected = pos + payload + 4
            guard size == expected else { throw ArtifactError.truncated(name, expected: expected, actual: size) }
        }
        /// `count` bytes of payload into `p`.
        func read(into p: UnsafeMutableRawPointer, count: Int) throws { try fill(p, count) }
        func array<T>(_ type: T.Type, _ count: Int) throws -> [T] {
            try [T](unsafeUninitializedCapacity: count) { buf, initialized in
                if count > 0 { try fill(UnsafeMutableRawPointer(buf.baseAddress!), count * MemoryLayout<T>.stride) }
                initialized = count
            }
        }
        /// The trailing CRC against everything read before it.
        func end() throws {
            var stored: UInt32 = 0
            try withUnsafeMutableBytes(of: &stored) { try fill($0.baseAddress!, 4, checksum: false) }
            guard pos == size else { throw ArtifactError.truncated(name, expected: pos, actual: size) }
            guard UInt32(littleEndian: stored) == crc.finalValue else { throw ArtifactError.checksumMismatch(name) }
        }
    }

    static func writeMatrix(_ m: Matrix, to path: String) throws {
        try Writer.file(path) { w in
            try w.raw(matrixMagic); try w.u32(version)
            try w.u64(UInt64(m.rows)); try w.u64(UInt64(m.cols)); try w.u32(1) // dtype 1 = float32
            try m.withUnsafeBuffer { try w.buffer(UnsafeRawBufferPointer($0)) }
        }
    }

    static func readMatrix(_ path: String) throws -> Matrix {
        let r = try Reader(path: path)
        try r.magic(matrixMagic)
        guard let rows = Int(exactly: try r.u64()), let cols = Int(exactly: try r.u64()) else {
            throw ArtifactError.inconsistent(path, "implausible shape")
        }
        let dtype = try r.u32()
        guard dtype == 1 else { throw ArtifactError.inconsistent(path, "unknown element type \(dtype)") }
        guard rows >= 0, cols >= 0, rows < 1 << 40, cols < 1 << 20 else {
            throw ArtifactError.inconsistent(path, "implausible shape \(rows) x \(cols)")
        }
        try r.expect(payload: rows * cols * 4)
        let m = Matrix(rows: rows, cols: cols)
        if rows * cols > 0 { try m.withUnsafeBuffer { try r.read(into: UnsafeMutableRawPointer($0.baseAddress!), count: $0.count * 4) } }
        try r.end()
        return m
    }

    static func writeCSR(_ c: CSR, to path: String) throws {
        try Writer.file(path) { w in
            try w.raw(csrMagic); try w.u32(version)
            try w.u64(UInt64(c.rows)); try w.u64(UInt64(c.cols)); try w.u64(UInt64(c.nnz))
            // Row pointers go as Int64: Int is that on every platform this builds for.
            if MemoryLayout<Int>.size == 8 { try w.array(c.indptr) } else { try w.array(c.indptr.map { Int64($0) }) }
            try w.array(c.indices); try w.array(c.values)
        }
    }

    static func readCSR(_ path: String) throws -> CSR {
        let r = try Reader(path: path)
        try r.magic(csrMagic)
        guard let rows = Int(exactly: try r.u64()), let cols = Int(exactly: try r.u64()), let nnz = Int(exactly: try r.u64()) else {
            throw ArtifactError.inconsistent(path, "implausible shape")
        }
        guard rows < 1 << 40, cols < 1 << 40, nnz < 1 << 40 else { throw ArtifactError.inconsistent(path, "implausible shape") }
        try r.expect(payload: (rows + 1) * 8 + nnz * 8)
        let ptr = MemoryLayout<Int>.size == 8 ? try r.array(Int.self, rows + 1) : try r.array(Int64.self, rows + 1).map { Int($0) }
        let idx = try r.array(Int32.self, nnz), val = try r.array(Float.self, nnz)
        try r.end()
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
