import Foundation
import EventLog
import Interactions
import Training
import CandidateStore
import Artifacts

/// Training data from events: the log (file or Kafka) mapped to interactions with the catalog's
/// durations. `foryou train --events`, `rescore` and the worker's retrains read it the same way.
public struct EventTrainingData {
    public var interactions: Interactions
    /// Events read (the log's end when reading started).
    public var events: UInt64
    /// The catalog at read time.
    public var videos: [Video]
    public var seconds: Double
    /// Events covered by the interaction table the read started from (0: the whole log was read).
    public var fromTable: UInt64 = 0

    /// Reads `source` to its end; throws `TrainingError.noData` when nothing positive is there.
    /// With `tables` (a file log's `InteractionTable` folder): starts from the newest table built
    /// with `mapping`, reads only the log after it, and writes the table at the log's end.
    public static func read(_ source: EventSource, store: any FeedStore, mapping: EventMapping, tables: String? = nil,
                            progress: (String) -> Void = { _ in }) throws -> EventTrainingData {
        let t0 = Date()
        let videos = try store.videos()
        let durations = Dictionary(videos.map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        var history: EventHistory
        let events: UInt64
        var from: UInt64 = 0
        if let tables, let log = source as? EventLog {
            let end = log.endId
            (history, _, from) = try InteractionTable.history(log: log, directory: tables, mapping: mapping, durations: durations,
                                                              through: end, progress: progress)
            events = end
            let read = Date().timeIntervalSince(t0)
            let what = from > 0 ? "the interaction table covers \(from) events; it and the \(end - from) after it" : "\(end) events"
            progress(String(format: "events: %@ read in %.1f s", what, read))
            if end > from {
                // The new table is written on another thread while the interactions are made
                // (both only read the history); done before this returns.
                let h = history
                let fingerprint = log.fingerprint(of: end - 1)
                let done = DispatchGroup()
                final class Outcome: @unchecked Sendable { var note = "" }
                let outcome = Outcome()
                done.enter()
                Thread.detachNewThread {
                    defer { done.leave() }
                    let t = Date()
                    do {
                        guard let last = fingerprint else { throw EventLogError.io("event \(end - 1) cannot be read back") }
                        try InteractionTable.write(h, position: end, logFingerprint: last, durations: durations, to: tables)
                        outcome.note = String(format: "events: table at %llu written in %.1f s", end, Date().timeIntervalSince(t))
                    } catch {
                        outcome.note = "interaction table not written: \(error)"
                    }
                }
                defer { done.wait(); progress(outcome.note) }
                return try finish(history, events: end, from: from)
            }
        } else {
            history = EventHistory(mapping: mapping)
            var h = history
            events = try source.forEachEvent { e in h.add(e, duration: durations[e.video] ?? 0) }
            history = h
        }
        return try finish(history, events: events, from: from)

        func finish(_ history: EventHistory, events: UInt64, from: UInt64) throws -> EventTrainingData {
            let t1 = Date()
            let data = history.interactions()
            progress(String(format: "events: %d pairs -> %d interactions in %.1f s", history.pairCount, data.count, Date().timeIntervalSince(t1)))
            guard data.weights.contains(where: { $0 > 0 }) else {
                throw TrainingError.noData("\(source.sourceName) holds no positive interactions (\(events) events); nothing to train on")
            }
            return EventTrainingData(interactions: data, events: events, videos: videos, seconds: Date().timeIntervalSince(t0),
                                     fromTable: from)
        }
    }

    /// The event mapping the live generation's model was trained with (recorded in its run), nil
    /// when no generation is live or its model directory is not readable.
    public static func liveMapping(store: any FeedStore) -> EventMapping? {
        guard let g = try? store.liveGeneration(), let source = try? store.source(generation: g.id), let dir = source.modelDir,
              let run = try? ModelStore.readRun(dir) else { return nil }
        return EventMapping(params: run.params)
    }

    /// Reads a data directory's file log and catalog.
    public static func read(dataDir: String, mapping: EventMapping) throws -> EventTrainingData {
        let dir = DataDirectory(dataDir)
        let log = try EventLog(directory: dir.events)
        defer { log.close() }
        return try read(log, store: try dir.openStore(), mapping: mapping, tables: dir.interactions)
    }
}
