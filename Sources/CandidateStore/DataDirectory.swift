import Foundation

/// The embedded default's layout under one data directory (`--data-dir`, default `./var`):
///   store.sqlite   catalog, candidate generations (SQLite, WAL, synchronous=FULL)
///   events/        the event log segments
///   cursors/       committed read positions of the log's consumers
///   secret.key     the HMAC key that signs tokens and cursors (created on first use, 0600)
public struct DataDirectory: Sendable {
    public let root: String

    public init(_ root: String) { self.root = root }

    public var store: String { root + "/store.sqlite" }
    public var events: String { root + "/events" }
    public var cursors: String { root + "/cursors" }
    public var secretKey: String { root + "/secret.key" }
    /// Raw uploads (checked by ffprobe) and the transcoded ladders served under /media.
    public var uploads: String { root + "/uploads" }
    public var media: String { root + "/media" }

    public func create() throws {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// The signing key, created with 32 random bytes on first use.
    public func signingKey() throws -> [UInt8] {
        try create()
        if let d = FileManager.default.contents(atPath: secretKey), d.count >= 32 { return [UInt8](d) }
        var g = SystemRandomNumberGenerator()
        let key = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
        guard FileManager.default.createFile(atPath: secretKey, contents: Data(key), attributes: [.posixPermissions: 0o600]) else {
            throw StoreError.invalid("cannot write \(secretKey)")
        }
        return key
    }

    public func openStore() throws -> SQLiteFeedStore {
        try create()
        return try SQLiteFeedStore(path: store)
    }
}
