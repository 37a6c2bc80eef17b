import Foundation

public enum VideoStatus: String, Sendable, Codable, CaseIterable {
    case processing, ready, failed, removed
}

/// A clip of the catalog.
public struct Video: Sendable, Codable, Equatable {
    public var id: String
    public var caption: String
    public var tags: [String]
    public var topic: String
    public var creator: String
    public var durationMs: Int
    public var status: VideoStatus
    public var streamURL: String?
    public var thumbnailURL: String?
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64
    public var uploadId: String?
    public var owner: String?

    public init(id: String, caption: String = "", tags: [String] = [], topic: String = "", creator: String = "",
                durationMs: Int = 0, status: VideoStatus = .ready, streamURL: String? = nil, thumbnailURL: String? = nil,
                createdAt: Int64 = 0, uploadId: String? = nil, owner: String? = nil) {
        self.id = id
        self.caption = caption
        self.tags = tags
        self.topic = topic
        self.creator = creator
        self.durationMs = durationMs
        self.status = status
        self.streamURL = streamURL
        self.thumbnailURL = thumbnailURL
        self.createdAt = createdAt
        self.uploadId = uploadId
        self.owner = owner
    }
}

/// A set of top-N lists produced by one model run.
public struct GenerationInfo: Sendable, Equatable, Codable {
    public var id: Int64
    public var model: String
    public var runId: String
    public var createdAt: Int64
    public var users: Int
    public var topN: Int
    public var live: Bool
    public var activatedAt: Int64?
    /// For a generation written by several scoring processes: how many shards, and how many
    /// are written (it can go live only when all are).
    public var shards: Int? = nil
    public var shardsDone: Int? = nil
    public var complete: Bool { shards == nil || shardsDone == shards }

    public init(id: Int64, model: String, runId: String, createdAt: Int64, users: Int, topN: Int, live: Bool, activatedAt: Int64?,
                shards: Int? = nil, shardsDone: Int? = nil) {
        self.id = id; self.model = model; self.runId = runId; self.createdAt = createdAt; self.users = users; self.topN = topN
        self.live = live; self.activatedAt = activatedAt; self.shards = shards; self.shardsDone = shardsDone
    }
}

public struct Candidate: Sendable, Equatable {
    public var video: String
    public var score: Float
    public init(video: String, score: Float) {
        self.video = video
        self.score = score
    }
}

/// A user's list as stored: (u32 item index, f32 score) pairs over the generation's item table
/// (shared, cached), decoded on access so a page reads only the entries it walks.
public struct PackedCandidates: Sendable {
    public var generation: Int64
    public var itemTable: [String]
    let blob: Data
    /// The list reflects every event with a smaller id (nil: not known, e.g. a model trained on a file).
    public var throughEvent: UInt64?

    public init(generation: Int64, itemTable: [String], blob: Data, throughEvent: UInt64? = nil) {
        self.generation = generation
        self.itemTable = itemTable
        self.blob = blob
        self.throughEvent = throughEvent
    }

    public var count: Int { blob.count / 8 }

    public subscript(_ n: Int) -> (item: UInt32, score: Float) {
        blob.withUnsafeBytes { b in
            (UInt32(littleEndian: b.loadUnaligned(fromByteOffset: n * 8, as: UInt32.self)),
             Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: n * 8 + 4, as: UInt32.self))))
        }
    }

    public var entries: [(item: UInt32, score: Float)] { (0..<count).map { self[$0] } }

    /// The stored form of a list: (u32 item index, f32 score) pairs, little-endian (every backend
    /// stores the same bytes).
    public static func pack(_ items: [Int32], _ scores: [Float]) -> Data {
        var d = Data(capacity: items.count * 8)
        for (i, s) in zip(items, scores) {
            withUnsafeBytes(of: UInt32(bitPattern: i).littleEndian) { d.append(contentsOf: $0) }
            withUnsafeBytes(of: s.bitPattern.littleEndian) { d.append(contentsOf: $0) }
        }
        return d
    }

    /// The largest item index in the list (0 when empty).
    public var maxItem: UInt32 { (0..<count).reduce(0) { max($0, self[$1].item) } }
}

public enum StoreError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case conflict(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .notFound(let s), .conflict(let s), .invalid(let s): return s
        }
    }
}

/// The candidate store and catalog the feed reads: videos, and generations of per-user top-N
/// lists of which exactly one is live. Implementations: `SQLiteFeedStore` (embedded default) and
/// `PostgresFeedStore` (module PostgresStore); `CandidateStoreTests` runs one behaviour suite on both.
public protocol FeedStore: AnyObject, Sendable {
    func upsertVideos(_ videos: [Video]) throws
    /// Inserts a new video; fails with `.conflict` when the id or upload id exists.
    func insertVideo(_ video: Video) throws
    func video(id: String) throws -> Video?
    func videos() throws -> [Video]
    /// Increases with every catalog change.
    func catalogVersion() throws -> Int64

    /// Writes a whole generation in one transaction (and makes it live in the same one when
    /// `activate`); readers see either the old live generation or the complete new one.
    func writeGeneration(model: String, runId: String, items: [String], lists: [(user: String, items: [Int32], scores: [Float])],
                         activate: Bool) throws -> Int64
    /// The same, recording the generation's source (model directory, the first event id its
    /// model did not see) in the same transaction.
    func writeGeneration(model: String, runId: String, items: [String], lists: [(user: String, items: [Int32], scores: [Float])],
                         activate: Bool, modelDir: String?, eventsThrough: UInt64?) throws -> Int64
    /// Where a generation came from, nil when there is no such generation.
    func source(generation: Int64) throws -> (modelDir: String?, eventsThrough: UInt64?)?
    /// Creates the sharded generation of `buildKey` or joins the one another shard created.
    func beginShardedGeneration(buildKey: String, model: String, runId: String, items: [String], shards: Int,
                                modelDir: String?, eventsThrough: UInt64?) throws -> Int64
    /// Writes one shard (0-based) and marks it done in one transaction; the last one completes
    /// the generation (and makes it live with `activate`).
    func writeShard(generation: Int64, shard: Int, lists: [(user: String, items: [Int32], scores: [Float])],
                    activate: Bool) throws -> ShardProgress
    func generations() throws -> [GenerationInfo]
    func liveGeneration() throws -> GenerationInfo?
    func activate(_ generation: Int64) throws
    /// Puts the previously live generation back; returns it.
    func rollback() throws -> GenerationInfo
    /// Deletes all but the newest `keep` generations (never the live one, nor one a draft or
    /// running experiment serves from); returns the ids removed.
    func prune(keep: Int) throws -> [Int64]
    /// A user's list in a generation, best first; nil when the generation has no list for them.
    func candidates(generation: Int64, user: String) throws -> [Candidate]?
    /// The same list without resolving ids (the feed's hot path maps indices itself).
    func packedCandidates(generation: Int64, user: String) throws -> PackedCandidates?
    /// The experiment that decides the feed now, if any.
    func runningExperiment() throws -> Experiment?

    // Uploads and their transcode queue.
    func insertUpload(_ u: Upload) throws
    func upload(id: String) throws -> Upload?
    /// The video (status `processing`) and its transcode job, in one transaction; only the
    /// uploader can use an upload, and only once (`UploadError`).
    func createVideo(_ video: Video, fromUpload uploadId: String, by user: String) throws
    func transcodeJob(video: String) throws -> TranscodeJob?
    /// Claims the oldest queued job, or a running one whose lease ran out.
    func claimTranscodeJob(leaseSeconds: Int64, now: Int64) throws -> TranscodeJob?
    func completeTranscode(job: Int64, video: String, streamURL: String, posterURL: String, durationMs: Int) throws
    func failTranscode(job: Int64, error: String, permanent: Bool, maxAttempts: Int) throws -> TranscodeJob.Status

    // Consumers of the event log that write lists (the ranking worker).
    /// Replaces some users' lists in a generation (videos not yet in its item table are appended
    /// to it) and, in the same transaction, records the consumer's cursor. With `expecting`, a
    /// compare-and-set: the write happens only while the stored cursor still says `expecting`
    /// (or none is stored yet), checked inside the transaction; otherwise nothing is written and
    /// the call returns false (another writer moved the cursor: drop the batch, re-read). `fence`
    /// names the cursor compared when it is not `consumer` (a scratch cursor's writes fenced on
    /// the real one, which they do not move).
    @discardableResult
    func replaceLists(generation: Int64, lists: [(user: String, videos: [String], scores: [Float])], consumer: String,
                      nextEvent: UInt64, expecting: UInt64?, fence: String?) throws -> Bool
    /// A consumer's committed position: the generation it wrote into and the next event to read.
    func consumerCursor(_ name: String) throws -> (generation: Int64?, nextEvent: UInt64)?

    // Online experiments.
    /// Creates a draft; every variant's generation must exist and be complete, names unique,
    /// weights positive.
    func createExperiment(name: String, variants: [Experiment.Variant]) throws -> Experiment
    func experiments() throws -> [Experiment]
    func experiment(named name: String) throws -> Experiment?
    /// Starts a draft; at most one experiment runs.
    @discardableResult func startExperiment(_ name: String, at time: Int64) throws -> Experiment
    @discardableResult func stopExperiment(_ name: String, at time: Int64) throws -> Experiment

    /// Calls wait on a network round trip (a server's request handlers run them off the
    /// cooperative thread pool then); false for the embedded store.
    var waitsOnNetwork: Bool { get }

    /// The list when it is in memory now (`.some(nil)`: known to be absent), without any I/O;
    /// nil when only a read can tell. A feed request that gets nil does its read off the event
    /// loops, so a disk read never holds up requests that need none.
    func memoryCandidates(generation: Int64, user: String) -> PackedCandidates??
}

extension FeedStore {
    public var waitsOnNetwork: Bool { false }
    public func memoryCandidates(generation: Int64, user: String) -> PackedCandidates?? { nil }

    /// A user's list with ids resolved (entries beyond the item table are dropped).
    public func candidates(generation: Int64, user: String) throws -> [Candidate]? {
        guard let packed = try packedCandidates(generation: generation, user: user) else { return nil }
        return packed.entries.compactMap { e in
            Int(e.item) < packed.itemTable.count ? Candidate(video: packed.itemTable[Int(e.item)], score: e.score) : nil
        }
    }
}

/// A generation's item table while lists are written against it (the ranking worker's list
/// replacement): known videos map to their index, new ones are appended at the end.
public struct ItemTableBuilder {
    public private(set) var table: [String]
    private var position: [String: Int32]

    public init(_ table: [String]) {
        self.table = table
        position = Dictionary(table.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { a, _ in a })
    }

    /// The indices of `videos`; `append(index, video)` stores each video new to the table first.
    public mutating func indices(_ videos: [String], append: (Int32, String) throws -> Void) rethrows -> [Int32] {
        var idx: [Int32] = []
        idx.reserveCapacity(videos.count)
        for v in videos {
            if let p = position[v] { idx.append(p); continue }
            let p = Int32(table.count)
            try append(p, v)
            table.append(v)
            position[v] = p
            idx.append(p)
        }
        return idx
    }
}

extension FeedStore {
    /// `replaceLists` without a fence (the cursor is written whatever it held).
    public func replaceLists(generation: Int64, lists: [(user: String, videos: [String], scores: [Float])], consumer: String,
                             nextEvent: UInt64) throws {
        try replaceLists(generation: generation, lists: lists, consumer: consumer, nextEvent: nextEvent, expecting: nil, fence: nil)
    }

    /// `replaceLists` fenced on `consumer`'s own cursor.
    @discardableResult
    public func replaceLists(generation: Int64, lists: [(user: String, videos: [String], scores: [Float])], consumer: String,
                             nextEvent: UInt64, expecting: UInt64?) throws -> Bool {
        try replaceLists(generation: generation, lists: lists, consumer: consumer, nextEvent: nextEvent, expecting: expecting, fence: nil)
    }
}
