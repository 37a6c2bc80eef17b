import XCTest
import LinearAlgebra
import Interactions
import Rankers
import Artifacts
import TestSupport

final class ModelStoreTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("store") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func run(_ model: String) -> RunRecord {
        RunRecord(id: "t", model: model, createdAt: "now", codeVersion: "test", params: ["reg": "0.1"],
                  data: .init(paths: [], format: "split", fingerprint: "0", rows: 0, users: 3, items: 4, nnz: 2),
                  losses: [1, 0.5], timings: .init(importSeconds: 0, fitSeconds: 0, iterationSeconds: [], lossSeconds: nil),
                  outcome: "completed", environment: [:], metrics: ["ndcg@10": 0.25], files: [:])
    }

    func saved() throws -> (ALSModel, String) {
        let m = ALSModel(config: ALSConfig(factors: 3, regularization: 0.1),
                         userFactors: Fixtures.randomMatrix(rows: 3, cols: 3, seed: 1),
                         itemFactors: Fixtures.randomMatrix(rows: 4, cols: 3, seed: 2))
        let seen = CSR(rows: 3, cols: 4, rowIndex: [0, 2], colIndex: [1, 3], values: [2, 3])
        let path = dir + "/als"
        try ModelStore.save(m, users: IdMap(raw: ["u1", "u2", "u3"]), items: IdMap(raw: ["a", "b", "c", "d"]),
                            seen: seen, run: run("als"), to: path)
        return (m, path)
    }

    func testALSRoundTrip() throws {
        let (m, path) = try saved()
        let back = try ModelStore.load(path)
        let f = try XCTUnwrap(back.ranker as? ALSModel)
        XCTAssertEqual(f.userFactors.values, m.userFactors.values)
        XCTAssertEqual(f.itemFactors.values, m.itemFactors.values)
        XCTAssertEqual(back.users.raw, ["u1", "u2", "u3"])
        XCTAssertEqual(back.items.index(of: "c"), 2)
        XCTAssertEqual(back.seen.indices, [1, 3])
        XCTAssertEqual(back.run.metrics["ndcg@10"], 0.25)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".partial"))
    }

    func testTwoTowerRoundTripKeepsTheTowers() throws {
        var c = TwoTowerConfig()
        c.dim = 4; c.hidden = 6; c.featureBuckets = 8
        let model = TwoTowerModel(config: c, users: 3, items: 4)
        let r = TwoTowerRanker(userFactors: model.embedUsers([0, 1, 2], histories: [[0], [], [1, 3]], historyFeatures: [[[]], [], [[], [2]]]),
                               itemFactors: model.embedItems([0, 1, 2, 3], features: [[], [1], [], [2]]), model: model)
        try ModelStore.save(r, users: IdMap(raw: ["u1", "u2", "u3"]), items: IdMap(raw: ["a", "b", "c", "d"]),
                            seen: CSR(rows: 3, cols: 4, rowIndex: [], colIndex: [], values: []), run: run("two-tower"),
                            to: dir + "/tt")
        let back = try XCTUnwrap(try ModelStore.load(dir + "/tt").ranker as? TwoTowerRanker)
        XCTAssertEqual(back.userFactors.values, r.userFactors.values)
        let towers = try XCTUnwrap(back.model)
        XCTAssertEqual(towers.parameters.map(\.values), model.parameters.map(\.values))
        // A video unseen at training is embedded from its features by the stored towers.
        XCTAssertEqual(towers.embedItems([-1], features: [[1, 2]]).values, model.embedItems([-1], features: [[1, 2]]).values)
    }

    func testBlendRoundTrip() throws {
        let b = StoredFactors(kind: "blend", userFactors: Fixtures.randomMatrix(rows: 3, cols: 5, seed: 3),
                              itemFactors: Fixtures.randomMatrix(rows: 4, cols: 5, seed: 4))
        try ModelStore.save(b, users: IdMap(raw: ["u1", "u2", "u3"]), items: IdMap(raw: ["a", "b", "c", "d"]),
                            seen: CSR(rows: 3, cols: 4, rowIndex: [], colIndex: [], values: []), run: run("blend"), to: dir + "/b")
        let back = try XCTUnwrap(try ModelStore.load(dir + "/b").ranker as? StoredFactors)
        XCTAssertEqual(back.kind, "blend")
        XCTAssertEqual(back.itemFactors.values, b.itemFactors.values)
    }

    func testPopularityRoundTrip() throws {
        let p = PopularityModel(userCount: 3, itemScores: [4, 1, 0, 2])
        try ModelStore.save(p, users: IdMap(raw: ["u1", "u2", "u3"]), items: IdMap(raw: ["a", "b", "c", "d"]),
                            seen: CSR(rows: 3, cols: 4, rowIndex: [], colIndex: [], values: []), run: run("popularity"),
                            to: dir + "/pop")
        let back = try XCTUnwrap(try ModelStore.load(dir + "/pop").ranker as? PopularityModel)
        XCTAssertEqual(back.itemScores, [4, 1, 0, 2])
    }

    func testTruncatedFactorsAreRejected() throws {
        let (_, path) = try saved()
        let f = path + "/item_factors.bin"
        let data = try Data(contentsOf: URL(fileURLWithPath: f))
        try data.prefix(data.count - 9).write(to: URL(fileURLWithPath: f))
        XCTAssertThrowsError(try ModelStore.load(path)) { e in
            guard case ArtifactError.truncated(let name, _, _)? = e as? ArtifactError else { return XCTFail("\(e)") }
            XCTAssertEqual(name, f)
        }
    }

    /// A damaged artifact whose run.json digest was brought in line with it: the file's own
    /// CRC (checked as its payload streams in) or its size still refuses it.
    func testDamageBehindAMatchingDigestIsRejected() throws {
        let (_, path) = try saved()
        let f = path + "/seen.bin"
        func retag() throws {
            var run = try ModelStore.readRun(path)
            run.files["seen.bin"] = try XCTUnwrap(ModelStore.digest(path: f))
            try ModelStore.writeRun(run, to: path + "/run.json")
        }
        let original = try Data(contentsOf: URL(fileURLWithPath: f))
        XCTAssertEqual(ModelStore.digest(path: f), ModelStore.digest(original))
        var flipped = original
        flipped[original.count - 6] ^= 0x01  // a value, near the end of the payload
        try flipped.write(to: URL(fileURLWithPath: f))
        try retag()
        XCTAssertThrowsError(try ModelStore.load(path)) { e in XCTAssertEqual(e as? ArtifactError, .checksumMismatch(f)) }
        try (original + Data([0])).write(to: URL(fileURLWithPath: f))
        try retag()
        XCTAssertThrowsError(try ModelStore.load(path)) { e in
            XCTAssertEqual(e as? ArtifactError, .truncated(f, expected: original.count, actual: original.count + 1))
        }
        try original.write(to: URL(fileURLWithPath: f))
        try retag()
        XCTAssertEqual(try ModelStore.load(path).seen.indices, [1, 3])
    }

    func testFlippedByteIsRejected() throws {
        let (_, path) = try saved()
        let f = path + "/user_factors.bin"
        var data = try Data(contentsOf: URL(fileURLWithPath: f))
        data[40] ^= 0x10
        try data.write(to: URL(fileURLWithPath: f))
        XCTAssertThrowsError(try ModelStore.load(path)) { e in
            XCTAssertEqual(e as? ArtifactError, .checksumMismatch(f))
        }
    }

    func testEditedIdMapIsRejected() throws {
        let (_, path) = try saved()
        try "u1\nu2\nuX\n".write(toFile: path + "/users.tsv", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelStore.load(path)) { e in
            XCTAssertEqual(e as? ArtifactError, .checksumMismatch(path + "/users.tsv"))
        }
    }

    func testMissingDirectoryIsAClearError() {
        XCTAssertThrowsError(try ModelStore.load(dir + "/nothing")) { e in
            XCTAssertTrue("\(e)".contains("run.json"), "\(e)")
        }
    }
}
