#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A read-only memory map of a whole file (importers scan it without copying).
public final class MappedFile {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let length: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ImportError(file: path, line: 0, message: "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ImportError(file: path, line: 0, message: "cannot stat") }
        length = Int(st.st_size)
        if length == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ImportError(file: path, line: 0, message: "cannot map: \(String(cString: strerror(errno)))")
        }
        madvise(p, length, MADV_SEQUENTIAL)
        bytes = UnsafeRawBufferPointer(start: p, count: length)
    }

    /// Gives the pages before `offset` back (a sequential reader is past them): they leave the
    /// process's resident set and stay in the page cache, so reading a 1.5 GB file no longer adds
    /// 1.5 GB to the peak beside what is parsed from it. Reading them again faults them back in.
    public func release(upTo offset: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let end = min(offset, length) / page * page
        guard end > 0, let base = bytes.baseAddress else { return }
        madvise(UnsafeMutableRawPointer(mutating: base), end, MADV_DONTNEED)
    }

    deinit {
        if length > 0 { munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress!), length) }
    }
}

/// An import failure that names the file and the 1-based line.
public struct ImportError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int
    public let message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { line > 0 ? "\(file):\(line): \(message)" : "\(file): \(message)" }
}
