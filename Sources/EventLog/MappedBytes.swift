import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file's bytes kept in memory for as long as this object lives: mapped read-only (a format
/// laid out to be used in place, such as a serving snapshot's seen sets, is then never copied
/// or decoded as a whole), or a copy of an array (tests). The file must not be changed in place
/// while mapped; the files mapped here are only ever replaced by rename and removed by unlink,
/// which leave a mapping intact.
public final class MappedBytes: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    /// Maps `path` whole; nil when it cannot be opened or mapped.
    public init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        let length = Int(st.st_size)
        mapped = length > 0
        guard length > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        // Populated at once: every page is read (checksummed) right after anyway, and one call
        // maps them faster than a fault each.
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0), p != MAP_FAILED else { return nil }
        bytes = UnsafeRawBufferPointer(start: p, count: length)
    }

    public init(copying array: [UInt8]) {
        mapped = false
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, array.count), alignment: 16)
        array.withUnsafeBytes { p.baseAddress!.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(p.baseAddress!), byteCount: $0.count) }
        bytes = UnsafeRawBufferPointer(start: p.baseAddress, count: array.count)
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if mapped {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }
}
