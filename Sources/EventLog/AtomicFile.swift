import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whole-file writes that never leave a half-written file under the final name: write to a
/// temporary file beside it, fsync, rename, fsync the directory.
public enum AtomicFile {
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw posixError("open \(tmp)") }
        // A failed write leaves nothing behind (a full disk is not made fuller by retries).
        func fail(_ what: String) -> NSError { let e = posixError(what); close(fd); unlink(tmp); return e }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0 { if errno == EINTR { continue }; throw fail("write \(tmp)") }
            off += n
        }
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
