import ArgumentParser
import ForYou
import Foundation

struct DataDirOption: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Data directory of the embedded store and event log.")
    var dataDir = "var"

    var directory: DataDirectory { DataDirectory(dataDir) }
}

/// `--store`: which candidate store a command works on.
struct StoreOption: ParsableArguments {
    @Option(help: ArgumentHelp("Candidate store: sqlite:PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (default: the data directory's SQLite file).",
                               valueName: "store"))
    var store: String?

    func open(dataDir: String) throws -> any FeedStore { try StoreOption.open(store, dataDir: dataDir) }

    static func open(_ spec: String?, dataDir: String) throws -> any FeedStore {
        guard let spec else { return try DataDirectory(dataDir).openStore() }
        do {
            if spec.hasPrefix("sqlite:") { return try SQLiteFeedStore(path: String(spec.dropFirst("sqlite:".count))) }
            if spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://") { return try PostgresFeedStore(url: spec) }
        } catch let e as PostgresStoreError { throw CLIError("\(e)") }
        throw CLIError("unknown store '\(spec)': give sqlite:PATH or postgres://USER@HOST:PORT/DATABASE")
    }

    /// A store URL fit for logs: the password replaced.
    static func redacted(_ spec: String) -> String { spec.hasPrefix("postgres") ? PostgresFeedStore.redact(spec) : spec }
}

/// `--events file:DIR|kafka://BROKERS/TOPIC`: which event log a command appends to or reads.
struct EventsOption: ParsableArguments {
    @Option(name: .customLong("events"),
            help: ArgumentHelp("Event log: file:DIR or kafka://HOST:PORT[,HOST:PORT...]/TOPIC (default: the data directory's events/ folder; librdkafka settings from the file FORYOU_KAFKA_CONFIG names).",
                               valueName: "log"))
    var spec: String?

    enum Location { case file(String), kafka(KafkaLocation) }

    func location(dataDir: String) throws -> Location {
        guard let spec else { return .file(DataDirectory(dataDir).events) }
        if spec.hasPrefix("file:") {
            let dir = String(spec.dropFirst("file:".count))
            guard !dir.isEmpty else { throw CLIError("--events file:DIR needs a folder") }
            return .file(dir)
        }
        if spec.hasPrefix("kafka://") {
            do { return .kafka(try KafkaLocation(url: spec)) } catch let e as KafkaError { throw CLIError("--events: \(e)") }
        }
        throw CLIError("--events '\(spec)': give file:DIR or kafka://HOST:PORT/TOPIC")
    }
}

struct Generations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage candidate generations: list, activate, rollback, prune.",
        subcommands: [List.self, Activate.self, Rollback.self, Prune.self])

    static func describe(_ g: GenerationInfo) -> String {
        let created = Date(timeIntervalSince1970: Double(g.createdAt) / 1000)
        let shards = g.shards.map { n in g.complete ? "\t\(n) shards" : "\tincomplete: \(g.shardsDone ?? 0) of \(n) shards written" } ?? ""
        return "\(g.live ? "*" : " ") \(g.id)\t\(g.model)\t\(g.runId)\t\(g.users) users\ttop \(g.topN)\t\(ISO8601DateFormatter().string(from: created))"
            + shards
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List generations (* = live).")
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            for g in try store.open(dataDir: data.dataDir).generations() { print(Generations.describe(g)) }
        }
    }

    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a generation live (atomic switch).")
        @Argument(help: "Generation id.") var id: Int64
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            do { try store.open(dataDir: data.dataDir).activate(id) } catch let e as StoreError { throw CLIError("\(e)") }
            print("generation \(id) is live")
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put the previously live generation back.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            do { print("generation \(try store.open(dataDir: data.dataDir).rollback().id) is live again") } catch let e as StoreError {
                throw CLIError("\(e)")
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete all but the newest K generations (never the live one).")
        @Option(help: "Generations to keep.") var keep = 3
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func validate() throws { guard keep >= 1 else { throw ValidationError("--keep must be >= 1") } }
        func run() throws {
            let removed = try store.open(dataDir: data.dataDir).prune(keep: keep)
            print(removed.isEmpty ? "nothing to prune" : "removed generations \(removed.map(String.init).joined(separator: ", "))")
        }
    }
}

struct Videos: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The video catalog.", subcommands: [Import.self, List.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a catalog file: JSON lines with id, caption, tags, topic, creator, duration_ms, status, stream_url, thumbnail_url.")
        @Argument(help: "JSONL file.") var file: String
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read \(file)") }
            var videos: [Video] = []
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
                do { videos.append(try CatalogLine.decode(String(line), now: now)) } catch {
                    throw CLIError("\(file):\(n + 1): \(error)")
                }
            }
            try store.open(dataDir: data.dataDir).upsertVideos(videos)
            print("imported \(videos.count) videos into \(store.store.map(StoreOption.redacted) ?? data.directory.store)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the catalog as JSON lines.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            for v in try store.open(dataDir: data.dataDir).videos() { print(CatalogLine.encode(v)) }
        }
    }
}

/// The catalog's JSON-lines form.
enum CatalogLine {
    struct Line: Codable {
        var id: String
        var caption: String?
        var tags: [String]?
        var topic: String?
        var creator: String?
        var duration_ms: Int?
        var status: String?
        var stream_url: String?
        var thumbnail_url: String?
        var created_at: Int64?
    }

    struct Problem: Error, CustomStringConvertible { let description: String }

    static func decode(_ s: String, now: Int64) throws -> Video {
        let l: Line
        do { l = try JSONDecoder().decode(Line.self, from: Data(s.utf8)) } catch { throw Problem(description: "not a catalog line (\(error))") }
        guard !l.id.isEmpty else { throw Problem(description: "empty id") }
        guard let status = VideoStatus(rawValue: l.status ?? "ready") else { throw Problem(description: "unknown status '\(l.status!)'") }
        if let d = l.duration_ms, d < 0 { throw Problem(description: "negative duration_ms") }
        return Video(id: l.id, caption: l.caption ?? "", tags: l.tags ?? [], topic: l.topic ?? "", creator: l.creator ?? "",
                     durationMs: l.duration_ms ?? 0, status: status, streamURL: l.stream_url, thumbnailURL: l.thumbnail_url,
                     createdAt: l.created_at ?? now)
    }

    static func encode(_ v: Video) -> String {
        let l = Line(id: v.id, caption: v.caption, tags: v.tags, topic: v.topic, creator: v.creator, duration_ms: v.durationMs,
                     status: v.status.rawValue, stream_url: v.streamURL, thumbnail_url: v.thumbnailURL, created_at: v.createdAt)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! enc.encode(l), as: UTF8.self)
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inspect the event log, or load interactions into it.",
                                                    subcommands: [Tail.self, Stats.self, Import.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Append an interaction file to the event log: one event per row (e.g. to rescore a dataset's history).",
            discussion: """
            Each row becomes one event of --type for (user, item), stamped with the row's time column \
            when the format has one (seconds) and otherwise with consecutive milliseconds ending now. \
            The events are fsynced in batches; an interrupted import leaves a prefix of the file.
            """)
        @Argument(help: "Interaction file.") var file: String
        @OptionGroup var input: FormatOptions
        @Option(help: "Event type of every row.") var type = "complete"
        @OptionGroup var data: DataDirOption
        @OptionGroup var events: EventsOption
        @OptionGroup var common: CommonOptions

        func validate() throws {
            guard EventType(name: type) != nil else { throw ValidationError("--type must be view, complete, like, share, skip or hide") }
        }

        func run() throws {
            let t0 = Date()
            let (d, _) = try input.read(file, verbose: common.verbose)
            let durations = Dictionary(try data.directory.openStore().videos().map { ($0.id, $0.durationMs) },
                                       uniquingKeysWith: { $1 })
            let kind = EventType(name: type)!
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            // The file log fsyncs each batch; Kafka acknowledges each batch from every in-sync replica.
            let append: ([EventDraft]) throws -> Void
            let close: () -> Void
            var count = 0
            var where_ = ""
            switch try events.location(dataDir: data.dataDir) {
            case .file(let dir):
                let log = try EventLog(directory: dir, access: .append)
                if let m = log.recovery.message { Console.err(m) }
                let first = log.endId
                append = { _ = try log.appendSync($0) }
                close = { where_ = " (ids \(first)-\(Int64(log.endId) - 1))"; log.close() }
            case .kafka(let k):
                let producer = try KafkaProducer(location: k, lingerMs: 5)
                append = { _ = try producer.appendSync($0) }
                close = { where_ = " to \(k)"; producer.close() }
            }
            defer { close() }
            var batch: [EventDraft] = []
            batch.reserveCapacity(50_000)
            for r in 0..<d.count {
                if CLIContext.cancel.isCancelled { break }
                let video = d.items.raw[Int(d.itemIndex[r])]
                let time = d.timestamps.map { $0[r] * 1000 } ?? (now - Int64(d.count - r))
                batch.append(EventDraft(user: d.users.raw[Int(d.userIndex[r])], video: video, type: kind,
                                        watchMs: UInt32(clamping: durations[video] ?? 0), timeMs: time))
                if batch.count == 50_000 {
                    try append(batch)
                    count += batch.count
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty { try append(batch); count += batch.count }
            close()
            Console.err(String(format: "events import: %d events appended%@ in %.1fs%@", count, where_, Date().timeIntervalSince(t0),
                               CLIContext.cancel.isCancelled ? "; interrupted" : ""))
        }
    }

    struct Tail: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print events as JSON lines (the last N, or from an id).")
        @Option(name: .shortAndLong, help: "How many.") var n = 20
        @Option(help: "Start at this event id instead of the last N.") var from: UInt64?
        @OptionGroup var data: DataDirOption
        @OptionGroup var events: EventsOption
        func run() throws {
            func show(_ e: Event) throws {
                var obj: [String: Any] = ["id": e.id, "user": e.user, "video_id": e.video, "type": e.type.name,
                                          "watch_ms": e.watchMs, "time_ms": e.timeMs]
                if !e.draft.idempotencyKey.isEmpty { obj["idempotency_key"] = e.draft.idempotencyKey }
                if !e.draft.extra.isEmpty { obj["extra"] = e.draft.extra }
                print(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
            }
            switch try events.location(dataDir: data.dataDir) {
            case .file(let dir):
                let log = try EventLog(directory: dir)
                if let m = log.recovery.message { Console.err(m) }
                let start = from ?? (log.endId > UInt64(n) ? log.endId - UInt64(n) : 0)
                try log.forEach(from: start, limit: n, show)
            case .kafka(let k):
                // Ids are partition << 40 | offset: --from ID reads that partition from there; otherwise
                // the last N of the whole topic by server time.
                if let from {
                    let reader = try KafkaReader(location: k)
                    let p = KafkaEventID.partition(from), start = KafkaEventID.offset(from)
                    try reader.assign([p: start])
                    var shown = 0
                    while shown < n && !reader.caughtUp {
                        for e in try reader.poll(max: n - shown, timeoutMs: 1_000) { try show(e); shown += 1 }
                    }
                } else {
                    var last: [Event] = []
                    try KafkaTopicSource(location: k).forEachEvent { e in
                        last.append(e)
                        if last.count > 4 * n { last = Array(last.sorted { ($0.timeMs, $0.id) < ($1.timeMs, $1.id) }.suffix(n)) }
                    }
                    for e in last.sorted(by: { ($0.timeMs, $0.id) < ($1.timeMs, $1.id) }).suffix(n) { try show(e) }
                }
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Counts by type, users, videos, segments and size.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var events: EventsOption
        func run() throws {
            var byType: [String: Int] = [:]
            var users = Set<String>(), videos = Set<String>()
            var first: Int64?, last: Int64?
            func count(_ e: Event) {
                byType[e.type.name, default: 0] += 1
                users.insert(e.user); videos.insert(e.video)
                first = min(first ?? e.timeMs, e.timeMs); last = max(last ?? e.timeMs, e.timeMs)
            }
            switch try events.location(dataDir: data.dataDir) {
            case .file(let dir):
                let log = try EventLog(directory: dir)
                if let m = log.recovery.message { Console.err(m) }
                try log.forEach(from: 0, count)
                let s = log.stats
                print("events \(s.events) in \(s.segments) segment(s), \(s.bytes) bytes; \(users.count) users, \(videos.count) videos")
            case .kafka(let k):
                let reader = try KafkaReader(location: k)
                reader.stopAtEnd = true
                try reader.assignAll()
                var n = 0
                while !reader.reachedEnds {
                    for e in try reader.poll(max: 10_000, timeoutMs: 1_000) { count(e); n += 1 }
                }
                let ends = reader.ends().sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
                print("events \(n) in \(reader.partitionCount) partition(s) of \(k) (ends \(ends)); \(users.count) users, \(videos.count) videos")
            }
            for t in EventType.allCases { print("  \(t.name)\t\(byType[t.name] ?? 0)") }
            if let first, let last {
                let f = ISO8601DateFormatter()
                print("  from \(f.string(from: Date(timeIntervalSince1970: Double(first) / 1000))) to "
                      + f.string(from: Date(timeIntervalSince1970: Double(last) / 1000)))
            }
        }
    }
}
