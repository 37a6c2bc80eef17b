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
