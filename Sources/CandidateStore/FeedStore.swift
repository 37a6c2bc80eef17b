import Foundation

// The store's interface, one protocol per role (the way GRDB separates `DatabaseReader` from
// `DatabaseWriter`): a component that needs one role takes that protocol, and `FeedStore` is all
// of them together. Implementations: `SQLiteFeedStore` (embedded default) and `PostgresFeedStore`
// (module PostgresStore); `CandidateStoreTests` runs one behaviour suite on both.

/// The catalog: videos, and a version that moves with every change to them.
public protocol CatalogStore: AnyObject, Sendable {
    func upsertVideos(_ videos: [Video]) throws
    /// Inserts a new video; fails with `.conflict` when the id or upload id exists.
    func insertVideo(_ video: Video) throws
    func video(id: String) throws -> Video?
    func videos() throws -> [Video]
    /// Increases with every catalog change.
    func catalogVersion() throws -> Int64
}

/// Generations of per-user top-N lists, of which exactly one is live, and the lists themselves
/// (what the feed reads, optionally through an in-memory list cache).
public protocol GenerationStore: AnyObject, Sendable {
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
    /// running experiment serves from; `GenerationPruning` decides); returns the ids removed.
    func prune(keep: Int) throws -> [Int64]

    /// A user's list in a generation, best first; nil when the generation has no list for them.
    func candidates(generation: Int64, user: String) throws -> [Candidate]?
    /// The same list without resolving ids (the feed's hot path maps indices itself).
    func packedCandidates(generation: Int64, user: String) throws -> PackedCandidates?
    /// The list when it is in memory now (`.some(nil)`: known to be absent), without any I/O;
    /// nil when only a read can tell. A feed request that gets nil does its read off the event
    /// loops, so a disk read never holds up requests that need none.
    func memoryCandidates(generation: Int64, user: String) -> PackedCandidates??
    /// Keeps the lists `packedCandidates` reads in memory (`capacity` lists, each for at most
    /// `ttl` seconds), dropped when another process replaces them (`ListCache`). For
    /// `foryou serve`; batch tools read through.
    func enableListCache(capacity: Int, ttl: Double) throws
    /// Lists served from memory and read from the store since the cache was enabled (nil: not enabled).
    var listCacheStats: (hits: Int, misses: Int, lists: Int)? { get }
}

/// Uploads and their transcode queue.
public protocol UploadStore: AnyObject, Sendable {
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
}

/// Consumers of the event log that write lists (the ranking worker): their lists and their
/// committed read positions, written together.
public protocol ConsumerCursorStore: AnyObject, Sendable {
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
    /// Every consumer's committed position, by name (what a prune of the log must not pass).
    func consumerCursors() throws -> [(name: String, generation: Int64?, nextEvent: UInt64)]
}

/// Online experiments.
public protocol ExperimentStore: AnyObject, Sendable {
    /// Creates a draft; every variant's generation must exist and be complete, names unique,
    /// weights positive.
    /// `kind`: an A/B split or an interleaving test; `primary`: the metric declared primary now,
    /// before anything is read (nil: the report's default).
    func createExperiment(name: String, variants: [Experiment.Variant], kind: Experiment.Kind, primary: String?) throws -> Experiment
    func experiments() throws -> [Experiment]
    func experiment(named name: String) throws -> Experiment?
    /// The experiment that decides the feed now, if any.
    func runningExperiment() throws -> Experiment?
    /// Starts a draft; at most one experiment runs.
    @discardableResult func startExperiment(_ name: String, at time: Int64) throws -> Experiment
    @discardableResult func stopExperiment(_ name: String, at time: Int64) throws -> Experiment
    /// Deletes a draft (one that never ran: a started experiment's assignments are in the event log).
    func deleteExperiment(_ name: String) throws
}

extension ExperimentStore {
    /// An A/B experiment with the report's default primary metric.
    public func createExperiment(name: String, variants: [Experiment.Variant]) throws -> Experiment {
        try createExperiment(name: name, variants: variants, kind: .ab, primary: nil)
    }
}

/// The whole store: the catalog the feed reads, generations of per-user top-N lists of which
/// exactly one is live, uploads and their transcode queue, the list-writing consumers' cursors,
/// and experiments.
public protocol FeedStore: CatalogStore, GenerationStore, UploadStore, ConsumerCursorStore, ExperimentStore {
    /// Calls wait on a network round trip (a server's request handlers run them off the
    /// cooperative thread pool then); false for the embedded store.
    var waitsOnNetwork: Bool { get }
    /// Done with the store (a server stopping): the embedded store closes its file, leaving no
    /// write-ahead log for the next open to read through. Nothing is called on it afterwards.
    func close()
}

extension FeedStore {
    public var waitsOnNetwork: Bool { false }
    public func close() {}
}

extension GenerationStore {
    public func memoryCandidates(generation: Int64, user: String) -> PackedCandidates?? { nil }

    /// A user's list with ids resolved (entries beyond the item table are dropped).
    public func candidates(generation: Int64, user: String) throws -> [Candidate]? {
        guard let packed = try packedCandidates(generation: generation, user: user) else { return nil }
        return packed.entries.compactMap { e in
            Int(e.item) < packed.itemTable.count ? Candidate(video: packed.itemTable[Int(e.item)], score: e.score) : nil
        }
    }
}

extension ConsumerCursorStore {
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
