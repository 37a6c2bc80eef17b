import Foundation
import EventLog
import Interactions
import Training
import CandidateStore

/// Training data from events: the log (file or Kafka) mapped to interactions with the catalog's
/// durations. `foryou train --events`, `rescore` and the worker's retrains read it the same way.
public struct EventTrainingData {
    public var interactions: Interactions
    /// Events read (the log's end when reading started).
    public var events: UInt64
    /// The catalog at read time.
    public var videos: [Video]
    public var seconds: Double

    /// Reads `source` to its end; throws `TrainingError.noData` when nothing positive is there.
    public static func read(_ source: EventSource, store: any FeedStore, mapping: EventMapping) throws -> EventTrainingData {
        let t0 = Date()
        let videos = try store.videos()
        let durations = Dictionary(videos.map { ($0.id, $0.durationMs) }, uniquingKeysWith: { $1 })
        let (data, events) = try EventMapping.counted(source, durations: durations, mapping: mapping)
        guard data.weights.contains(where: { $0 > 0 }) else {
            throw TrainingError.noData("\(source.sourceName) holds no positive interactions (\(events) events); nothing to train on")
        }
        return EventTrainingData(interactions: data, events: events, videos: videos, seconds: Date().timeIntervalSince(t0))
    }

    /// Reads a data directory's file log and catalog.
    public static func read(dataDir: String, mapping: EventMapping) throws -> EventTrainingData {
        let dir = DataDirectory(dataDir)
        let log = try EventLog(directory: dir.events)
        defer { log.close() }
        return try read(log, store: try dir.openStore(), mapping: mapping)
    }
}
