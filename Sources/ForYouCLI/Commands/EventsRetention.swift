import ArgumentParser
import ForYou
import Foundation

extension Events {
    static let kafkaRetention = """
        a Kafka topic is pruned by the broker, not by foryou: set the topic's retention.ms (e.g. 2592000000 for \
        30 days) and keep retention.bytes at -1, cleanup.policy=delete; the ranking worker's cursors must stay \
        inside what the topic keeps (a worker whose position was deleted restarts from the earliest offset kept)
        """

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove old segments of the file event log once nothing needs them.",
            discussion: """
            Removes whole segments (never the one being written) holding only events older than \
            --older-than (e.g. 30d, 12h) or with ids below --before. Refuses, naming each laggard, unless \
            every ranking-worker cursor in the store, the newest serving snapshot (`serve --snapshot-every`) \
            and an interaction table (`foryou events compact` or `rescore`) cover the events it would remove. \
            Safe beside a running server and against a crash at any point. On Kafka, the topic's \
            retention.ms does this job.
            """)
        @Option(name: .customLong("older-than"), help: "Remove segments whose events are all older than this (Nd, Nh, Nm or Ns).")
        var olderThan: String?
        @Option(help: "Remove segments whose events all have ids below this.") var before: UInt64?
        @Flag(name: .customLong("dry-run"), help: "Say what would be removed; remove nothing.") var dryRun = false
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @OptionGroup var events: EventsOption

        func validate() throws {
            guard (olderThan == nil) != (before == nil) else { throw ValidationError("give one of --older-than or --before") }
            if let o = olderThan { _ = try Token.seconds(o, option: "--older-than") }
        }

        func run() throws {
            guard case .file(let dir) = try events.location(dataDir: data.dataDir) else {
                throw CLIError("events prune: \(Events.kafkaRetention)")
            }
            let log = try EventLog(directory: dir)
            defer { log.close() }
            let requested: UInt64
            var why: String
            if let before {
                requested = before
                why = "ids below \(before)"
            } else {
                requested = try Self.timeCut(log, olderThan: olderThan!)
                why = "older than \(olderThan!)"
            }
            let cut = log.pruneCut(before: requested)
            guard cut > log.firstId else {
                print("events prune: nothing to remove (\(why)): the log starts at event \(log.firstId) and its "
                      + "\(log.segmentBases.count) segment(s) start at \(log.segmentBases.suffix(3).map(String.init).joined(separator: ", "))")
                try pruneExposures(eventsDir: dir)
                return
            }
            // Everything that still reads the events below the cut.
            var laggards: [String] = []
            let store = try backend.open(dataDir: data.dataDir)
            for c in try store.consumerCursors() where !c.name.contains("@") && !c.name.contains("#") && c.nextEvent < cut {
                laggards.append("ranking worker '\(c.name)' is at event \(c.nextEvent)")
            }
            let (snapshot, snapshotNotes) = ServingSnapshots.newest(dataDir: data.dataDir, eventsDir: dir, log: log)
            snapshotNotes.forEach { Console.err($0) }
            if (snapshot ?? 0) < cut {
                laggards.append(snapshot.map { "the newest serving snapshot covers events below \($0) only" }
                                ?? "no serving snapshot of this log (serve writes them every --snapshot-every events)")
            }
            let d = data.directory
            let tablesDir = d.interactionTables(ofLog: dir)
            let (tables, tableNotes) = InteractionTable.summaries(in: tablesDir)
            tableNotes.forEach { Console.err($0) }
            // The worker and the next retrain read the table of the live model's mapping.
            let live = EventTrainingData.liveMapping(store: store)
            let mine = tables.filter { t in
                t.position <= log.endId && (t.position == 0 || log.fingerprint(of: t.position - 1) == t.logFingerprint)
                    && (live.map { t.mapping == InteractionTable.key($0) } ?? true)
            }
            if (mine.first?.position ?? 0) < cut {
                let which = live.map { "built with the live model's event mapping (\(InteractionTable.key($0)))" } ?? "of this log"
                laggards.append(mine.first.map { "the newest interaction table \(which) covers events below \($0.position) only" }
                                ?? "no interaction table \(which) in \(tablesDir)")
                laggards[laggards.count - 1] += " (write one: foryou events compact, or foryou rescore)"
            }
            guard laggards.isEmpty else {
                throw CLIError("events prune: refusing to remove the events below \(cut) (\(why)); they are still needed:\n"
                               + laggards.map { "  - " + $0 }.joined(separator: "\n"))
            }
            let doomed = log.segmentBases.filter { $0 < cut }.count
            if dryRun {
                print("events prune: would remove \(doomed) segment(s), events \(log.firstId)..<\(cut) (\(why)); nothing removed")
                try pruneExposures(eventsDir: dir)
                return
            }
            let r = try EventLog.prune(directory: dir, to: cut)
            print(String(format: "events prune: removed %d segment(s), %.1f MB, events %llu..<%llu (%@); the log starts at event %llu",
                         r.segments, Double(r.bytes) / 1e6, log.firstId, cut, why, r.first))
            try pruneExposures(eventsDir: dir)
        }

        /// Where a prune of `log` by age cuts: the start of the first segment holding an event at or
        /// after the cutoff (segments in order; a segment goes only when all of it is older).
        static func timeCut(_ log: EventLog, olderThan: String) throws -> UInt64 {
            let cutoff = Int64(Date().timeIntervalSince1970 * 1000) - 1000 * (try Token.seconds(olderThan, option: "--older-than"))
            let bases = log.segmentBases
            var upTo = log.firstId
            for (b, following) in zip(bases, bases.dropFirst()) {
                var newest = Int64.min
                try log.forEach(from: b, limit: Int(following - b)) { newest = max(newest, $0.timeMs) }
                guard newest < cutoff else { break }
                upTo = following
            }
            return upTo
        }

        /// With --older-than, the exposure log (what the server served under experiments) by the same
        /// age: nothing reads it but experiment reports, so no laggard holds it back.
        func pruneExposures(eventsDir: String) throws {
            guard let olderThan else { return }
            let d = data.directory
            let path = d.exposureLog(ofLog: eventsDir)
            guard FileManager.default.fileExists(atPath: path) else { return }  // (opening would create it)
            let log = try EventLog(directory: path)
            defer { log.close() }
            let cut = log.pruneCut(before: try Self.timeCut(log, olderThan: olderThan))
            guard cut > log.firstId else {
                print("events prune: exposures: nothing older than \(olderThan) to remove")
                return
            }
            if dryRun {
                print("events prune: exposures: would remove \(log.segmentBases.filter { $0 < cut }.count) segment(s) older than \(olderThan)")
                return
            }
            let r = try EventLog.prune(directory: path, to: cut)
            print(String(format: "events prune: exposures: removed %d segment(s), %.1f MB older than %@", r.segments, Double(r.bytes) / 1e6, olderThan))
        }
    }

    struct Compact: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the interaction table at the log's end (what train --events, rescore and the worker start from).",
            discussion: """
            Reads the newest table built with the same mapping and the log after it, and writes the table at \
            the log's end (`DATA/interactions`), so that the next reader starts there and the log before it \
            can be pruned. rescore and train --events write one too.
            """)
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @OptionGroup var mapping: MappingOptions
        @OptionGroup var events: EventsOption
        @Option(name: .customLong("through"), help: ArgumentHelp("Write the table covering the events below ID instead (a benchmark's older table; ID <= the log's end).", valueName: "ID"))
        var through: UInt64?

        func run() throws {
            guard case .file(let dir) = try events.location(dataDir: data.dataDir) else {
                throw CLIError("events compact: reads a file log; \(Events.kafkaRetention)")
            }
            let t0 = Date()
            let log = try EventLog(directory: dir)
            defer { log.close() }
            let store = try backend.open(dataDir: data.dataDir)
            let durations = Dictionary(try store.videos().map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
            let d = data.directory
            let tablesDir = d.interactionTables(ofLog: dir)
            let end = through ?? log.endId
            guard end <= log.endId, end >= log.firstId else {
                throw CLIError("events compact: --through \(end) is outside the log (events \(log.firstId) to \(log.endId))")
            }
            // The mapping asked for and, when it differs, the live model's (what the worker reads).
            var mappings = [mapping.mapping]
            if let live = EventTrainingData.liveMapping(store: store), InteractionTable.key(live) != InteractionTable.key(mapping.mapping) {
                mappings.append(live)
            }
            for m in mappings {
                let (history, _, from) = try InteractionTable.history(log: log, directory: tablesDir, mapping: m,
                                                                      durations: durations, through: end, progress: { Console.err($0) })
                guard end > from else {
                    print("events compact: the table at event \(end) (\(InteractionTable.key(m))) is current; nothing written")
                    continue
                }
                guard let last = log.fingerprint(of: end - 1) else { throw CLIError("events compact: event \(end - 1) cannot be read back") }
                try InteractionTable.write(history, position: end, logFingerprint: last, durations: durations, to: tablesDir)
                print(String(format: "events compact: table at event %llu written to %@ (%llu events read after the table at %llu; %d users; %@) in %.1f s",
                             end, tablesDir, end - from, from, history.users.count, InteractionTable.key(m), Date().timeIntervalSince(t0)))
            }
        }
    }
}
