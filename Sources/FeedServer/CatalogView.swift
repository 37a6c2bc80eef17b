import Foundation
import Synchronization
import CandidateStore
import EventLog

/// The server's view of the store's catalog, and the global video index space every other part of
/// `FeedState` is keyed by: each video id seen in the catalog, an event or a generation's item
/// table gets a small integer once (indices are never reused and the arrays here only grow, so an
/// index read anywhere stays valid against any later copy of `entries`). Indices differ between
/// servers; ids do not. Reloaded when the store's catalog version changes. One lock; every
/// operation under it is short.
final class CatalogView: @unchecked Sendable {
    /// Prefix of relative stream and thumbnail URLs in the rendered entries.
    let publicBaseURL: String
    private let lock = NSLock()

    /// By global video index: in the store's catalog now (the others keep their index and their
    /// last entry: events may still name them).
    private var inCatalog: [Bool] = []
    private var catalogCount = 0
    private var catalogVersion: Int64 = -1
    private var videoIndex: [String: Int32] = [:]
    /// Video id by global index.
    private var ids: [String] = []
    /// Catalog entries by global video index (nil: not in the catalog).
    private var byIndex: [VideoBox?] = []
    /// What a page's filters read, by global video index, in one compact array (the candidate
    /// loop touches it for every candidate it skips; `byIndex` only for the ones it serves).
    private var meta: [VideoMeta] = []
    private var topicIds: [String: Int32] = [:]
    private var creatorIds: [String: Int32] = [:]
    /// Per generation: its item-table position -> global video index.
    private var generationMaps: [Int64: [Int32]] = [:]

    init(publicBaseURL: String) { self.publicBaseURL = publicBaseURL }

    /// The store's catalog version this view was last loaded from (-1: never).
    var version: Int64 {
        lock.lock(); defer { lock.unlock() }
        return catalogVersion
    }

    /// Numbers videos as a snapshot did (`ids` by index; `index`: their positions, built when
    /// empty) before anything else is indexed, so the snapshot's seen sets and trending are taken
    /// as they are and the log's tail can be applied while the catalog loads. False (and nothing
    /// done) once anything is indexed.
    func seed(ids: [String], index: [String: Int32]) -> Bool {
        let index = index.count == ids.count ? index : Dictionary(ids.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { a, _ in a })
        guard index.count == ids.count else { return false }
        lock.lock(); defer { lock.unlock() }
        guard self.ids.isEmpty else { return false }
        self.ids = ids
        videoIndex = index
        byIndex = [VideoBox?](repeating: nil, count: ids.count)
        meta = [VideoMeta](repeating: VideoMeta(), count: ids.count)
        inCatalog = [Bool](repeating: false, count: ids.count)
        return true
    }

    /// Replaces the catalog with the store's `videos` at `version`. Entries of videos no longer
    /// in it keep their index and entry (events may still name them). The entries are made
    /// before the lock is taken: events keep being indexed meanwhile.
    func reload(_ videos: [Video], version: Int64) {
        let boxes = videos.map { VideoBox($0, baseURL: publicBaseURL) }
        lock.lock(); defer { lock.unlock() }
        for i in inCatalog.indices { inCatalog[i] = false }
        catalogCount = 0
        for (v, box) in zip(videos, boxes) { setLocked(Int(indexLocked(v.id)), v, box) }
        catalogVersion = version
    }

    /// Adds (or replaces) one video, e.g. an upload this server accepted.
    func add(_ v: Video) {
        lock.lock(); defer { lock.unlock() }
        setLocked(Int(indexLocked(v.id)), v)
    }

    func video(id: String) -> Video? {
        lock.lock(); defer { lock.unlock() }
        guard let i = videoIndex[id].map(Int.init), inCatalog[i] else { return nil }
        return byIndex[i]?.v
    }

    /// Videos in the catalog.
    var count: Int {
        lock.lock(); defer { lock.unlock() }
        return catalogCount
    }

    /// The global index of each video id, assigning new ones, under one lock.
    func indices<S: Sequence<String>>(of videos: S) -> [Int32] {
        lock.lock(); defer { lock.unlock() }
        return videos.map { indexLocked($0) }
    }

    /// Video ids by global index (a copy-on-write copy).
    var idTable: [String] {
        lock.lock(); defer { lock.unlock() }
        return ids
    }

    /// Global video indices of a generation's item table (computed once per generation).
    func mapping(for packed: PackedCandidates) -> [Int32] {
        lock.lock(); defer { lock.unlock() }
        if let m = generationMaps[packed.generation], m.count == packed.itemTable.count { return m }
        if generationMaps.count > 8 { generationMaps.removeAll() }
        let m = packed.itemTable.map { indexLocked($0) }
        generationMaps[packed.generation] = m
        return m
    }

    /// Catalog entries and their filter fields by global index, copied together (copy-on-write
    /// makes that O(1)): `meta[i].ready` implies `videos[i] != nil`, and both have one count.
    var entries: (videos: [VideoBox?], meta: [VideoMeta]) {
        lock.lock(); defer { lock.unlock() }
        return (byIndex, meta)
    }

    private func indexLocked(_ id: String) -> Int32 {
        if let i = videoIndex[id] { return i }
        let i = Int32(byIndex.count)
        videoIndex[id] = i
        ids.append(id)
        byIndex.append(nil)
        meta.append(VideoMeta())
        inCatalog.append(false)
        return i
    }

    /// Video `i` is `v`, in the catalog (`box`: its entry, rendered already).
    private func setLocked(_ i: Int, _ v: Video, _ box: VideoBox? = nil) {
        if !inCatalog[i] { inCatalog[i] = true; catalogCount += 1 }
        byIndex[i] = box ?? VideoBox(v, baseURL: publicBaseURL)
        func intern(_ s: String, _ table: inout [String: Int32]) -> Int32 {
            if s.isEmpty { return -1 }
            if let k = table[s] { return k }
            let k = Int32(table.count)
            table[s] = k
            return k
        }
        meta[i] = VideoMeta(ready: v.status == .ready, topic: intern(v.topic, &topicIds), creator: intern(v.creator, &creatorIds))
    }
}

/// A video's fields the page filters need: ready to serve, and its topic and creator as small
/// integers (-1: none), so diversity checks compare numbers.
struct VideoMeta {
    var ready = false
    var topic: Int32 = -1
    var creator: Int32 = -1
}

/// A catalog entry shared by reference on the hot path (one retain instead of one per field),
/// with its feed JSON fields rendered once, when first served: `"id":...,"creator":...,` (ranker
/// and generation, which depend on the request, are appended per response). A catalog load
/// renders nothing (most of a 200k-video catalog is not served in a server's first minutes).
final class VideoBox: @unchecked Sendable {
    let v: Video
    /// The id's hash, as paging cursors' served filters take it.
    let idHash: UInt64
    private let baseURL: String
    private let rendered = Mutex<[UInt8]?>(nil)

    init(_ v: Video, baseURL: String = "") {
        self.v = v
        self.baseURL = baseURL
        idHash = ServedFilter.hash(v.id)
    }

    /// What `JSONWriter` writes for these fields, without the braces, and a separator for the
    /// fields that follow.
    var jsonFields: [UInt8] {
        rendered.withLock { r in
            if let r { return r }
            let b = Self.render(v, baseURL: baseURL)
            r = b
            return b
        }
    }

    /// Built directly (a page renders ten of them).
    private static func render(_ v: Video, baseURL: String) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(128 + v.id.utf8.count + v.caption.utf8.count + (v.streamURL?.utf8.count ?? 0) * 2 + baseURL.utf8.count * 2)
        func key(_ k: StaticString, first: Bool = false) {
            if !first { b.append(44) }
            b.append(34)
            k.withUTF8Buffer { b.append(contentsOf: $0) }
            b.append(34); b.append(58)
        }
        func string(_ s: String?) {
            if let s { JSONWriter.appendQuoted(s, to: &b) } else { b.append(contentsOf: "null".utf8) }
        }
        key("id", first: true); string(v.id)
        key("caption"); string(v.caption)
        key("stream_url"); string(VideoBox.url(v.streamURL, baseURL))
        key("thumbnail_url"); string(VideoBox.url(v.thumbnailURL, baseURL))
        key("duration_ms"); b.append(contentsOf: String(v.durationMs).utf8)
        key("topic"); string(v.topic)
        key("creator"); string(v.creator)
        b.append(44)
        return b
    }

    static func url(_ u: String?, _ base: String) -> String? {
        guard let u else { return nil }
        return u.hasPrefix("/") && !base.isEmpty ? base + u : u
    }
}
