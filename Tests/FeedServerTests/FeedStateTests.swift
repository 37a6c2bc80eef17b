import XCTest
import Foundation
import CandidateStore
import EventLog
@testable import FeedServer

/// The in-memory state's parts on their own, and what `FeedState.apply` promises across them.
final class FeedStateTests: XCTestCase {
    let now: Double = 1_700_000_000

    func event(_ id: UInt64, _ user: String, _ video: String, _ type: EventType, at t: Double, key: String = "") -> Event {
        Event(id: id, draft: EventDraft(user: user, video: video, type: type, timeMs: Int64(t * 1000), idempotencyKey: key))
    }

    func testTrendingWeighsSharesOverLikesOverCompletionsOverViewsAndIgnoresSkips() {
        var config = FeedServerConfig()
        config.freshSeconds = 0
        let state = FeedState(config: config)
        let types: [(String, EventType)] = [("a", .view), ("b", .complete), ("c", .like), ("d", .share), ("e", .skip), ("f", .hide)]
        state.catalog.reload(types.map { Video(id: $0.0, createdAt: 0) }, version: 1)
        state.apply(types.enumerated().map { k, p in event(UInt64(k), "u", p.0, p.1, at: now) })
        state.rebuildTrending(now: now)
        let snap = state.snapshot(user: "u")
        // e and f score 0 and tie: by creation time (equal), then id.
        XCTAssertEqual(snap.trending.map { snap.videos[Int($0)]!.v.id }, ["d", "c", "b", "a", "e", "f"])
        XCTAssertEqual(snap.seen.count, 6, "every event type marks its video seen")
        XCTAssertEqual(state.eventsApplied, 6)
        XCTAssertEqual(state.counts.users, 1)
        XCTAssertEqual(state.counts.videos, 6)
    }

    func testSkipsCountTowardsTheFreshPoolLimit() {
        var config = FeedServerConfig()
        config.freshMaxEvents = 2
        let state = FeedState(config: config)
        let created = Int64(now * 1000)
        state.catalog.reload([Video(id: "a", createdAt: created), Video(id: "b", createdAt: created)], version: 1)
        state.apply([event(0, "u", "a", .skip, at: now), event(1, "v", "a", .hide, at: now), event(2, "u", "b", .skip, at: now)])
        state.rebuildTrending(now: now)
        let snap = state.snapshot(user: "w")
        XCTAssertEqual(snap.fresh.map { snap.videos[Int($0)]!.v.id }, ["b"])
    }

    func testEventsForVideosOutsideTheCatalogGetIndicesButAreNotServed() {
        let state = FeedState(config: FeedServerConfig())
        state.apply([event(0, "u", "gone", .share, at: now)])
        state.catalog.reload([Video(id: "a")], version: 1)
        state.rebuildTrending(now: now)
        let snap = state.snapshot(user: "u")
        XCTAssertEqual(snap.trending.map { snap.videos[Int($0)]!.v.id }, ["a"])
        XCTAssertEqual(snap.videos.count, 2)
        XCTAssertFalse(snap.meta[Int(state.catalog.indices(of: ["gone"])[0])].ready)
    }

    func testAnAppliedEventsKeyIsDoneAndExpiresAfterTheWindow() {
        var config = FeedServerConfig()
        config.idempotencyWindowSeconds = 60
        let state = FeedState(config: config)
        state.catalog.reload([Video(id: "a")], version: 1)
        let e = event(7, "u", "a", .like, at: now, key: "k")
        let fp = IdempotencyKeys.fingerprint(e.draft)
        XCTAssertEqual(state.keys.claim(user: "u", key: "k", fingerprint: fp), .new)
        XCTAssertEqual(state.keys.claim(user: "u", key: "k", fingerprint: fp), .inFlight)
        state.apply([e])
        XCTAssertEqual(state.keys.claim(user: "u", key: "k", fingerprint: fp), .done(7))
        XCTAssertEqual(state.keys.claim(user: "u", key: "k", fingerprint: fp &+ 1), .mismatch)
        XCTAssertTrue(state.snapshot(user: "u").seen.contains(state.catalog.indices(of: ["a"])[0]),
                      "a key reads done only once its event is in the seen set")
        state.expire(now: now + 59)
        XCTAssertEqual(state.keys.count, 1)
        state.expire(now: now + 61)
        XCTAssertEqual(state.keys.count, 0)
    }

    func testRateLimiterRefillsAtItsRate() {
        let r = RateLimiter(perSecond: 2, burst: 2)
        XCTAssertNil(r.take(user: "u", now: now))
        XCTAssertNil(r.take(user: "u", now: now))
        XCTAssertEqual(r.take(user: "u", now: now)!, 0.5, accuracy: 1e-9)
        XCTAssertNil(r.take(user: "u", now: now + 0.5))
    }
    /// A catalog entry's rendered fields are exactly what `JSONWriter` writes for them (escapes,
    /// missing URLs as null, relative URLs under the public base).
    func testVideoBoxRendersWhatTheJSONWriterWrites() {
        let videos = [
            Video(id: "v\"1", caption: "line\nbreak \\ and \u{1}", topic: "cats", creator: "é", durationMs: 12_345,
                  streamURL: "/media/v1/master.m3u8", thumbnailURL: nil),
            Video(id: "plain", caption: "", topic: "", creator: "", durationMs: 0, streamURL: "https://cdn/x.m3u8", thumbnailURL: "/t.jpg"),
        ]
        for base in ["", "https://feed.example"] {
            for v in videos {
                let w = JSONWriter()
                w.object {
                    w.field("id", v.id)
                    w.field("caption", v.caption)
                    w.field("stream_url", VideoBox.url(v.streamURL, base))
                    w.field("thumbnail_url", VideoBox.url(v.thumbnailURL, base))
                    w.field("duration_ms", v.durationMs)
                    w.field("topic", v.topic)
                    w.field("creator", v.creator)
                }
                let expected = Array(w.bytes.dropFirst().dropLast()) + [44]
                XCTAssertEqual(String(decoding: VideoBox(v, baseURL: base).jsonFields, as: UTF8.self),
                               String(decoding: expected, as: UTF8.self))
            }
        }
    }

    /// The start-up replay's hand-off: every batch arrives once and in order past a full queue,
    /// then the producer's end; a producer's error comes after the batches it put.
    func testBatchHandoffDeliversInOrderThenTheProducersOutcome() {
        struct Stop: Error {}
        for failing in [false, true] {
            let h = BatchHandoff<[Int]>(capacity: 2)
            Thread.detachNewThread {
                for b in 0..<500 { h.put([b, b + 1]) }
                h.finish(failing ? Stop() : nil)
            }
            var got: [[Int]] = []
            do {
                while let b = try h.take() { got.append(b) }
                XCTAssertFalse(failing)
            } catch {
                XCTAssertTrue(failing && error is Stop, "\(error)")
            }
            XCTAssertEqual(got, (0..<500).map { [$0, $0 + 1] })
        }
        // A consumer that stops early lets a producer blocked on the full queue go.
        let h = BatchHandoff<Int>(capacity: 1)
        let released = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var put = 0
            while h.put(put) { put += 1 }
            XCTAssertLessThanOrEqual(put, 3)
            released.signal()
        }
        XCTAssertEqual(try h.take(), 0)
        h.cancel()
        XCTAssertEqual(released.wait(timeout: .now() + 10), .success)
        XCTAssertNil(try h.take())
    }
}
