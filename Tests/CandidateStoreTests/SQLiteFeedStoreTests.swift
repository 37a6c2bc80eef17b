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
