import Foundation

/// Committed read positions of the log's consumers (`DIR/<name>.cursor`, written atomically
/// with fsync): the id of the next event each consumer has not yet applied.
public struct CursorStore: Sendable {
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    public func load(_ name: String) throws -> UInt64 {
        let path = directory + "/" + name + ".cursor"
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = UInt64(text) else { throw EventLogError.invalid("\(path): unreadable cursor '\(text)'") }
        return v
    }

    public func commit(_ name: String, _ next: UInt64) throws {
        let path = directory + "/" + name + ".cursor"
        let tmp = path + ".tmp"
        let bytes = Array("\(next)\n".utf8)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw EventLogError.io("open \(tmp)") }
        let ok = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, bytes.count) } == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, path) == 0 else { throw EventLogError.io("commit cursor \(path)") }
        let d = open(directory, O_RDONLY)
        if d >= 0 { fsync(d); close(d) }
    }
}

#if canImport(Glibc)
import Glibc
#endif
