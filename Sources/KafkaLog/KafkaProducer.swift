import Foundation
import CRdKafka
import EventLog

/// Appends events to a Kafka topic: an idempotent producer with `acks=all`, each event keyed by
/// its user (so one user's events stay in one partition, in order). `append` returns only when
/// the broker acknowledged every event of the call, with their ids (`KafkaEventID`); a delivery
/// error fails the call, and a fatal producer error (the idempotence guarantee broken) stops the
/// producer for good: every later append fails, nothing is acknowledged silently.
public final class KafkaProducer: EventAppender, @unchecked Sendable {
    public let location: KafkaLocation
    private let rk: OpaquePointer
    private let topic: OpaquePointer
    private let shared: Shared
    private var poller: Thread?
    private let lock = NSLock()
    private var closed = false

    /// What the librdkafka callbacks (on the poll thread) reach.
    final class Shared: @unchecked Sendable {
        let lock = NSLock()
        var failure: String?
        var appended: UInt64 = 0
        var stopped = false
    }

    /// One append call waiting for its events' delivery reports.
    final class Pending: @unchecked Sendable {
        let lock = NSLock()
        var ids: [UInt64]
        var remaining: Int
        var error: String?
        let done: (Result<[UInt64], Error>) -> Void
        init(count: Int, done: @escaping (Result<[UInt64], Error>) -> Void) {
            ids = [UInt64](repeating: 0, count: count)
            remaining = count
            self.done = done
        }
        func deliver(_ i: Int, id: UInt64?, error e: String?) {
            lock.lock()
            if let id { ids[i] = id }
            if let e, error == nil { error = e }
            remaining -= 1
            let finished = remaining == 0
            lock.unlock()
            guard finished else { return }
            if let error { done(.failure(KafkaError.delivery(error))) } else { done(.success(ids)) }
        }
    }

    /// One message's place in its append call (the message's opaque pointer).
    final class Slot {
        let pending: Pending
        let index: Int
        init(_ p: Pending, _ i: Int) { pending = p; index = i }
    }

    /// `lingerMs`: how long the producer waits to fill a batch (group commit, as the file log's fsync).
    public init(location: KafkaLocation, lingerMs: Int = 2) throws {
        self.location = location
        shared = Shared()
        let conf = try makeConf(location, [
            ("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "\(lingerMs)"),
            ("message.timeout.ms", "10000"), ("partitioner", "murmur2_random"),
        ])
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(shared).toOpaque())
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
            guard let m = message?.pointee, let opaque = m._private else { return }
            let slot = Unmanaged<Slot>.fromOpaque(opaque).takeRetainedValue()
            if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
                slot.pending.deliver(slot.index, id: KafkaEventID.make(partition: m.partition, offset: m.offset), error: nil)
            } else {
                slot.pending.deliver(slot.index, id: nil, error: errorText(m.err))
            }
        }
        rd_kafka_conf_set_error_cb(conf) { rk, err, reason, opaque in
            guard let opaque else { return }
            let shared = Unmanaged<Shared>.fromOpaque(opaque).takeUnretainedValue()
            guard err == RD_KAFKA_RESP_ERR__FATAL.rawValue, let rk else { return }
            var buf = [CChar](repeating: 0, count: 512)
            let orig = rd_kafka_fatal_error(rk, &buf, buf.count)
            shared.lock.lock()
            if shared.failure == nil {
                shared.failure = "\(errorText(orig)): \(String(cString: buf))\(reason.map { " (\(String(cString: $0)))" } ?? "")"
            }
            shared.lock.unlock()
        }
        rk = try newClient(RD_KAFKA_PRODUCER, conf)
        topic = rd_kafka_topic_new(rk, location.topic, nil)
        let (handle, shared) = (UncheckedBox(rk), self.shared)
        let t = Thread {
            while true {
                shared.lock.lock(); let stop = shared.stopped; shared.lock.unlock()
                if stop { break }
                rd_kafka_poll(handle.value, 50)
            }
        }
        t.name = "foryou.kafka.producer"
        t.start()
        poller = t
    }

    public var writerFailure: String? {
        shared.lock.lock(); defer { shared.lock.unlock() }
        return shared.failure
    }

    /// Events this process appended.
    public var appended: UInt64 {
        shared.lock.lock(); defer { shared.lock.unlock() }
        return shared.appended
    }

    public func append(_ drafts: [EventDraft]) async throws -> [UInt64] {
        guard !drafts.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { c in
            do { try enqueue(drafts) { c.resume(with: $0) } } catch { c.resume(throwing: error) }
        }
    }

    /// Blocking append (tools and tests).
    public func appendSync(_ drafts: [EventDraft]) throws -> [UInt64] {
        guard !drafts.isEmpty else { return [] }
        let sem = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var out: Result<[UInt64], Error> = .success([])
        try enqueue(drafts) { out = $0; sem.signal() }
        sem.wait()
        return try out.get()
    }

    private func enqueue(_ drafts: [EventDraft], done: @escaping (Result<[UInt64], Error>) -> Void) throws {
        if let f = writerFailure { throw KafkaError.fatal(f) }
        let shared = self.shared
        let pending = Pending(count: drafts.count) { r in
            if case .success(let ids) = r { shared.lock.lock(); shared.appended += UInt64(ids.count); shared.lock.unlock() }
            done(r)
        }
        lock.lock(); defer { lock.unlock() }
        guard !closed else { throw KafkaError.client("producer closed") }
        for (i, d) in drafts.enumerated() {
            var payload = d.payload
            var key = Array(d.user.utf8)
            let slot = Unmanaged.passRetained(Slot(pending, i)).toOpaque()
            while true {
                let r = payload.withUnsafeMutableBytes { p in
                    key.withUnsafeMutableBytes { k in
                        rd_kafka_produce(topic, foryou_rdkafka_partition_ua, foryou_rdkafka_msg_f_copy, p.baseAddress, p.count,
                                         k.baseAddress, k.count, slot)
                    }
                }
                if r == 0 { break }
                let e = rd_kafka_last_error()
                if e == RD_KAFKA_RESP_ERR__QUEUE_FULL { usleep(1_000); continue }  // the poll thread drains it
                // Not queued: its report never comes, so report it here (the earlier ones still will).
                Unmanaged<Slot>.fromOpaque(slot).release()
                pending.deliver(i, id: nil, error: errorText(e))
                break
            }
        }
    }

    /// Waits for outstanding deliveries (up to `timeoutMs`), then releases the client.
    public func close() {
        lock.lock()
        if closed { lock.unlock(); return }
        closed = true
        lock.unlock()
        _ = rd_kafka_flush(rk, 10_000)
        // Whatever the broker did not acknowledge by now fails (its append throws: no 202).
        _ = rd_kafka_purge(rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        for _ in 0..<100 where rd_kafka_outq_len(rk) > 0 { usleep(10_000) }  // the poll thread reports them
        shared.lock.lock(); shared.stopped = true; shared.lock.unlock()
        while poller?.isFinished == false { usleep(1_000) }
        rd_kafka_topic_destroy(topic)
        rd_kafka_destroy(rk)
    }

    deinit { close() }
}

/// A C handle moved into a thread closure.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}
