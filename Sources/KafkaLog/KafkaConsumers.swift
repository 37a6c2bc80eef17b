import Foundation
import CRdKafka
import EventLog

/// Decodes one consumed message into an event whose id is its `KafkaEventID`.
func event(_ m: rd_kafka_message_t) throws -> Event {
    guard let p = m.payload, let d = EventDraft.decode(payload: UnsafeRawBufferPointer(start: p, count: m.len)) else {
        throw KafkaError.decode("partition \(m.partition) offset \(m.offset) is not a foryou event record")
    }
    return Event(id: KafkaEventID.make(partition: m.partition, offset: m.offset), draft: d)
}

/// Consumer-side errors librdkafka reports and then recovers from by itself (a broker down or
/// unreachable, a leader moving): reading goes on; librdkafka logs them to stderr. Anything else
/// (an unknown topic, lost offsets, a fatal error) stops the reader.
func isTransient(_ e: rd_kafka_resp_err_t) -> Bool {
    [RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__RESOLVE, RD_KAFKA_RESP_ERR__TIMED_OUT,
     RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
     RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
     RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
     RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED].contains(e)
}

private func consumerSettings(group: String) -> [(String, String)] {
    // A position the broker no longer holds (retention deleted it) is an error, never a silent jump.
    [("group.id", group), ("auto.offset.reset", "error"), ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
     ("enable.partition.eof", "true"), ("isolation.level", "read_committed"), ("session.timeout.ms", "6000"),
     ("heartbeat.interval.ms", "1000")]
}

/// Reads chosen partitions of the topic from chosen offsets, outside any consumer group (the
/// feed server follows every partition this way; the ranking worker rebuilds histories with it).
public final class KafkaReader {
    public let location: KafkaLocation
    private let rk: OpaquePointer
    /// Partitions assigned, and whether each has reached the end of what the broker holds.
    private var atEnd: [Int32: Bool] = [:]
    /// Partitions that reached their end at least once since `assign`.
    private var ended: Set<Int32> = []
    /// Read each partition only up to where it ended the first time (a snapshot of the topic as
    /// of the read): later records of an ended partition are dropped.
    public var stopAtEnd = false
    public private(set) var partitionCount: Int32

    public init(location: KafkaLocation) throws {
        self.location = location
        let conf = try makeConf(location, consumerSettings(group: "foryou-reader-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"))
        rk = try newClient(RD_KAFKA_CONSUMER, conf)
        rd_kafka_poll_set_consumer(rk)
        partitionCount = 0
        do { partitionCount = try KafkaLog.partitionCount(rk, topic: location.topic) } catch {
            // Every stored property is set, so deinit runs after this throw: release the client
            // here once and mark it closed (deinit's close would otherwise destroy it again).
            closed = true
            rd_kafka_destroy(rk)
            throw error
        }
    }

    private var closed = false

    deinit { close() }

    /// Leaves the broker and releases the client (also at deinit); the reader is unusable after.
    public func close() {
        guard !closed else { return }
        closed = true
        rd_kafka_consumer_close(rk)
        rd_kafka_destroy(rk)
    }

    /// Reads `partitions` (partition -> first offset) from now on, replacing any earlier choice.
    public func assign(_ partitions: [Int32: Int64]) throws {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (p, o) in partitions.sorted(by: { $0.key < $1.key }) {
            rd_kafka_topic_partition_list_add(list, location.topic, p).pointee.offset = o
        }
        let r = rd_kafka_assign(rk, list)
        guard r == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.client("assign: \(errorText(r))") }
        atEnd = Dictionary(uniqueKeysWithValues: partitions.keys.map { ($0, false) })
        ended = []
    }

    /// Every partition from its first record, or from the offset `from` gives it.
    public func assignAll(from: [Int32: Int64] = [:]) throws {
        try assign(Dictionary(uniqueKeysWithValues: (0..<partitionCount).map { p in
            (p, from[p].flatMap { $0 > 0 ? $0 : nil } ?? foryou_rdkafka_offset_beginning)
        }))
    }

    /// True once every assigned partition reached the end of what the broker held (and nothing
    /// arrived since).
    public var caughtUp: Bool { atEnd.values.allSatisfy { $0 } }

    /// True once every assigned partition reached its end at least once (records appended
    /// since may be unread): the end of a replay even while others keep appending.
    public var reachedEnds: Bool { ended.count == atEnd.count }

    /// Up to `max` events, waiting at most `timeoutMs` for the first.
    public func poll(max: Int, timeoutMs: Int32) throws -> [Event] {
        var out: [Event] = []
        var wait = timeoutMs
        while out.count < max {
            guard let mp = rd_kafka_consumer_poll(rk, wait) else { break }
            defer { rd_kafka_message_destroy(mp) }
            wait = 0
            let m = mp.pointee
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { atEnd[m.partition] = true; ended.insert(m.partition); continue }
            if isTransient(m.err) { break }  // back to the caller; the next poll waits again
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError.client("partition \(m.partition): \(String(cString: rd_kafka_message_errstr(mp)))")
            }
            atEnd[m.partition] = false
            if stopAtEnd && ended.contains(m.partition) { continue }
            out.append(try event(m))
        }
        return out
    }

    /// Calls `body` for the events of one partition with offsets in `from..<to`.
    public func scan(partition: Int32, from: Int64, to: Int64, _ body: (Event) throws -> Void) throws {
        guard from < to else { return }
        // From 0: the partition's first retained record (retention may have removed earlier ones).
        try assign([partition: from == 0 ? foryou_rdkafka_offset_beginning : from])
        var next = from
        while next < to {
            guard let mp = rd_kafka_consumer_poll(rk, 10_000) else {
                throw KafkaError.client("partition \(partition): offsets \(next)..<\(to) did not arrive within 10 s")
            }
            defer { rd_kafka_message_destroy(mp) }
            let m = mp.pointee
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                throw KafkaError.client("partition \(partition) ends at \(m.offset), before the committed position \(to)")
            }
            if isTransient(m.err) { continue }
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError.client("partition \(partition): \(String(cString: rd_kafka_message_errstr(mp)))")
            }
            guard m.offset >= next else { continue }
            next = m.offset + 1
            if m.offset < to { try body(try event(m)) }
        }
    }

    /// Offsets past the last record the broker holds, per assigned partition (as last seen).
    public func ends() -> [Int32: Int64] {
        var out: [Int32: Int64] = [:]
        for p in atEnd.keys {
            var lo: Int64 = 0, hi: Int64 = 0
            if rd_kafka_get_watermark_offsets(rk, location.topic, p, &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR { out[p] = hi }
        }
        return out
    }
}

/// A member of a consumer group (the ranking workers): the group spreads the topic's partitions
/// over its members. Positions live where the results do: on each assignment the consumer asks
/// `start(partition)` where to begin (the store's cursor, committed with the lists), and after
/// the caller stored what a batch produced, `commit` records the same positions in the group
/// (for tools that watch consumer lag); a crash between the two repeats nothing.
public final class KafkaGroupConsumer {
    public let location: KafkaLocation
    public let group: String
    private let rk: OpaquePointer
    private let state: State

    final class State {
        var start: (Int32) throws -> Int64
        var assigned: [Int32] = []
        /// Owned partitions whose end this member has read (reset by a record, a seek or a rebalance).
        var atEnd: Set<Int32> = []
        var changed = false
        var failure: Error?
        var topic: String
        init(topic: String, start: @escaping (Int32) throws -> Int64) { self.topic = topic; self.start = start }
    }

    public init(location: KafkaLocation, group: String, start: @escaping (Int32) throws -> Int64) throws {
        self.location = location
        self.group = group
        state = State(topic: location.topic, start: start)
        // A retrain or a history rebuild may keep the member from polling for a long while.
        let conf = try makeConf(location, consumerSettings(group: group) + [("max.poll.interval.ms", "3600000")])
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(state).toOpaque())
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, parts, opaque in
            guard let rk, let parts, let opaque else { return }
            let s = Unmanaged<State>.fromOpaque(opaque).takeUnretainedValue()
            s.changed = true
            s.atEnd = []
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                var owned: [Int32] = []
                for i in 0..<Int(parts.pointee.cnt) {
                    let p = parts.pointee.elems[i].partition
                    do {
                        let o = try s.start(p)
                        parts.pointee.elems[i].offset = o == 0 ? foryou_rdkafka_offset_beginning : o
                    } catch {
                        s.failure = error
                        parts.pointee.elems[i].offset = foryou_rdkafka_offset_end
                    }
                    owned.append(p)
                }
                rd_kafka_assign(rk, parts)
                s.assigned = owned.sorted()
            } else {
                rd_kafka_assign(rk, nil)
                s.assigned = []
            }
        }
        rk = try newClient(RD_KAFKA_CONSUMER, conf)
        rd_kafka_poll_set_consumer(rk)
        let list = rd_kafka_topic_partition_list_new(1)!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        rd_kafka_topic_partition_list_add(list, location.topic, foryou_rdkafka_partition_ua)
        let r = rd_kafka_subscribe(rk, list)
        guard r == RD_KAFKA_RESP_ERR_NO_ERROR else {
            // Fully initialised: deinit closes and destroys the client (destroying it here too
            // freed it twice).
            throw KafkaError.client("subscribe to \(location.topic): \(errorText(r))")
        }
    }

    deinit {
        rd_kafka_consumer_close(rk)
        rd_kafka_destroy(rk)
    }

    /// Partitions this member owns now.
    public var assigned: [Int32] { state.assigned }

    /// Up to `max` events. `reassigned` is the new set of owned partitions when the group moved
    /// partitions during this call; the events then all come from the new assignment, read from
    /// the positions `start` gave.
    public func poll(max: Int, timeoutMs: Int32) throws -> (events: [Event], reassigned: [Int32]?) {
        var out: [Event] = []
        var reassigned: [Int32]?
        var wait = timeoutMs
        while out.count < max {
            state.changed = false
            let mp = rd_kafka_consumer_poll(rk, wait)
            if let f = state.failure { state.failure = nil; if let mp { rd_kafka_message_destroy(mp) }; throw f }
            if state.changed {
                out.removeAll()  // read under the previous assignment; the next owner reads them again
                reassigned = state.assigned
            }
            guard let mp else { break }
            defer { rd_kafka_message_destroy(mp) }
            wait = 0
            let m = mp.pointee
            if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { state.atEnd.insert(m.partition); continue }
            if isTransient(m.err) { break }
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError.client("partition \(m.partition): \(String(cString: rd_kafka_message_errstr(mp)))")
            }
            state.atEnd.remove(m.partition)
            out.append(try event(m))
        }
        return (out, reassigned)
    }

    /// Reads the owned partitions from `next` (partition -> offset) again.
    public func seek(_ next: [Int32: Int64]) throws {
        let owned = state.assigned
        guard !owned.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(owned.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in owned {
            let o = next[p] ?? 0
            rd_kafka_topic_partition_list_add(list, location.topic, p).pointee.offset = o == 0 ? foryou_rdkafka_offset_beginning : o
        }
        let r = rd_kafka_assign(rk, list)
        guard r == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.client("seek: \(errorText(r))") }
        state.atEnd = []
    }

    /// Records `next` (partition -> next offset) as the group's committed positions.
    public func commit(_ next: [Int32: Int64]) {
        guard !next.isEmpty else { return }
        let list = rd_kafka_topic_partition_list_new(Int32(next.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (p, o) in next { rd_kafka_topic_partition_list_add(list, location.topic, p).pointee.offset = o }
        _ = rd_kafka_commit(rk, list, 1)
    }

    /// The group's committed positions for `partitions` (nil where none).
    public func committed(_ partitions: [Int32]) throws -> [Int32: Int64] {
        let list = rd_kafka_topic_partition_list_new(Int32(partitions.count))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for p in partitions { rd_kafka_topic_partition_list_add(list, location.topic, p) }
        let r = rd_kafka_committed(rk, list, 10_000)
        guard r == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.client("committed: \(errorText(r))") }
        var out: [Int32: Int64] = [:]
        for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].offset >= 0 {
            out[list.pointee.elems[i].partition] = list.pointee.elems[i].offset
        }
        return out
    }

    /// True when this member owns partitions and has read to the end of each of them.
    public var caughtUp: Bool { !state.assigned.isEmpty && state.atEnd.isSuperset(of: state.assigned) }

    /// Records past each owned partition's position (from the broker's last fetch reply).
    public func lag(next: [Int32: Int64]) -> UInt64 {
        var total: UInt64 = 0
        for p in state.assigned {
            var lo: Int64 = 0, hi: Int64 = 0
            guard rd_kafka_get_watermark_offsets(rk, location.topic, p, &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
            let at = next[p] ?? lo
            if hi > at { total += UInt64(hi - at) }
        }
        return total
    }
}

/// A topic read from the start of every partition to where each ended when the read began
/// (events appended meanwhile are left for the next read): training and reports on Kafka.
public final class KafkaTopicSource: EventSource {
    public let location: KafkaLocation
    public init(location: KafkaLocation) { self.location = location }
    public var sourceName: String { location.description }
    public var logPosition: UInt64? { nil }

    @discardableResult
    public func forEachEvent(_ body: (Event) throws -> Void) throws -> UInt64 {
        let reader = try KafkaReader(location: location)
        reader.stopAtEnd = true
        try reader.assignAll()
        var n: UInt64 = 0
        while !reader.reachedEnds {
            for e in try reader.poll(max: 10_000, timeoutMs: 1_000) {
                try body(e)
                n += 1
            }
        }
        return n
    }
}
