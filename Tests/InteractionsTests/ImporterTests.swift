import XCTest
import Interactions
import TestSupport

final class ImporterTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("importer") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func file(_ name: String, _ text: String) -> String {
        let p = dir + "/" + name
        Fixtures.write(text, to: p)
        return p
    }

    func testSplitFormat() throws {
        let p = file("a.tsv", "1\t10\t1\n1\t11\t2.5\n2\t10\t1\n")
        let d = try Importer(format: .split).read(path: p)
        XCTAssertEqual(d.count, 3)
        XCTAssertEqual(d.users.raw, ["1", "2"])
        XCTAssertEqual(d.items.raw, ["10", "11"])
        XCTAssertEqual(d.weights, [1, 2.5, 1])
        XCTAssertNil(d.timestamps)
    }

    /// A mapped file read with its pages given back every 4 KiB parses exactly as the same bytes in
    /// memory, and an error past the released pages still names its line.
    func testReleasingParsedPagesChangesNothing() throws {
        var text = "user,item,rating,timestamp\n"
        for k in 0..<20_000 { text += "user-\(k % 997),item-\(k % 331)-x,\(k % 5 + 1),\(1_000 + k)\n" }
        let p = file("r.csv", text)
        var importer = Importer(format: .csv, columns: .init(user: "user", item: "item", weight: "rating", time: "timestamp"))
        importer.releaseEvery = 4_096
        let mapped = try importer.read(path: p)
        let inMemory = try Array(text.utf8).withUnsafeBytes { try importer.parse($0, name: p) }
        var offsets: [Int] = []
        var again = Interactions()
        try Array(text.utf8).withUnsafeBytes { try importer.parse($0, name: p, into: &again, consumed: { offsets.append($0) }) }
        XCTAssertEqual(Double(offsets.count), Double(text.utf8.count / 4_096), accuracy: 1, "\(offsets.prefix(5))")
        XCTAssertTrue(zip(offsets, offsets.dropFirst()).allSatisfy { $1 - $0 >= 4_096 })
        XCTAssertEqual(mapped.count, 20_000)
        XCTAssertEqual(mapped.users, inMemory.users)
        XCTAssertEqual(mapped.items, inMemory.items)
        XCTAssertEqual(mapped.userIndex, inMemory.userIndex)
        XCTAssertEqual(mapped.itemIndex, inMemory.itemIndex)
        XCTAssertEqual(mapped.weights, inMemory.weights)
        XCTAssertEqual(mapped.timestamps, inMemory.timestamps)
        let bad = file("bad.csv", text + "u,i,abc,1\n")
        XCTAssertThrowsError(try importer.read(path: bad)) {
            XCTAssertEqual(($0 as? ImportError)?.line, 20_002, "\($0)")
        }
    }

    func testSplitFormatWithTimesAndCRLF() throws {
        let p = file("t.tsv", "a\tx\t1\t100\r\nb\ty\t2\t50\r\n")
        let d = try Importer(format: .split).read(path: p)
        XCTAssertEqual(d.timestamps, [100, 50])
        XCTAssertEqual(d.users.raw, ["a", "b"])
    }

    func testMovieLensRatings() throws {
        let p = file("ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,3.5,964981247\n2,1,5.0,964982224\n")
        let d = try Importer(format: .movielens, minWeight: 4).read(path: p)
        XCTAssertEqual(d.count, 2)
        XCTAssertEqual(d.weights, [4, 5])
        XCTAssertEqual(d.timestamps, [964982703, 964982224])
    }

    func testLastFMUserArtists() throws {
        let p = file("user_artists.dat", "userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n")
        let d = try Importer(format: .lastfm).read(path: p)
        XCTAssertEqual(d.weights, [13883, 11690])
        XCTAssertEqual(d.items.raw, ["51", "52"])
    }

    func testGenericCSVWithNamedColumnsAndQuotes() throws {
        let p = file("events.csv", "ts,who,\"video id\",watch\n5,\"u,1\",v9,0.5\n6,u2,v9,1e1\n")
        let imp = Importer(format: .csv, columns: .init(user: "who", item: "video id", weight: "watch", time: "ts"))
        let d = try imp.read(path: p)
        XCTAssertEqual(d.users.raw, ["u,1", "u2"])
        XCTAssertEqual(d.weights, [0.5, 10])
        XCTAssertEqual(d.timestamps, [5, 6])
    }

    func testCSVWithoutWeightColumnWeighsOne() throws {
        let p = file("e.tsv", "user\titem\n1\t2\n")
        let d = try Importer(format: .csv, columns: .init(weight: nil)).read(path: p)
        XCTAssertEqual(d.weights, [1])
    }

    func assertImportError(_ text: String, format: Importer.Format = .split, line: Int, contains: String,
                           file: StaticString = #filePath, at: UInt = #line) {
        let p = self.file("bad-\(UUID().uuidString.prefix(4)).txt", text)
        XCTAssertThrowsError(try Importer(format: format).read(path: p), file: file, line: at) { e in
            guard let e = e as? ImportError else { return XCTFail("wrong error \(e)", file: file, line: at) }
            XCTAssertEqual(e.line, line, file: file, line: at)
            XCTAssertEqual(e.file, p, file: file, line: at)
            XCTAssertTrue(e.description.contains(contains), "\(e)", file: file, line: at)
            XCTAssertTrue(e.description.hasPrefix("\(p):\(line > 0 ? "\(line):" : "")"), "\(e)", file: file, line: at)
        }
    }

    func testBadInputNamesFileAndLine() {
        assertImportError("1\t2\t1\n1\t3\n", line: 2, contains: "missing column weight")
        assertImportError("1\t2\t1\n1\t3\tabc\n", line: 2, contains: "non-numeric weight 'abc'")
        assertImportError("1\t2\tNaN\n", line: 1, contains: "not a finite number")
        assertImportError("1\t2\t1\n\n1\t2\tinf\n", line: 3, contains: "not a finite number")
        assertImportError("", line: 0, contains: "empty file")
        assertImportError("userId,movieId,rating,timestamp\n", format: .movielens, line: 1, contains: "empty file")
        assertImportError("userId,rating,timestamp\n1,4,5\n", format: .movielens, line: 1, contains: "missing column 'movieId'")
        assertImportError("userId,movieId,rating,timestamp\n1,2,4,yesterday\n", format: .movielens, line: 2,
                          contains: "time 'yesterday' is not a 64-bit integer")
        assertImportError("1\t2\t1\t5\n1\t3\t1\n", line: 2, contains: "missing column time")
    }

    /// Issue 17: untidy input is decided, never silently read.
    func testOverflowJunkColumnsAndNegativeWeightsAreErrors() {
        // A 19-digit time overflows Int64: an error naming the value, not a wrapped number.
        assertImportError("1\t2\t1\t9999999999999999999\n", line: 1, contains: "time '9999999999999999999' is not a 64-bit integer")
        assertImportError("userId,movieId,rating,timestamp\n1,2,4,-99999999999999999999\n", format: .movielens, line: 2,
                          contains: "is not a 64-bit integer")
        // A time column that appears after a first line without one, or a fifth field.
        assertImportError("1\t2\t1\n1\t3\t1\t77\n", line: 2, contains: "line 1 has none")
        assertImportError("1\t2\t1\t5\t9\n", line: 1, contains: "more than 4 fields")
        // A negative weight is refused by default, with how to say what it means.
        assertImportError("1\t2\t1\n1\t3\t-1.5\n", line: 2, contains: "negative weight '-1.5'")
        assertImportError("1\t2\t1e39\n", line: 1, contains: "not a finite number")
    }

    func testSpacesAroundFieldsAreTrimmedAndNegativesCanBeExplicit() throws {
        let p = file("spaces.tsv", "1\t65  \t2\n 1 \t65\t1\n2\t 65\t-1\n")
        XCTAssertThrowsError(try Importer().read(path: p))
        let d = try Importer(negativeWeights: .explicit).read(path: p)
        XCTAssertEqual(d.items.raw, ["65"])  // "65  ", "65" and " 65" are one item
        XCTAssertEqual(d.users.raw, ["1", "2"])
        XCTAssertEqual(d.weights, [2, 1, -1])
        let csv = file("spaces.csv", "user, item, weight\n a , b , 3\n")
        let c = try Importer(format: .csv).read(path: csv)
        XCTAssertEqual(c.users.raw, ["a"])
        XCTAssertEqual(c.items.raw, ["b"])
        // A trailing tab is not a column.
        XCTAssertEqual(try Importer().read(path: file("tab4.tsv", "1\t2\t1\t5\t\n1\t3\t1\t6\t\n")).timestamps, [5, 6])
        XCTAssertNil(try Importer().read(path: file("tab3.tsv", "1\t2\t1\t\n1\t3\t1\n")).timestamps)
        // Int64's extremes parse exactly.
        let t = try Importer().read(path: file("t.tsv", "1\t2\t1\t9223372036854775807\n1\t3\t1\t-9223372036854775808\n"))
        XCTAssertEqual(t.timestamps, [Int64.max, Int64.min])
    }

    func testMissingFileIsAnError() {
        XCTAssertThrowsError(try Importer().read(path: dir + "/nope.tsv")) { e in
            XCTAssertTrue("\(e)".contains("nope.tsv"))
        }
    }

    func testIdMapCanonicalIntegers() {
        var m = IdMap()
        XCTAssertEqual(m.index(inserting: "7"), 0)
        XCTAssertEqual(m.index(inserting: "007"), 1)  // not the same id as "7"
        XCTAssertEqual(m.index(inserting: "-3"), 2)
        XCTAssertEqual(m.index(inserting: "abc"), 3)
        XCTAssertEqual(m.index(of: "7"), 0)
        XCTAssertEqual(m.index(of: "007"), 1)
        XCTAssertNil(m.index(of: "8"))
        XCTAssertEqual(m.raw, ["7", "007", "-3", "abc"])
    }

    func testWriterRoundTrip() throws {
        let p = file("in.tsv", "u1\ti1\t2\t10\nu2\ti2\t0.25\t11\n")
        let d = try Importer().read(path: p)
        try InteractionWriter.write(d, to: dir + "/out.tsv")
        let back = try Importer().read(path: dir + "/out.tsv")
        XCTAssertEqual(back.users, d.users)
        XCTAssertEqual(back.weights, d.weights)
        XCTAssertEqual(back.timestamps, d.timestamps)
    }
}
