import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whole-file writes that never leave a half-written file under the final name: write to a
/// temporary file beside it, fsync, rename, fsync the directory.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try write(to: path) { sink in try bytes.withUnsafeBytes { try sink.write($0) } }
    }

    /// Where `write(to:_:)` puts a file's bytes: straight to the temporary file, in as many
    /// pieces as the caller likes (a large artifact is never assembled in memory first). Only
    /// valid inside `body`: a write after it returned throws.
    public final class Sink {
        fileprivate var fd: Int32
        let path: String

        fileprivate init(fd: Int32, path: String) { self.fd = fd; self.path = path }

        public func write(_ bytes: UnsafeRawBufferPointer) throws {
            guard fd >= 0 else { throw AtomicFile.posixError("write \(path) after it was closed") }
            var off = 0
            while off < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
                if n < 0 { if errno == EINTR { continue }; throw AtomicFile.posixError("write \(path)") }
                off += n
            }
        }
    }

    /// The file `body` writes through the sink, put in place as `write(_:to:)` does; `body`
    /// throwing leaves nothing behind.
    public static func write(to path: String, _ body: (Sink) throws -> Void) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw posixError("open \(tmp)") }
        // A failed write leaves nothing behind (a full disk is not made fuller by retries).
        let sink = Sink(fd: fd, path: tmp)
        defer { sink.fd = -1 }
        do { try body(sink) } catch { close(fd); unlink(tmp); throw error }
        func fail(_ what: String) -> NSError { let e = posixError(what); close(fd); unlink(tmp); return e }
        if fsync(fd) != 0 { throw fail("fsync \(tmp)") }
        close(fd)
        if rename(tmp, path) != 0 { let e = posixError("rename \(tmp)"); unlink(tmp); throw e }
        try syncDirectory((path as NSString).deletingLastPathComponent)
    }

    public static func write(_ string: String, to path: String) throws {
        try write(Array(string.utf8), to: path)
    }

    /// The whole file as bytes, read straight into the array (no `Data` copy; checkpoint files
    /// run to hundreds of MiB). Nil when it cannot be opened or read.
    public static func read(_ path: String) -> [UInt8]? {
        guard let bytes = try? EventLogCore.readFile(path) else { return nil }
        return bytes
    }

    public static func syncDirectory(_ dir: String) throws {
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        guard fd >= 0 else { throw posixError("open \(dir)") }
        defer { close(fd) }
        if fsync(fd) != 0 { throw posixError("fsync \(dir)") }
    }

    public static func posixError(_ what: String) -> NSError {
        NSError(domain: "foryou", code: Int(errno),
                userInfo: [NSLocalizedDescriptionKey: "\(what): \(String(cString: strerror(errno)))"])
    }
}
