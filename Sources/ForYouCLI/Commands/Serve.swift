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

    func validate() throws {
        guard maxPerTopic >= 1, maxPerCreator >= 1 else { throw ValidationError("--max-per-topic and --max-per-creator must be >= 1") }
        guard explorationShare >= 0, explorationShare <= 0.5 else { throw ValidationError("--exploration-share must be in [0, 0.5]") }
        guard rate > 0, burst >= 1 else { throw ValidationError("--rate must be > 0 and --burst >= 1") }
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
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Issue a bearer token for a user (HMAC-SHA256, signed with the data directory's key).")

    @Option(help: "User id the token speaks for.") var user: String?
    @Option(name: .customLong("users-from"), help: "Issue one per line of this file (user ids) instead; prints user<TAB>token lines.")
    var usersFrom: String?
    @Option(help: "Lifetime: 90s, 30m, 24h, 7d.") var ttl = "24h"
    @OptionGroup var data: DataDirOption

    /// Longest lifetime a token may have (ten years): keeps `now + ttl` far from overflow.
    static let maxSeconds: Int64 = 3650 * 86_400

    /// "90s", "30m", "24h", "7d" or plain seconds; an error names the value when it is not one,
    /// or is longer than ten years (checked arithmetic: never a wrapped product).
    static func seconds(_ s: String, option: String = "--ttl") throws -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        var digits = Substring(s), unit: Int64 = 1
        if let u = s.last, let f = units[u] { digits = s.dropLast(); unit = f }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ValidationError("\(option) '\(s)' must look like 90s, 30m, 24h or 7d")
        }
        guard let n = Int64(digits), n > 0 else {
            throw ValidationError("\(option) '\(s)' must be a positive number of at most \(maxSeconds / 86_400) days")
        }
        let (total, overflow) = n.multipliedReportingOverflow(by: unit)
        guard !overflow, total <= maxSeconds else {
            throw ValidationError("\(option) '\(s)' is longer than the limit of \(maxSeconds / 86_400) days")
        }
        return total
    }

    func validate() throws {
        _ = try Token.seconds(ttl)
        guard (user == nil) != (usersFrom == nil) else { throw ValidationError("give exactly one of --user and --users-from") }
        guard user?.isEmpty != true else { throw ValidationError("--user must not be empty") }
    }

    func run() throws {
        let signer = TokenSigner(key: try data.directory.signingKey())
        let ttlSeconds = try Token.seconds(ttl)
        if let user {
            print(signer.issue(user: user, ttlSeconds: ttlSeconds))
            return
        }
        guard let text = try? String(contentsOfFile: usersFrom!, encoding: .utf8) else {
            throw CLIError("--users-from: cannot read \(usersFrom!)")
        }
        var out = ""
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let u = line.trimmingCharacters(in: .whitespaces)
            if u.isEmpty { continue }
            guard !u.contains("\t") else { throw CLIError("\(usersFrom!):\(n + 1): a user id cannot contain a tab") }
            out += u + "\t" + signer.issue(user: u, ttlSeconds: ttlSeconds) + "\n"
        }
        print(out, terminator: "")
    }
}

/// What an upload may be at most: `serve` refuses more at upload (422) and `worker transcode`
/// probes again with the same limits, so give both the same values.
struct UploadLimitsOption: ParsableArguments {
    @Option(name: .customLong("max-upload-seconds"), help: "Longest video accepted (422 past it).") var maxUploadSeconds = 180.0
    @Option(name: .customLong("max-upload-width"), help: "Widest video accepted, in pixels (422 past it).") var maxUploadWidth = 4_096
    @Option(name: .customLong("max-upload-height"), help: "Tallest video accepted, in pixels (422 past it).") var maxUploadHeight = 4_096
    @Option(name: .customLong("max-upload-pixels"), help: "Most pixels per frame accepted (422 past it).") var maxUploadPixels = 3_840 * 2_160
    @Option(name: .customLong("max-upload-fps"), help: "Highest frame rate accepted (422 past it).") var maxUploadFps = 120.0

    func validate() throws {
        guard maxUploadSeconds > 0, maxUploadWidth > 0, maxUploadHeight > 0, maxUploadPixels > 0, maxUploadFps > 0 else {
            throw ValidationError("--max-upload-seconds, --max-upload-width, --max-upload-height, --max-upload-pixels and --max-upload-fps must be positive")
        }
    }

    var limits: MediaLimits {
        var l = MediaLimits()
        l.maxSeconds = maxUploadSeconds
        l.maxWidth = maxUploadWidth
        l.maxHeight = maxUploadHeight
        l.maxPixels = maxUploadPixels
        l.maxFrameRate = maxUploadFps
        return l
    }
}
