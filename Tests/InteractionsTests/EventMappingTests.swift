import XCTest
import EventLog
import Interactions

final class EventMappingTests: XCTestCase {
    let day: Int64 = 86_400_000

    func event(_ id: UInt64, _ user: String, _ video: String, _ type: EventType, watch: UInt32 = 0, at t: Int64) -> Event {
        Event(id: id, draft: EventDraft(user: user, video: video, type: type, watchMs: watch, timeMs: t))
    }

    /// u watched half of a (10 s) and liked it, skipped b after 1 s, hid c, completed d then skipped it.
    var events: [Event] {
        [event(0, "u", "a", .view, watch: 5_000, at: 0), event(1, "u", "a", .like, at: 1),
         event(2, "u", "b", .skip, watch: 1_000, at: 2), event(3, "u", "c", .hide, at: 3),
         event(4, "u", "d", .complete, watch: 10_000, at: 4), event(5, "u", "d", .skip, watch: 500, at: 5)]
    }

    func weights(_ m: EventMapping) -> [String: Float] {
        var h = EventHistory(mapping: m)
        for e in events { h.add(e, duration: 10_000) }
        let data = h.interactions()
        var out: [String: Float] = [:]
        for r in 0..<data.count { out[data.items.raw[Int(data.itemIndex[r])]] = data.weights[r] }
        return out
    }

    func testPenalizeTurnsNetNegativePairsIntoExplicitNegatives() {
        // a: 0.5 + 2; b: -1; c: -4; d: 1 - 1 = 0 -> not an interaction.
        XCTAssertEqual(weights(EventMapping()), ["a": 2.5, "b": -1, "c": -4])
    }

    func testDropLeavesOutEveryPairWithASkipOrHide() {
        var m = EventMapping()
        m.negatives = .drop
        XCTAssertEqual(weights(m), ["a": 2.5])
    }

    func testIgnoreCountsSkipsAsShortViews() {
        var m = EventMapping()
        m.negatives = .ignore
        // b: a skip after 1 s of 10 = 0.1; d: 1 + 0.05.
        let w = weights(m)
        XCTAssertEqual(w.count, 3)
        XCTAssertEqual(w["a"]!, 2.5, accuracy: 1e-6)
        XCTAssertEqual(w["b"]!, 0.1, accuracy: 1e-6)
        XCTAssertEqual(w["d"]!, 1.05, accuracy: 1e-6)
    }

    func testHalfLifeDecaysFromTheNewestEventWhateverTheArrivalOrder() {
        var m = EventMapping()
        m.halfLifeDays = 7
        let evs = [event(0, "u", "a", .like, at: 7 * day), event(1, "u", "a", .like, at: 0),  // late arrival
                   event(2, "u", "b", .complete, at: 0), event(3, "v", "c", .share, at: 14 * day)]
        var h = EventHistory(mapping: m)
        for e in evs { h.add(e, duration: 0) }
        let data = h.interactions()
        var w: [String: Float] = [:]
        for r in 0..<data.count { w[data.items.raw[Int(data.itemIndex[r])]] = data.weights[r] }
        // Newest event: day 14. a: 2 * 1/2 + 2 * 1/4; b: 1 * 1/4; c: 3.
        XCTAssertEqual(w["a"]!, 1.5, accuracy: 1e-5)
        XCTAssertEqual(w["b"]!, 0.25, accuracy: 1e-5)
        XCTAssertEqual(w["c"]!, 3, accuracy: 1e-5)
    }

    func testConfidenceKeepsTheSignOfNegatives() {
        let c = Confidence(scheme: .log, alpha: 4)
        XCTAssertEqual(c.apply(-1), -(1 + 4 * Float(Foundation.log1p(1.0))), accuracy: 1e-6)
        XCTAssertEqual(c.apply(3), 1 + 4 * Float(Foundation.log1p(3.0)), accuracy: 1e-6)
    }

    func testMappingRoundTripsThroughRunParameters() {
        var m = EventMapping()
        m.negatives = .ignore
        m.halfLifeDays = 3
        m.like = 5
        XCTAssertEqual(EventMapping(params: m.params), m)
        XCTAssertEqual(EventMapping(params: [:]).negatives, .drop, "models from before the mapping was recorded")
    }
}

final class EventWeightsTests: XCTestCase {
    /// Training and trending weigh events differently on purpose; both tables live in EventLog.
    func testTheMappingDefaultsToTheTrainingTable() {
        var m = EventMapping()
        XCTAssertEqual(m.weights, .training)
        XCTAssertEqual(EventType.allCases.map { EventWeights.training[$0] }, [1, 1, 2, 3, 1, 4])
        XCTAssertEqual(EventType.allCases.map { EventWeights.trending[$0] }, [1, 2, 3, 4, 0, 0])
        m.like = 5
        XCTAssertEqual(m.weights[.like], 5)
        XCTAssertEqual(EventWeights.training.like, 2)
    }
}

/// `foryou events import`'s core: one event per row, the file's times or consecutive
/// milliseconds ending now, watch time = duration, batches of the given size.
final class EventImportTests: XCTestCase {
    func testRowsBecomeEventsInBatches() throws {
        let users = IdMap(raw: ["a", "b"]), items = IdMap(raw: ["v1", "v2"])
        let d = Interactions(users: users, items: items, userIndex: [0, 1, 0], itemIndex: [0, 1, 1], weights: [1, 1, 1])
        var batches: [[EventDraft]] = []
        let n = try EventImport.append(d, type: .like, durations: ["v1": 5_000], now: 10_000, batchSize: 2) { batches.append($0) }
        XCTAssertEqual(n, 3)
        XCTAssertEqual(batches.map(\.count), [2, 1])
        let all = batches.flatMap { $0 }
        XCTAssertEqual(all.map(\.user), ["a", "b", "a"])
        XCTAssertEqual(all.map(\.video), ["v1", "v2", "v2"])
        XCTAssertEqual(all.map(\.timeMs), [9_997, 9_998, 9_999])
        XCTAssertEqual(all.map(\.watchMs), [5_000, 0, 0])
        XCTAssertTrue(all.allSatisfy { $0.type == .like })
        // Times from the file (seconds) win over the clock; a cancellation stops before the next row.
        var timed = d
        timed.timestamps = [7, 8, 9]
        var got: [EventDraft] = []
        var calls = 0
        let m = try EventImport.append(timed, type: .view, durations: [:], now: 0, cancelled: { calls += 1; return calls > 2 }) {
            got += $0
        }
        XCTAssertEqual(m, 2)
        XCTAssertEqual(got.map(\.timeMs), [7_000, 8_000])
    }
}
