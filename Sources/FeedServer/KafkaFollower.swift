import Foundation
import EventLog
import KafkaLog

/// With a Kafka event log several servers append to the same topic; each server follows every
/// partition on its own thread and applies what it reads to its in-memory state (seen sets,
/// trending, idempotency keys), so a video watched through one server is filtered by all.
///
/// An event this server appended is applied once: at its acknowledgement (read-your-writes for
/// the person who posted it) or when the follower reads it, whichever comes first; the other
/// side finds its id in `pending` and skips it. Ids only the follower saw (other servers'
/// events) are forgotten after `pendingSeconds`.
///
/// Snapshots: the follower records, inside each apply's section, where it stands in each
/// partition (the next offset and the fingerprint of the record before it); a capture reads them
/// with the ids applied at acknowledgement above them (`snapshotPositions`), and a start from a
/// snapshot reads each partition from there and skips those ids (`replay(from:pending:)`).
final class KafkaFollower: @unchecked Sendable {
    let reader: KafkaReader
    let state: FeedState
    var partitions: Int32 { reader.partitionCount }
    private let lock = NSLock()
    private var pending: [UInt64: Double] = [:]
    /// Per partition: the next offset to apply and the fingerprint of the record before it.
    private var next: [Int32: (offset: Int64, fingerprint: UInt64)] = [:]
    private var stopping = false
    private var thread: Thread?
    private var failureText: String?
    let pendingSeconds: Double = 120

    init(location: KafkaLocation, state: FeedState) throws {
        reader = try KafkaReader(location: location)
        self.state = state
    }

    /// Applies what the topic holds (each partition to where it first ended: appends meanwhile
    /// are the follower's), each partition from `from` (a snapshot's positions; the first record
    /// kept otherwise), skipping the ids in `pending` (applied before the snapshot); returns how
    /// many events.
    func replay(from: [Int32: Int64] = [:], pending restored: [UInt64] = []) throws -> Int {
        try reader.assignAll(from: from)
        let now = Date().timeIntervalSince1970
        lock.lock()
        for id in restored { pending[id] = now }
        lock.unlock()
        var n = 0
        while !reader.reachedEnds {
            let events = try reader.poll(max: 10_000, timeoutMs: 1_000)
            state.apply(events, admit: { self.notApplied($0.id) }, then: { self.advance(events) })
            n += events.count
        }
        return n
    }

    /// During the replay: false for an id applied before the snapshot (and forgets it).
    private func notApplied(_ id: UInt64) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return pending.removeValue(forKey: id) == nil
    }

    /// Records the follower's position after `events` (called inside the apply's section).
    private func advance(_ events: [Event]) {
        var last: [Int32: Event] = [:]
        for e in events {
            let p = KafkaEventID.partition(e.id)
            if KafkaEventID.offset(e.id) >= last[p].map({ KafkaEventID.offset($0.id) }) ?? -1 { last[p] = e }
        }
        guard !last.isEmpty else { return }
        let marks = last.mapValues { (KafkaEventID.offset($0.id) + 1, $0.fingerprint) }
        lock.lock(); defer { lock.unlock() }
        for (p, m) in marks where m.0 > next[p]?.offset ?? -1 { next[p] = (m.0, m.1) }
    }

    /// Where the follower stands in every partition and the ids this server applied above that
    /// (for a snapshot; called inside the capture, which excludes every apply).
    func snapshotPositions() -> (partitions: [ServingSnapshot.Partition], pending: [UInt64]) {
        lock.lock(); defer { lock.unlock() }
        let parts = (0..<reader.partitionCount).map { p in
            ServingSnapshot.Partition(partition: p, next: next[p]?.offset ?? 0, fingerprint: next[p]?.fingerprint ?? 0)
        }
        let above = pending.keys.filter { KafkaEventID.offset($0) >= next[KafkaEventID.partition($0)]?.offset ?? 0 }.sorted()
        return (parts, above)
    }

    /// Why a snapshot does not belong to this topic (nil when it does): each partition's record
    /// before the snapshot's position must be the one it names (a recreated topic, or retention
    /// that removed it, sends the start to a full replay).
    func misfit(_ s: ServingSnapshot) -> String? {
        guard !s.partitions.isEmpty else { return "taken from a file event log" }
        guard s.partitions.count == Int(reader.partitionCount) else {
            return "taken with \(s.partitions.count) partitions; the topic has \(reader.partitionCount)"
        }
        do {
            let check = try KafkaReader(location: reader.location)
            defer { check.close() }
            for p in s.partitions where p.next > 0 {
                var found: UInt64?
                try check.scan(partition: p.partition, from: p.next - 1, to: p.next) { found = $0.fingerprint }
                guard found == p.fingerprint else { return "partition \(p.partition): its record at \(p.next - 1) differs" }
            }
        } catch {
            return "cannot check it against the topic: \(error)"
        }
        return nil
    }

    func start() {
        lock.lock(); defer { lock.unlock() }
        guard thread == nil else { return }
        let t = Thread { [self] in
            while true {
                lock.lock(); let stop = stopping; lock.unlock()
                if stop { return }
                do {
                    let events = try reader.poll(max: 5_000, timeoutMs: 100)
                    if !events.isEmpty { state.apply(events, admit: { self.firstToApply($0.id) }, then: { self.advance(events) }) }
                } catch {
                    lock.lock(); failureText = "following the event topic: \(error)"; lock.unlock()
                    return
                }
            }
        }
        t.name = "foryou.kafka.follower"
        thread = t
        t.start()
    }

    func stop() {
        lock.lock()
        if stopping { lock.unlock(); return }
        stopping = true
        let t = thread
        lock.unlock()
        while t != nil && t?.isFinished == false { usleep(1_000) }
        reader.close()  // no reconnect attempts (and their log lines) after the server stopped
    }

    var failure: String? {
        lock.lock(); defer { lock.unlock() }
        return failureText
    }

    /// True for the first of the two sides (acknowledgement, follower) to reach event `id`.
    func firstToApply(_ id: UInt64) -> Bool {
        lock.lock(); defer { lock.unlock() }
        if pending.removeValue(forKey: id) != nil { return false }
        pending[id] = Date().timeIntervalSince1970
        return true
    }

    func expire(now: Double = Date().timeIntervalSince1970) {
        lock.lock(); defer { lock.unlock() }
        let cutoff = now - pendingSeconds
        pending = pending.filter { $0.value >= cutoff }
    }
}
