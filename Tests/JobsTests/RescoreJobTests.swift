import XCTest
import Foundation
import LinearAlgebra
import CandidateStore
import EventLog
import Interactions
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

    /// Issue 21: training reads the newest compacted interaction table and the log after it, and
    /// gets what a read of the whole log gives; a damaged table, or one built with another
    /// mapping, is passed over.
    func testTheInteractionTablePlusTheTailIsAFullRead() throws {
        try makeWorld()
        let d = DataDirectory(dir + "/data")
        var mapping = EventMapping()
        mapping.halfLifeDays = 3  // decay makes the order of additions matter
        let store = try d.openStore()
        func read(tables: String?, notes: inout [String]) throws -> EventTrainingData {
            let log = try EventLog(directory: d.events)
            defer { log.close() }
            var got: [String] = []
            let r = try EventTrainingData.read(log, store: store, mapping: mapping, tables: tables) { got.append($0) }
            notes = got
            return r
        }
        func same(_ a: Interactions, _ b: Interactions, _ what: String) {
            XCTAssertEqual(a.users.raw, b.users.raw, what)
            XCTAssertEqual(a.items.raw, b.items.raw, what)
            XCTAssertEqual(a.userIndex, b.userIndex, what)
            XCTAssertEqual(a.itemIndex, b.itemIndex, what)
            XCTAssertEqual(a.weights, b.weights, what)
            XCTAssertEqual(a.timestamps, b.timestamps, what)
        }
        var notes: [String] = []
        let first = try read(tables: d.interactions, notes: &notes)
        XCTAssertEqual(first.fromTable, 0)
        XCTAssertEqual(InteractionTable.files(d.interactions, mapping: mapping).map(\.position), [first.events])
        // More events (some on pairs the table holds, older and newer), then a read from the table.
        let log = try EventLog(directory: d.events, access: .append)
        let users = first.interactions.users.raw, items = first.interactions.items.raw
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        _ = try log.appendSync((0..<600).map { k in
            EventDraft(user: users[k % users.count], video: items[(k * 7) % items.count],
                       type: EventType.allCases[k % EventType.allCases.count], watchMs: UInt32(k * 37 % 20_000),
                       timeMs: now - Int64((k * 7919) % 400_000_000))
        })
        log.close()
        let second = try read(tables: d.interactions, notes: &notes)
        XCTAssertEqual(second.fromTable, first.events)
        XCTAssertEqual(second.events, first.events + 600)
        XCTAssertTrue(notes.contains { $0.contains("it and the 600 after it read in") }, "\(notes)")
        let full = try read(tables: nil, notes: &notes)
        XCTAssertEqual(full.fromTable, 0)
        same(second.interactions, full.interactions, "table + tail vs the whole log")
        XCTAssertEqual(InteractionTable.files(d.interactions, mapping: mapping).map(\.position), [second.events, first.events])
        // The newest table damaged: passed over, the older one and a longer tail give the same.
        let newest = InteractionTable.files(d.interactions, mapping: mapping)[0].path
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: newest))
        bytes[bytes.count / 3] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: newest))
        let third = try read(tables: d.interactions, notes: &notes)
        XCTAssertTrue(notes.contains { $0.contains("passed over: checksum mismatch") }, "\(notes)")
        XCTAssertEqual(third.fromTable, first.events)
        same(third.interactions, full.interactions, "older table + tail")
        // A video whose duration changed in the catalog: the tables read it otherwise, so they are passed over.
        let changedVideo = try XCTUnwrap(try store.videos().first { v in first.interactions.items.raw.contains(v.id) })
        var edited = changedVideo
        edited.durationMs += 1_000
        try store.upsertVideos([edited])
        let afterEdit = try read(tables: d.interactions, notes: &notes)
        XCTAssertEqual(afterEdit.fromTable, 0)
        XCTAssertTrue(notes.contains { $0.contains("changed duration since") }, "\(notes)")
        // The whole log was read and a table written with the new durations; a reset log (another
        // log that has reached the same length) does not take it.
        let newestNow = InteractionTable.files(d.interactions, mapping: mapping)[0]
        XCTAssertEqual(newestNow.position, afterEdit.events)
        let other = Fixtures.tempDir("other-log")
        defer { try? FileManager.default.removeItem(atPath: other) }
        let otherLog = try EventLog(directory: other, access: .append)
        _ = try otherLog.appendSync((0..<Int(afterEdit.events)).map { k in
            EventDraft(user: "x\(k % 5)", video: items[k % items.count], type: .view, watchMs: 1_000, timeMs: now + Int64(k))
        })
        let (none, why) = InteractionTable.newest(in: d.interactions, mapping: mapping, logEnd: otherLog.endId,
                                                  durations: Dictionary(try store.videos().map { ($0.id, $0.durationMs) },
                                                                        uniquingKeysWith: { $1 }),
                                                  fingerprint: { id in (try? otherLog.read(from: id, limit: 1))?.first?.fingerprint })
        otherLog.close()
        XCTAssertNil(none)
        XCTAssertTrue(why.contains { $0.contains("belongs to another log") }, "\(why)")
        // Another mapping: its tables are separate (none yet), the whole log is read.
        mapping.halfLifeDays = nil
        let otherMapping = try read(tables: d.interactions, notes: &notes)
        XCTAssertEqual(otherMapping.fromTable, 0)
        XCTAssertEqual(InteractionTable.files(d.interactions, mapping: mapping).count, 1, "a table of its own")
        // Rescore reads through the table too.
        var c = config()
        c.mapping = mapping
        var lines: [String] = []
        _ = try RescoreJob.run(c) { lines.append($0) }
        XCTAssertTrue(lines.contains { $0.contains("the interaction table covers") }, "\(lines)")
    }

    /// The table's format: a round trip, every truncation rejected.
    func testTheInteractionTableFormat() throws {
        var h = EventHistory(mapping: EventMapping())
        for (k, t) in [EventType.view, .like, .skip, .complete].enumerated() {
            h.add(Event(id: UInt64(k), draft: EventDraft(user: "u\(k % 2)", video: "v\(k % 3)", type: t, watchMs: 500, timeMs: Int64(k))),
                  duration: 1_000)
        }
        let bytes = InteractionTable.encode(h, position: 4, logFingerprint: 77, durations: ["v0": 1_000, "v1": 1_000, "v2": 1_000])
        let back = try InteractionTable.decode(bytes, mapping: EventMapping())
        XCTAssertEqual(back.position, 4)
        XCTAssertEqual(back.logFingerprint, 77)
        XCTAssertEqual(back.durations, ["v0": 1_000, "v1": 1_000, "v2": 1_000])
        XCTAssertEqual(back.history.dictionary, h.dictionary)
        XCTAssertEqual(back.history.newestTimeMs, h.newestTimeMs)
        for n in stride(from: 0, to: bytes.count, by: 3) {
            XCTAssertThrowsError(try InteractionTable.decode(Array(bytes.prefix(n)), mapping: EventMapping()), "prefix \(n)")
        }
    }
}
