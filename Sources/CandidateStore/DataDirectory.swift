import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The embedded default's layout under one data directory (`--data-dir`, default `./var`):
///   store.sqlite   catalog, candidate generations (SQLite, WAL, synchronous=FULL)
///   events/        the event log segments
///   exposures/     what the server served under experiments (`Exposure`; the event log's format)
///   snapshots/     checkpoints of the feed server's replayed state (`ServingSnapshot`)
///   interactions/  compacted interaction tables with the log position they cover (`InteractionTable`)
///   cursors/       committed read positions of the log's consumers
///   secret.key     the HMAC key that signs tokens and cursors (created on first use, 0600)
public struct DataDirectory: Sendable {
    public let root: String

    public init(_ root: String) { self.root = root }

    public var store: String { root + "/store.sqlite" }
    public var events: String { root + "/events" }
    public var exposures: String { root + "/exposures" }
    /// Checkpoints of the feed server's replayed state.
    public var snapshots: String { root + "/snapshots" }
    /// Compacted interaction tables (`InteractionTable`) training reads instead of the whole log.
    public var interactions: String { root + "/interactions" }

    /// Where a checkpoint of the log in `events` goes: `ownPath` for the data directory's own log
    /// (nil or the same folder), `<events>-<name>` beside another one (a checkpoint belongs to
    /// one log).
    public func companion(ofLog events: String?, ownPath: String, name: String) -> String {
        guard let events else { return ownPath }
        func canonical(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        return canonical(events) == canonical(self.events) ? ownPath : events + "-" + name
    }
    /// The interaction tables, exposure log and serving snapshots that belong to the file log in
    /// `events` (nil: this directory's own log).
    public func interactionTables(ofLog events: String?) -> String { companion(ofLog: events, ownPath: interactions, name: "interactions") }
    public func exposureLog(ofLog events: String?) -> String { companion(ofLog: events, ownPath: exposures, name: "exposures") }
    public func snapshotDirectory(ofLog events: String?) -> String { companion(ofLog: events, ownPath: snapshots, name: "snapshots") }
    public var cursors: String { root + "/cursors" }
    public var secretKey: String { root + "/secret.key" }
    /// Raw uploads (checked by ffprobe) and the transcoded ladders served under /media.
    public var uploads: String { root + "/uploads" }
    public var media: String { root + "/media" }

    public func create() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    static let keyBytes = 32

    /// The signing key, created with 32 random bytes on first use. Creation is race-free: the
    /// key is written and fsynced in a private temporary file, then `link`ed to `secret.key`,
    /// which fails if the name exists; the loser of a race reads the winner's key, and no reader
    /// ever sees a short file. A key file that is short or unreadable is an error, never replaced
    /// (tokens and cursors signed with it would stop verifying).
    public func signingKey() throws -> [UInt8] {
        try create()
        if let key = try readKey() { return key }
        var g = SystemRandomNumberGenerator()
        let key = (0..<DataDirectory.keyBytes).map { _ in UInt8.random(in: 0...255, using: &g) }
        let tmp = secretKey + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max, using: &g))"
        let f = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard f >= 0 else { throw StoreError.invalid("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        defer { unlink(tmp) }
        let wrote = key.withUnsafeBytes { write(f, $0.baseAddress!, key.count) }
        let synced = wrote == key.count && fsync(f) == 0
        let err = errno
        close(f)
        guard synced else { throw StoreError.invalid("cannot write \(tmp): \(String(cString: strerror(err)))") }
        if link(tmp, secretKey) != 0 {
            let err = errno
            if err == EPERM || err == ENOTSUP || err == EOPNOTSUPP || err == EXDEV {
                return try createKeyWithoutLinks(key)  // a file system without hard links
            }
            guard err == EEXIST else { throw StoreError.invalid("cannot create \(secretKey): \(String(cString: strerror(err)))") }
            // Another process created it first: its key is the one.
            guard let theirs = try readKey() else { throw StoreError.invalid("\(secretKey) vanished while being created") }
            return theirs
        }
        let d = open(root, O_RDONLY | O_CLOEXEC)
        guard d >= 0, fsync(d) == 0 else {
            if d >= 0 { close(d) }
            throw StoreError.invalid("cannot fsync \(root): \(String(cString: strerror(errno)))")
        }
        close(d)
        return key
    }

    /// Where `link` is not supported: create the name exclusively and write the key into it. A
    /// process that loses the race may find the file still short for a moment, so it reads again
    /// for up to a second before calling it an error.
    private func createKeyWithoutLinks(_ key: [UInt8]) throws -> [UInt8] {
        let f = open(secretKey, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if f < 0 {
            guard errno == EEXIST else { throw StoreError.invalid("cannot create \(secretKey): \(String(cString: strerror(errno)))") }
            for _ in 0..<100 {
                if let theirs = try? readKey() { return theirs }
                usleep(10_000)
            }
            guard let theirs = try readKey() else { throw StoreError.invalid("\(secretKey) vanished while being created") }
            return theirs
        }
        defer { close(f) }
        guard key.withUnsafeBytes({ write(f, $0.baseAddress!, key.count) }) == key.count, fsync(f) == 0 else {
            throw StoreError.invalid("cannot write \(secretKey): \(String(cString: strerror(errno)))")
        }
        return key
    }

    /// The existing key, nil when there is none; a short or unreadable one is an error.
    private func readKey() throws -> [UInt8]? {
        let f = open(secretKey, O_RDONLY | O_CLOEXEC)
        if f < 0 {
            if errno == ENOENT { return nil }
            throw StoreError.invalid("cannot open \(secretKey): \(String(cString: strerror(errno)))")
        }
        defer { close(f) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(f, &buf, buf.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.invalid("cannot read \(secretKey): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out += buf[0..<n]
            if out.count > 1 << 16 { throw StoreError.invalid("\(secretKey) is larger than 64 KiB: not a signing key") }
        }
        guard out.count >= DataDirectory.keyBytes else {
            throw StoreError.invalid("\(secretKey) holds \(out.count) bytes, a signing key needs at least \(DataDirectory.keyBytes); "
                                     + "refusing to replace it (tokens and cursors signed with the old key would stop verifying): "
                                     + "restore it, or remove it to start over with new tokens")
        }
        return out
    }

    public func openStore() throws -> SQLiteFeedStore {
        try create()
        return try SQLiteFeedStore(path: store)
    }
}
