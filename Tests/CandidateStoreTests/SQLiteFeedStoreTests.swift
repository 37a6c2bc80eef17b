import XCTest
import GRDB
import CandidateStore
import TestSupport

final class SQLiteFeedStoreTests: XCTestCase {
    var dir = ""
    var store: SQLiteFeedStore!
    override func setUpWithError() throws {
        dir = Fixtures.tempDir("store")
        store = try SQLiteFeedStore(path: dir + "/store.sqlite")
    }
    override func tearDown() { store = nil; try? FileManager.default.removeItem(atPath: dir) }

    func lists(_ users: Int, _ n: Int, shift: Int32 = 0) -> [(user: String, items: [Int32], scores: [Float])] {
        (0..<users).map { u in
            (user: "u\(u)", items: (0..<Int32(n)).map { ($0 + shift + Int32(u)) % 50 }, scores: (0..<n).map { Float(n - $0) })
        }
    }

    func testVideosInsertUpsertAndConflicts() throws {
        let v = Video(id: "v1", caption: "cats", tags: ["pets", "fun"], topic: "pets", creator: "c1", durationMs: 15_000,
                      status: .processing, createdAt: 5, uploadId: "up1", owner: "alice")
        try store.insertVideo(v)
        XCTAssertEqual(try store.video(id: "v1"), v)
        XCTAssertThrowsError(try store.insertVideo(v)) { e in
            guard case .conflict? = e as? StoreError else { return XCTFail("\(e)") }
        }
        var ready = v
        ready.status = .ready
        ready.streamURL = "/media/v1/master.m3u8"
        try store.upsertVideos([ready, Video(id: "v2", createdAt: 6)])
        XCTAssertEqual(try store.video(id: "v1")?.status, .ready)
        XCTAssertEqual(try store.videos().map(\.id), ["v1", "v2"])
        XCTAssertNil(try store.video(id: "nope"))
    }

    func testGenerationRoundTripAndSwitch() throws {
        let items = (0..<50).map { "v\($0)" }
        let g1 = try store.writeGeneration(model: "als", runId: "r1", items: items, lists: lists(3, 5), activate: true)
        XCTAssertEqual(try store.liveGeneration()?.id, g1)
        let c = try XCTUnwrap(try store.candidates(generation: g1, user: "u1"))
        XCTAssertEqual(c.map(\.video), ["v1", "v2", "v3", "v4", "v5"])
        XCTAssertEqual(c.map(\.score), [5, 4, 3, 2, 1])
        XCTAssertNil(try store.candidates(generation: g1, user: "ghost"))
        let g2 = try store.writeGeneration(model: "als", runId: "r2", items: items, lists: lists(3, 5, shift: 10), activate: false)
        XCTAssertEqual(try store.liveGeneration()?.id, g1)  // written, not live
        try store.activate(g2)
        XCTAssertEqual(try store.liveGeneration()?.id, g2)
        XCTAssertEqual(try store.candidates(generation: g2, user: "u0")?.first?.video, "v10")
        XCTAssertEqual(try store.rollback().id, g1)
        XCTAssertEqual(try store.liveGeneration()?.id, g1)
        XCTAssertThrowsError(try store.activate(999))
    }

    func testPruneKeepsTheNewestAndTheLiveOne() throws {
        let items = (0..<50).map { "v\($0)" }
        var ids: [Int64] = []
        for r in 0..<5 { ids.append(try store.writeGeneration(model: "als", runId: "r\(r)", items: items, lists: lists(2, 3), activate: r == 0)) }
        let removed = try store.prune(keep: 2)
        XCTAssertEqual(Set(removed), Set([ids[1], ids[2]]))
        XCTAssertEqual(try store.generations().map(\.id), [ids[0], ids[3], ids[4]])
        XCTAssertNil(try store.candidates(generation: ids[1], user: "u0"))
    }

    func testRejectsListsOutsideTheGenerationCatalog() {
        XCTAssertThrowsError(try store.writeGeneration(model: "als", runId: "r", items: ["a"],
                                                       lists: [(user: "u", items: [3], scores: [1])], activate: true))
    }

    func testReadersNeverSeeAHalfWrittenGeneration() throws {
        let items = (0..<50).map { "v\($0)" }
        _ = try store.writeGeneration(model: "als", runId: "r0", items: items, lists: lists(400, 20), activate: true)
        let stop = DispatchSemaphore(value: 0)
        final class Flag: @unchecked Sendable { var problems: [String] = []; var reads = 0; var done = false }
        let flag = Flag()
        let reader = Thread { [store] in
            while !flag.done {
                do {
                    guard let live = try store!.liveGeneration() else { flag.problems.append("no live generation"); continue }
                    // Every user of the live generation has a complete list.
                    for u in ["u0", "u199", "u399"] {
                        let c = try store!.candidates(generation: live.id, user: u)
                        if c?.count != 20 { flag.problems.append("gen \(live.id) user \(u): \(c?.count ?? -1)") }
                    }
                    flag.reads += 1
                } catch { flag.problems.append("\(error)") }
            }
            stop.signal()
        }
        reader.start()
        for r in 1...5 { _ = try store.writeGeneration(model: "als", runId: "r\(r)", items: items, lists: lists(400, 20, shift: Int32(r)), activate: true) }
        flag.done = true
        stop.wait()
        XCTAssertEqual(flag.problems, [])
        XCTAssertGreaterThan(flag.reads, 0)
    }

    func testReplacingListsCommitsTheConsumerCursorInTheSameTransaction() throws {
        let items = (0..<50).map { "v\($0)" }
        let g = try store.writeGeneration(model: "als", runId: "r", items: items, lists: lists(3, 5), activate: true)
        // Another reader (the server) has the item table cached already.
        let server = try SQLiteFeedStore(path: dir + "/store.sqlite")
        XCTAssertEqual(try server.candidates(generation: g, user: "u1")?.first?.video, "v1")
        XCTAssertNil(try store.consumerCursor("ranker"))
        try store.replaceLists(generation: g, lists: [(user: "u1", videos: ["vNEW", "v7"], scores: [2, 1]),
                                                      (user: "u9", videos: ["v3"], scores: [1])],
                               consumer: "ranker", nextEvent: 42)
        XCTAssertEqual(try server.candidates(generation: g, user: "u1")?.map(\.video), ["vNEW", "v7"])
        XCTAssertEqual(try server.candidates(generation: g, user: "u9")?.map(\.video), ["v3"])
        XCTAssertEqual(try server.candidates(generation: g, user: "u0")?.count, 5)  // untouched
        let c = try XCTUnwrap(try store.consumerCursor("ranker"))
        XCTAssertEqual(c.generation, g)
        XCTAssertEqual(c.nextEvent, 42)
        XCTAssertThrowsError(try store.replaceLists(generation: 999, lists: [], consumer: "ranker", nextEvent: 50))
        XCTAssertEqual(try store.consumerCursor("ranker")?.nextEvent, 42)  // a failed write moved nothing
    }

    func testConnectionsRunWithSynchronousFull() throws {
        let pool = try DatabasePool(path: dir + "/store.sqlite")
        _ = pool
        // Through the store's own connections:
        let mode = try store.synchronousMode()
        XCTAssertEqual(mode, 2)  // FULL
    }

    func testDataDirectoryKeyIsStable() throws {
        let d = DataDirectory(dir + "/data")
        let k1 = try d.signingKey(), k2 = try d.signingKey()
        XCTAssertEqual(k1.count, 32)
        XCTAssertEqual(k1, k2)
        let attrs = try FileManager.default.attributesOfItem(atPath: d.secretKey)
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
    }
}
