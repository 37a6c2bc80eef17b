import XCTest
import EventLog
import KafkaLog
import TestSupport

/// The Kafka event log against a real broker on loopback (tansu, started by `scripts/test`).
final class KafkaLogTests: XCTestCase {
    func topic() throws -> KafkaLocation {
        guard let url = try Fixtures.kafkaTopic() else { throw XCTSkip("no Kafka broker (scripts/test starts one)") }
        return try KafkaLocation(url: url, environment: [:])
    }

    func draft(_ n: Int, users: Int = 13) -> EventDraft {
        EventDraft(user: "u\(n % users)", video: "v\(n)", type: EventType.allCases[n % 6], watchMs: UInt32(n),
                   timeMs: 1_700_000_000_000 + Int64(n), idempotencyKey: n % 5 == 0 ? "k\(n)" : "", extra: n % 2 == 0 ? "{\"e\":1}" : "")
    }

    func testLocationsAreParsedStrictly() throws {
        let k = try KafkaLocation(url: "kafka://a:9092,b:9093/events.v1", environment: [:])
        XCTAssertEqual(k.brokers, "a:9092,b:9093")
        XCTAssertEqual(k.topic, "events.v1")
        for bad in ["kafka://a:9092", "kafka://a/events", "kafka://a:9092/", "kafka://a:9092/ev?acks=1", "http://a:9092/e", "kafka:///e"] {
            XCTAssertThrowsError(try KafkaLocation(url: bad, environment: [:]), bad)
        }
        let file = Fixtures.tempDir("kafka-conf") + "/client.properties"
        try "# production\nsecurity.protocol = SASL_SSL\n\nsasl.username=foryou\n".write(toFile: file, atomically: true, encoding: .utf8)
        let p = try KafkaLocation(url: "kafka://a:9092/e", environment: ["FORYOU_KAFKA_CONFIG": file])
        XCTAssertEqual(p.properties.map { "\($0.0)=\($0.1)" }, ["security.protocol=SASL_SSL", "sasl.username=foryou"])
        try "oops\n".write(toFile: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try KafkaLocation(url: "kafka://a:9092/e", environment: ["FORYOU_KAFKA_CONFIG": file])) {
            XCTAssertTrue("\($0)".contains("client.properties:1"), "\($0)")
        }
        XCTAssertEqual(KafkaEventID.partition(KafkaEventID.make(partition: 5, offset: 123_456)), 5)
        XCTAssertEqual(KafkaEventID.offset(KafkaEventID.make(partition: 5, offset: 123_456)), 123_456)
    }

    /// Every acknowledged event is on the topic exactly once, a user's events in one partition
    /// in order, and the reader decodes them to what was appended.
    func testAcknowledgedEventsArriveOncePerUserInOrder() async throws {
        let k = try topic()
        let producer = try KafkaProducer(location: k)
        let ids = try await withThrowingTaskGroup(of: [(UInt64, EventDraft)].self) { group in
            for t in 0..<8 {
                group.addTask {
                    var out: [(UInt64, EventDraft)] = []
                    for n in stride(from: t, to: 400, by: 8) {
                        let d = self.draft(n)
                        out.append((try await producer.append([d])[0], d))
                    }
                    return out
                }
            }
            var all: [(UInt64, EventDraft)] = []
            for try await part in group { all += part }
            return all
        }
        let batch = (400..<450).map { draft($0) }
        let batchIds = try producer.appendSync(batch)
        producer.close()
        var sent = Dictionary(uniqueKeysWithValues: ids.map { ($0.0, $0.1) })
        for (id, d) in zip(batchIds, batch) { sent[id] = d }
        XCTAssertEqual(sent.count, 450, "distinct ids")

        let reader = try KafkaReader(location: k)
        try reader.assignAll()
        var got: [Event] = []
        while !reader.caughtUp { got += try reader.poll(max: 1_000, timeoutMs: 2_000) }
        XCTAssertEqual(got.count, 450)
        for e in got { XCTAssertEqual(sent[e.id], e.draft, "event \(e.id)") }
        var partitionOf: [String: Int32] = [:], lastOf: [String: UInt64] = [:]
        for e in got {
            let p = KafkaEventID.partition(e.id)
            XCTAssertEqual(partitionOf[e.user] ?? p, p, "\(e.user) stays in one partition")
            partitionOf[e.user] = p
            if let last = lastOf[e.user] { XCTAssertGreaterThan(e.id, last, "\(e.user) in order") }
            lastOf[e.user] = e.id
        }
        XCTAssertGreaterThan(Set(partitionOf.values).count, 1, "users spread over partitions")
        // The batch's events of one user come back in the batch's order.
        let u0 = got.filter { $0.user == "u0" && Int($0.video.dropFirst())! >= 400 }.map(\.video)
        XCTAssertEqual(u0, batch.filter { $0.user == "u0" }.map(\.video))

        // A range scan of one partition sees exactly that range.
        let p = partitionOf["u1"]!
        let mine = got.filter { KafkaEventID.partition($0.id) == p }.map(\.id).sorted()
        var scanned: [UInt64] = []
        try reader.scan(partition: p, from: KafkaEventID.offset(mine[2]), to: KafkaEventID.offset(mine[5])) { scanned.append($0.id) }
        XCTAssertEqual(scanned, Array(mine[2..<5]))
    }

    /// A consumer group member starts each partition where `start` says and commits what it is told.
    func testGroupMemberStartsWhereTheStoreSays() throws {
        let k = try topic()
        let producer = try KafkaProducer(location: k)
        let ids = try producer.appendSync((0..<200).map { draft($0) })
        producer.close()
        let skip = Dictionary(grouping: ids, by: KafkaEventID.partition).mapValues { $0.sorted()[min(3, $0.count - 1)] }
        let member = try KafkaGroupConsumer(location: k, group: "g-\(UUID().uuidString)") { p in
            KafkaEventID.offset(skip[p] ?? KafkaEventID.make(partition: p, offset: 0))
        }
        var got: [UInt64] = [], owned: [Int32] = []
        let deadline = Date().addingTimeInterval(30)
        while !(member.caughtUp && got.count > 0) && Date() < deadline {
            let (events, reassigned) = try member.poll(max: 500, timeoutMs: 200)
            if let r = reassigned { owned = r; got = [] }
            got += events.map(\.id)
        }
        XCTAssertFalse(owned.isEmpty)
        XCTAssertEqual(Set(got), Set(ids.filter { $0 >= skip[KafkaEventID.partition($0)]! }))
        let next = Dictionary(grouping: got, by: KafkaEventID.partition).mapValues { KafkaEventID.offset($0.max()!) + 1 }
        member.commit(next)
        var committed: [Int32: Int64] = [:]
        for _ in 0..<50 where committed != next {  // the commit is asynchronous
            committed = try member.committed(owned)
            usleep(100_000)
        }
        XCTAssertEqual(committed, next)
        XCTAssertFalse(next.isEmpty)
    }

    /// No broker: the append fails (no 202), and the producer reports nothing as delivered.
    func testAnUnreachableBrokerFailsTheAppend() async throws {
        let port = try Fixtures.freePort()
        var k = try KafkaLocation(url: "kafka://127.0.0.1:\(port)/nowhere", environment: [:])
        k.properties = [("message.timeout.ms", "1500"), ("log_level", "0")]
        let producer = try KafkaProducer(location: k)
        do {
            _ = try await producer.append([draft(1)])
            XCTFail("acknowledged without a broker")
        } catch let e as KafkaError {
            guard case .delivery = e else { return XCTFail("\(e)") }
        }
        XCTAssertEqual(producer.appended, 0)
        producer.close()
    }
}
