import XCTest
import Foundation
import LinearAlgebra
import CandidateStore
import EventLog
import Rankers
import Training
import Rescoring
import LiveRanking
import Transcoding
import Studies
import World
import TestSupport

final class RescoreJobTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("rescore") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func makeWorld() throws {
        var w = WorldConfig()
        w.users = 200; w.videos = 80; w.topics = 5
        let d = DataDirectory(dir + "/data")
        let log = try EventLog(directory: d.events, access: .append)
        _ = try WorldGenerator.generate(w, store: try d.openStore(), log: log)
        log.close()
    }

    func config() -> RescoreConfig {
        var c = RescoreConfig(dataDir: dir + "/data")
        c.modelsDir = dir + "/models"
        c.als = ALSConfig(factors: 8, regularization: 0.05, iterations: 3, solver: .cg, threads: 2)
        c.top = 25
        c.keep = 1
        return c
    }

    func testRescoreSwitchesLiveRecordsTheRunAndPrunes() throws {
        try makeWorld()
        let first = try RescoreJob.run(config())
        let store = try DataDirectory(dir + "/data").openStore()
        XCTAssertEqual(try store.liveGeneration()?.id, first.generation)
        XCTAssertEqual(try store.liveGeneration()?.runId, first.runId)
        XCTAssertEqual(try store.candidates(generation: first.generation, user: "3")?.count, 25)
        let run = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: first.modelDirectory + "/run.json")))
            as! [String: Any]
        XCTAssertEqual((run["params"] as! [String: String])["job"], "rescore")
        let second = try RescoreJob.run(config())
        XCTAssertEqual(try store.liveGeneration()?.id, second.generation)
        XCTAssertEqual(second.pruned, [first.generation])
        XCTAssertEqual(try store.generations().map(\.id), [second.generation])
    }

    func testAFailedRescoreLeavesTheLiveGenerationUntouched() throws {
        try makeWorld()
        let first = try RescoreJob.run(config())
        let token = CancellationToken()
        token.cancel()
        XCTAssertThrowsError(try RescoreJob.run(config(), cancel: token)) { e in
            guard case TrainingError.cancelled? = e as? TrainingError else { return XCTFail("\(e)") }
        }
        let store = try DataDirectory(dir + "/data").openStore()
        XCTAssertEqual(try store.liveGeneration()?.id, first.generation)
        XCTAssertEqual(try store.generations().count, 1)
    }

    func testNoEventsIsAClearError() {
        XCTAssertThrowsError(try RescoreJob.run(config())) { e in
            XCTAssertTrue("\(e)".contains("no positive interactions"), "\(e)")
        }
    }
}
