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
final class KafkaFollower: @unchecked Sendable {
    let reader: KafkaReader
    let state: FeedState
    var partitions: Int32 { reader.partitionCount }
    private let lock = NSLock()
    private var pending: [UInt64: Double] = [:]
    private var stopping = false
    private var thread: Thread?
    private var failureText: String?
    let pendingSeconds: Double = 120

    init(location: KafkaLocation, state: FeedState) throws {
        reader = try KafkaReader(location: location)
        self.state = state
        try reader.assignAll()
    }

    /// Applies what the topic holds (each partition to where it first ended: appends meanwhile
    /// are the follower's); returns how many events.
    func replay() throws -> Int {
        var n = 0
        while !reader.reachedEnds {
            let events = try reader.poll(max: 10_000, timeoutMs: 1_000)
            state.apply(events)
            n += events.count
        }
        return n
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
                    if !events.isEmpty { state.apply(events.filter { firstToApply($0.id) }) }
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
