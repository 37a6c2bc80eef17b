import ArgumentParser
import ForYou
import Foundation

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Inspect the event log, or load interactions into it.",
                                                    subcommands: [Tail.self, Stats.self, Import.self, Compact.self, Prune.self])

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
            count = try EventImport.append(d, type: kind, durations: durations, now: now,
                                           cancelled: { CLIContext.cancel.isCancelled }, append: append)
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
                let start = from ?? max(log.firstId, log.endId > UInt64(n) ? log.endId - UInt64(n) : 0)
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
            var summary = EventSummary()
            func count(_ e: Event) { summary.add(e) }
            switch try events.location(dataDir: data.dataDir) {
            case .file(let dir):
                let log = try EventLog(directory: dir)
                if let m = log.recovery.message { Console.err(m) }
                try log.forEach(from: log.firstId, count)
                let s = log.stats
                print("events \(s.events) in \(s.segments) segment(s), \(s.bytes) bytes; \(summary.users.count) users, \(summary.videos.count) videos")
            case .kafka(let k):
                let reader = try KafkaReader(location: k)
                reader.stopAtEnd = true
                try reader.assignAll()
                var n = 0
                while !reader.reachedEnds {
                    for e in try reader.poll(max: 10_000, timeoutMs: 1_000) { count(e); n += 1 }
                }
                let ends = reader.ends().sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
                print("events \(n) in \(reader.partitionCount) partition(s) of \(k) (ends \(ends)); \(summary.users.count) users, \(summary.videos.count) videos")
            }
            for t in EventType.allCases { print("  \(t.name)\t\(summary.byType[t] ?? 0)") }
            if let first = summary.firstTimeMs, let last = summary.lastTimeMs {
                print("  from \(UTCStamp.iso8601(Date(timeIntervalSince1970: Double(first) / 1000))) to "
                      + UTCStamp.iso8601(Date(timeIntervalSince1970: Double(last) / 1000)))
            }
        }
    }
}
