import Foundation
import EventLog
import Interactions
import KafkaLog

/// Where the ranking worker reads events. Positions are event ids (the next one to apply), one
/// per partition: the data directory's file log is one partition; a Kafka topic has several,
/// spread over the workers of one consumer group. Each partition's position is a cursor in the
/// candidate store, committed in the transaction that stores the lists its events produced.
protocol WorkerEvents: AnyObject {
    /// Partitions that never move between workers (the file log's one), nil when a group assigns them.
    var fixedPartitions: [Int32]? { get }
    /// The store cursor holding a partition's position.
    func cursorName(_ consumer: String, _ partition: Int32) -> String
    func partition(of id: UInt64) -> Int32
    /// Where a partition starts for a worker with no cursor: `trainedThrough` is the live
    /// generation's `events_through` (the file log position its training covered).
    func initial(_ partition: Int32, trainedThrough: UInt64?) -> UInt64
    /// Where a generation's training stopped, as a position in `partition` (refolds start there).
    func trained(_ partition: Int32, through: UInt64?) -> UInt64
    /// Up to `max` new events of the owned partitions from `next`; `reassigned` when the
    /// partitions owned changed during the call (the events then come from the new set, read
    /// from the positions `position` gave).
    func poll(next: [Int32: UInt64], max: Int) throws -> (events: [Event], reassigned: [Int32]?)
    /// Reads the next poll from `next` again (events polled and not applied).
    func rewind(_ next: [Int32: UInt64]) throws
    /// Events of one partition with positions in from..<to.
    func scan(from: UInt64, to: UInt64, _ body: (Event) throws -> Void) throws
    /// Called after the store committed `next`.
    func stored(_ next: [Int32: UInt64])
    func lag(next: [Int32: UInt64]) -> UInt64
    /// True when every event the log holds for the owned partitions was polled (and `next` is past it).
    func caughtUp(next: [Int32: UInt64]) -> Bool
    /// The history of a partition below `to` from a compacted interaction table and the log after it
    /// (nil: no table for this source; read the partition from its start). The history may run past
    /// `to` (`position`): the events below `position` are in it already.
    func history(_ partition: Int32, to: UInt64, mapping: EventMapping, durations: [String: Int],
                 progress: (String) -> Void) throws -> (history: EventHistory, position: UInt64)?
}

extension WorkerEvents {
    func history(_ partition: Int32, to: UInt64, mapping: EventMapping, durations: [String: Int],
                 progress: (String) -> Void) throws -> (history: EventHistory, position: UInt64)? { nil }
}

/// The data directory's file log: one partition, the consumer's cursor under its own name.
/// Its start reads the newest interaction table (`tables`) and the log after it, not the whole log.
final class FileWorkerEvents: WorkerEvents {
    let log: EventLog
    let tables: String?
    init(log: EventLog, tables: String?) { self.log = log; self.tables = tables }
    deinit { log.close() }

    var fixedPartitions: [Int32]? { [0] }
    func cursorName(_ consumer: String, _ partition: Int32) -> String { consumer }
    func partition(of id: UInt64) -> Int32 { 0 }
    // A pruned log holds nothing below its first event: positions start there at the earliest.
    func initial(_ partition: Int32, trainedThrough: UInt64?) -> UInt64 { min(max(trainedThrough ?? 0, log.firstId), log.endId) }
    func trained(_ partition: Int32, through: UInt64?) -> UInt64 { max(through ?? 0, log.firstId) }

    func history(_ partition: Int32, to: UInt64, mapping: EventMapping, durations: [String: Int],
                 progress: (String) -> Void) throws -> (history: EventHistory, position: UInt64)? {
        guard let tables else { return nil }
        try log.refresh()
        let h = try InteractionTable.history(log: log, directory: tables, mapping: mapping, durations: durations, through: to,
                                             ahead: true, progress: progress)
        return (h.history, h.position)
    }

    func poll(next: [Int32: UInt64], max: Int) throws -> (events: [Event], reassigned: [Int32]?) {
        try log.refresh()  // the server appends in another process
        return (try log.read(from: next[0] ?? 0, limit: max), nil)
    }

    func rewind(_ next: [Int32: UInt64]) throws {}

    func scan(from: UInt64, to: UInt64, _ body: (Event) throws -> Void) throws {
        guard from < to else { return }
        try log.forEach(from: from, limit: Int(to - from), body)
    }

    func stored(_ next: [Int32: UInt64]) {}

    func lag(next: [Int32: UInt64]) -> UInt64 {
        try? log.refresh()
        let at = next[0] ?? 0
        return log.endId > at ? log.endId - at : 0
    }

    func caughtUp(next: [Int32: UInt64]) -> Bool { lag(next: next) == 0 }
}

/// A Kafka topic read as a member of consumer group `consumer`: each partition's cursor is
/// `<consumer>@<topic>/<partition>` in the store; the group's own committed offsets follow the
/// store's (monitoring only; the store's cursor is what a new owner starts from).
final class KafkaWorkerEvents: WorkerEvents {
    let location: KafkaLocation
    private var group: KafkaGroupConsumer!
    private var reader: KafkaReader?
    /// Filled in by the worker: a partition's stored position (or its start).
    var position: (Int32) throws -> UInt64 = { KafkaEventID.make(partition: $0, offset: 0) }

    init(location: KafkaLocation, consumer: String) throws {
        self.location = location
        group = try KafkaGroupConsumer(location: location, group: consumer) { [unowned self] p in
            KafkaEventID.offset(try self.position(p))
        }
    }

    var fixedPartitions: [Int32]? { nil }
    func cursorName(_ consumer: String, _ partition: Int32) -> String { "\(consumer)@\(location.topic)/\(partition)" }
    func partition(of id: UInt64) -> Int32 { KafkaEventID.partition(id) }
    /// The topic is read from its start: the generation's training read the file log, not this topic.
    func initial(_ partition: Int32, trainedThrough: UInt64?) -> UInt64 { KafkaEventID.make(partition: partition, offset: 0) }
    func trained(_ partition: Int32, through: UInt64?) -> UInt64 { KafkaEventID.make(partition: partition, offset: 0) }

    func poll(next: [Int32: UInt64], max: Int) throws -> (events: [Event], reassigned: [Int32]?) {
        try group.poll(max: max, timeoutMs: 200)
    }

    func rewind(_ next: [Int32: UInt64]) throws {
        try group.seek(next.mapValues { KafkaEventID.offset($0) })
    }

    func scan(from: UInt64, to: UInt64, _ body: (Event) throws -> Void) throws {
        guard from < to else { return }
        if reader == nil { reader = try KafkaReader(location: location) }
        try reader!.scan(partition: KafkaEventID.partition(from), from: KafkaEventID.offset(from), to: KafkaEventID.offset(to), body)
    }

    func stored(_ next: [Int32: UInt64]) { group.commit(next.mapValues { KafkaEventID.offset($0) }) }

    func lag(next: [Int32: UInt64]) -> UInt64 { group.lag(next: next.mapValues { KafkaEventID.offset($0) }) }
    func caughtUp(next: [Int32: UInt64]) -> Bool { group.caughtUp }
}
