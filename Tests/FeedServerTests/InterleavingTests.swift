import XCTest
import Foundation
@testable import FeedServer
import CandidateStore
import EventLog
import TestSupport

final class InterleavingTests: XCTestCase {
    /// Team draft against its definition, for many coins: every pick is the picking team's best
    /// item not yet taken; the team that picks is the one behind, or either when level; nothing
    /// repeats; and each side goes first about half the time.
    func testTeamDraftFollowsItsDefinition() {
        let a = [1, 2, 3, 4, 5, 6, 7, 8], b = [2, 9, 1, 10, 3, 11, 12, 13]
        var firstA = 0
        for seed in UInt64(0)..<2_000 {
            let merged = TeamDraft.merge(a, b, count: 10, seed: seed)
            XCTAssertEqual(merged.count, 10)
            XCTAssertEqual(Set(merged.map(\.item)).count, 10, "no repeats")
            var taken = Set<Int>(), picks = [0, 0]
            for (item, team) in merged {
                let list = team == 0 ? a : b
                XCTAssertEqual(item, list.first { !taken.contains($0) }, "seed \(seed): the team's best remaining item")
                XCTAssertLessThanOrEqual(picks[team], picks[1 - team], "seed \(seed): only the team behind (or level) picks")
                taken.insert(item)
                picks[team] += 1
            }
            if merged[0].team == 0 { firstA += 1 }
        }
        XCTAssertEqual(Double(firstA) / 2_000, 0.5, accuracy: 0.05, "a fair coin decides who goes first")
        // Identical lists: the merge is the list itself, drafted in pairs (one of each team per pair).
        let same = TeamDraft.merge([5, 6, 7, 8], [5, 6, 7, 8], count: 4, seed: 7)
        XCTAssertEqual(same.map(\.item), [5, 6, 7, 8])
        XCTAssertEqual(Set(same[0..<2].map(\.team)), [0, 1])
        XCTAssertEqual(Set(same[2..<4].map(\.team)), [0, 1])
        // One side exhausted: the other fills.
        XCTAssertEqual(TeamDraft.merge([1], [2, 3, 4], count: 4, seed: 1).map(\.item).sorted(), [1, 2, 3, 4])
    }

    /// Through the real server: under an interleaving test every page drafts from both variants'
    /// lists (balanced within one per page, labelled with the variant), paging never repeats a
    /// video, a retried cursor gets the same page, and each page is an exposure with its teams.
    func testInterleavedPagesDraftFromBothListsAndAreLogged() async throws {
        let dir = Fixtures.tempDir("interleave")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try World.make(dir, videos: 80, lists: ["zoe": Array(0..<40)])
        let gA = try store.generations().first!.id
        let gB = try store.writeGeneration(model: "pop", runId: "r2", items: (0..<80).map { "v\($0)" },
                                           lists: [(user: "zoe", items: (40..<80).reversed().map(Int32.init),
                                                    scores: (0..<40).map { Float(100 - $0) })], activate: false)
        _ = try store.createExperiment(name: "ab-x", variants: [.init(name: "als", generation: gA, weight: 1),
                                                                 .init(name: "pop", generation: gB, weight: 1)], kind: .interleave, primary: nil)
        try store.startExperiment("ab-x", at: Int64(Date().timeIntervalSince1970 * 1000))
        var c = FeedServerConfig()
        c.dataDir = dir
        c.explorationShare = 0
        let s = try await LiveServer(config: c)
        let t = s.token("zoe")
        var cursor: String? = nil
        var served: [String] = []
        for _ in 0..<4 {
            let path = "/api/v1/foryou?limit=10" + (cursor.map { "&cursor=" + $0 } ?? "")
            let r = try await s.client.get(path, token: t)
            XCTAssertEqual(r.status, 200)
            let videos = r.json["videos"] as! [[String: Any]]
            XCTAssertEqual(videos.count, 10)
            let teams = videos.map { $0["variant"] as! String }
            XCTAssertLessThanOrEqual(abs(teams.filter { $0 == "als" }.count - teams.filter { $0 == "pop" }.count), 1, "\(teams)")
            XCTAssertEqual(Set(teams), ["als", "pop"])
            for v in videos {
                let id = Int((v["id"] as! String).dropFirst())!
                XCTAssertEqual(v["variant"] as? String, id < 40 ? "als" : "pop", "each item is labelled with the list it came from")
                XCTAssertEqual(v["experiment"] as? String, "ab-x")
            }
            // A retried cursor gets the same page (without a cursor a request starts a new session: new coins).
            let again = try await s.client.get(path, token: t)
            if cursor != nil {
                XCTAssertEqual((again.json["videos"] as! [[String: Any]]).map { $0["id"] as! String }, videos.map { $0["id"] as! String })
            }
            served += videos.map { $0["id"] as! String }
            cursor = r.json["next_cursor"] as? String
        }
        XCTAssertEqual(Set(served).count, served.count, "no video twice")
        // Both lists are followed in order: A's picks are v0, v1, ...; B's v79, v78, ...
        let fromA = served.filter { Int($0.dropFirst())! < 40 }, fromB = served.filter { Int($0.dropFirst())! >= 40 }
        XCTAssertEqual(fromA, (0..<fromA.count).map { "v\($0)" })
        XCTAssertEqual(fromB, (0..<fromB.count).map { "v\(79 - $0)" })
        // Exposures reach their log (appended after each answer: wait for them).
        var exposures: [Exposure] = []
        for _ in 0..<100 {
            let log = try EventLog(directory: DataDirectory(dir).exposures)
            exposures = try Exposure.read(log, experiment: "ab-x")
            log.close()
            if exposures.count >= 8 { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        await s.stop()
        XCTAssertEqual(exposures.count, 8, "4 pages, each retried once")
        XCTAssertTrue(exposures.allSatisfy { $0.user == "zoe" && $0.variant == Experiment.interleaved && $0.videos.count == 10 && !$0.error })
        for x in exposures {
            XCTAssertEqual(x.teams, x.videos.map { Int($0.dropFirst())! < 40 ? 0 : 1 })
        }
        XCTAssertEqual(Set(exposures.flatMap(\.videos)), Set(served))
    }

    /// A user with no list in one side's generation: that side is empty (the other drafts
    /// alone), never the live list relabelled.
    func testASideWithoutTheUsersListStaysEmpty() async throws {
        let dir = Fixtures.tempDir("interleave-missing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try World.make(dir, videos: 80, lists: ["kim": Array(0..<40)])  // live: kim has a list
        let live = try store.generations().first!.id
        let other = try store.writeGeneration(model: "pop", runId: "r2", items: (0..<80).map { "v\($0)" },
                                              lists: [(user: "zoe", items: [1, 2], scores: [2, 1])], activate: false)
        _ = try store.createExperiment(name: "x", variants: [.init(name: "old", generation: other, weight: 1),
                                                              .init(name: "new", generation: live, weight: 1)], kind: .interleave, primary: nil)
        try store.startExperiment("x", at: Int64(Date().timeIntervalSince1970 * 1000))
        var c = FeedServerConfig()
        c.dataDir = dir
        c.explorationShare = 0
        let s = try await LiveServer(config: c)
        let t = s.token("kim")
        var cursor: String? = nil
        var served: [String] = []
        for _ in 0..<3 {
            let r = try await s.client.get("/api/v1/foryou?limit=10" + (cursor.map { "&cursor=" + $0 } ?? ""), token: t)
            let videos = r.json["videos"] as! [[String: Any]]
            XCTAssertEqual(Set(videos.map { $0["variant"] as! String }), ["new"], "only the side with kim's list drafts")
            served += videos.map { $0["id"] as! String }
            cursor = r.json["next_cursor"] as? String
        }
        await s.stop()
        XCTAssertEqual(served, (0..<30).map { "v\($0)" })
    }
}
