import Foundation
import Media
import KafkaLog

/// Settings of `foryou serve`; defaults suit one machine. Reading flags is the CLI's job.
public struct FeedServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var dataDir = "var"
    /// Largest page a client may ask for.
    public var maxLimit = 50
    /// At most this many videos of one topic, and of one creator, per `diversityWindow` slots.
    public var maxPerTopic = 3
    public var maxPerCreator = 3
    public var diversityWindow = 10
    /// Share of a page's slots offered to fresh uploads with few events.
    public var explorationShare = 0.2
    /// A video counts as fresh for this long after upload, while it has fewer than
    /// `freshMaxEvents` events (counted from the log, so every server agrees).
    public var freshSeconds: Double = 72 * 3600
    public var freshMaxEvents = 200
    /// Half-life of an event's weight in the trending score.
    public var trendingHalfLifeSeconds: Double = 6 * 3600
    /// Per-user request rate limit: sustained rate and burst.
    public var ratePerSecond: Double = 50
    public var rateBurst: Double = 100
    /// Largest request body accepted (413 past it).
    public var maxBodyBytes = 64 * 1024
    /// How long an Idempotency-Key is remembered (retries after that append a new event).
    public var idempotencyWindowSeconds: Double = 24 * 3600
    /// Largest plausible watch time of one event.
    public var maxWatchMs = 6 * 3600 * 1000
    /// Catalog reload interval (picks up `foryou videos import` and new generations).
    public var refreshSeconds: Double = 2
    /// Each user's seen set keeps the videos they touched last, this many (`SeenSets`).
    public var seenPerUser = 2_000
    /// With a file log: a snapshot of the replayed state (`DATA/snapshots`) is written once this
    /// many events were applied since the last one, and a start loads the newest valid one and
    /// replays only the log after it (0: snapshots off, neither written nor read). Checked every
    /// refresh, and once after the start-up replay.
    public var snapshotEvery: UInt64 = 1_000_000
    /// Base of stream and thumbnail URLs when a video has a relative one (e.g. a CDN).
    public var publicBaseURL = ""
    /// Largest upload (413 past it) and longest video accepted (422 past it).
    public var maxUploadBytes: Int64 = 256 * 1024 * 1024
    public var maxUploadSeconds: Double = 180
    /// Width, height, pixels per frame and frame rate an upload may have at most (422 past them;
    /// its `maxSeconds` is `maxUploadSeconds`).
    public var uploadLimits = MediaLimits()
    /// Memory for recently served media files.
    public var mediaCacheBytes = 256 * 1024 * 1024
    /// The event log: a Kafka topic several servers share, or (nil) the file log in `eventsDir`
    /// (nil: the data directory's events/ folder).
    public var kafka: KafkaLocation?
    public var eventsDir: String?
    /// Request logs (one JSON line per request) to stderr, or to `requestLogSink` when set.
    public var logRequests = false
    public var requestLogSink: (@Sendable ([UInt8]) -> Void)?
    /// A connection with no request in progress (or one that has not sent a whole request head)
    /// is closed after this long.
    public var idleTimeoutSeconds: Double = 20

    public init() {}
}
