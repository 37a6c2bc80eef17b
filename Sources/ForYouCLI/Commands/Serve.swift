import ArgumentParser
import ForYou
import Foundation

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the feed API (GET /api/v1/foryou, POST /api/v1/events, POST /api/v1/videos) on the embedded store.",
        discussion: """
        Everything lives under --data-dir: store.sqlite (catalog + candidate generations), events/ \
        (the durable event log), secret.key (signs tokens and cursors). Get a token with \
        `foryou token --user ID`. SIGTERM or Ctrl-C shuts down gracefully.

        --store postgres://... serves the catalog and candidate generations from PostgreSQL \
        instead (loaded with `score-all --store`); media and the signing key stay under --data-dir.

        --events kafka://HOST:PORT/TOPIC appends events to a Kafka topic instead (idempotent \
        producer, acks=all: the 202 waits for every in-sync replica), keyed by user. Each server \
        also follows the whole topic, so several servers on one store and one topic share seen \
        filtering; give them the same --data-dir contents (secret.key signs tokens and cursors).
        """)

    @OptionGroup var data: DataDirOption
    @OptionGroup var store: StoreOption
    @OptionGroup var events: EventsOption
    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port (0 = any free port).") var port = 8080
    @Option(name: .customLong("rate"), help: "Requests per second per user before 429.") var rate: Double = 50
    @Option(name: .customLong("burst"), help: "Burst size of the per-user rate limit.") var burst: Double = 100
    @Option(name: .customLong("public-base-url"), help: "Prefix for relative stream/thumbnail URLs (a CDN).") var publicBaseURL = ""
    @Flag(name: .customLong("log-requests"), help: "One JSON line per request on stderr.") var logRequests = false
    @Option(name: .customLong("idle-timeout"), help: "Seconds before an idle connection (or one that never finishes its request head) is closed.")
    var idleTimeout = 20.0
    @Option(name: .customLong("max-upload-bytes"), help: "Largest upload accepted (413 past it).") var maxUploadBytes: Int64 = 256 * 1024 * 1024
    @OptionGroup var uploadLimits: UploadLimitsOption
    @Option(name: .customLong("max-per-topic"), help: "At most this many videos of one topic in any 10 consecutive slots.")
    var maxPerTopic = 3
    @Option(name: .customLong("max-per-creator"), help: "At most this many videos of one creator in any 10 consecutive slots.")
    var maxPerCreator = 3
    @Option(name: .customLong("exploration-share"), help: "Share of a page's slots offered to fresh uploads (0-0.5).")
    var explorationShare = 0.2
    @Option(name: .customLong("list-cache"), help: "Candidate lists kept in memory (dropped when a worker replaces them; 0 = off).")
    var listCache = 50_000
    @Option(name: .customLong("snapshot-every"), help: "With a file log: snapshot the replayed state (seen sets, trending, idempotency keys) into DATA/snapshots every this many events, so a restart replays only the log's tail (0 = off: neither written nor read).")
    var snapshotEvery: UInt64 = 1_000_000
    @Option(name: .customLong("seen-per-user"), help: "Each user's seen set (videos a page leaves out) keeps this many, the ones most recently touched for the first time.")
    var seenPerUser = 2_000

    func validate() throws {
        guard maxPerTopic >= 1, maxPerCreator >= 1 else { throw ValidationError("--max-per-topic and --max-per-creator must be >= 1") }
        guard explorationShare >= 0, explorationShare <= 0.5 else { throw ValidationError("--exploration-share must be in [0, 0.5]") }
        guard rate > 0, burst >= 1 else { throw ValidationError("--rate must be > 0 and --burst >= 1") }
        guard seenPerUser >= 1 else { throw ValidationError("--seen-per-user must be >= 1") }
        guard listCache >= 0 else { throw ValidationError("--list-cache must be >= 0") }
        guard idleTimeout > 0, idleTimeout <= 3600 else { throw ValidationError("--idle-timeout must be in (0, 3600] seconds") }
        guard maxUploadBytes > 0 else { throw ValidationError("--max-upload-bytes must be positive") }
    }

    func run() throws {
        var c = FeedServerConfig()
        c.dataDir = data.dataDir
        c.host = host
        c.port = port
        c.ratePerSecond = rate
        c.rateBurst = burst
        c.publicBaseURL = publicBaseURL
        c.logRequests = logRequests
        c.idleTimeoutSeconds = idleTimeout
        c.maxUploadBytes = maxUploadBytes
        c.maxUploadSeconds = uploadLimits.maxUploadSeconds
        c.uploadLimits = uploadLimits.limits
        c.maxPerTopic = maxPerTopic
        c.maxPerCreator = maxPerCreator
        c.explorationShare = explorationShare
        c.snapshotEvery = snapshotEvery
        c.seenPerUser = seenPerUser
        switch try events.location(dataDir: data.dataDir) {
        case .file(let dir): c.eventsDir = dir
        case .kafka(let k): c.kafka = k
        }
        let service: FeedService
        let candidates = try store.open(dataDir: data.dataDir)
        // Lists stay in memory between requests, dropped when a worker replaces them.
        do {
            if listCache > 0 { try candidates.enableListCache(capacity: listCache, ttl: 300) }
        } catch let e as PostgresStoreError { throw CLIError("serve: \(e)") }
        do { service = try FeedService(config: c, store: candidates) } catch let e as EventLogError {
            throw CLIError("\(e)")
        } catch let e as KafkaError { throw CLIError("serve: \(e)") }
        for n in service.startupNotes { Console.err("serve: \(n)") }
        service.startBackgroundRefresh()
        let boundHost = c.host
        try runBlocking {
            let app = buildApplication(service) { port in
                Console.err("serve: listening on http://\(boundHost):\(port)")
            }
            try await app.runService()
        }
        service.stop()
        if let s = candidates.listCacheStats { Console.err("serve: list cache: \(s.hits) hits, \(s.misses) misses, \(s.lists) lists held") }
        candidates.close()
    }
}
