import Foundation
import Hummingbird
import FeedServer
import CandidateStore
import EventLog
import TestSupport

/// The real feed server, in-process, on a free loopback port.
final class LiveServer: @unchecked Sendable {
    let service: FeedService
    let client: HTTPClient
    private let task: Task<Void, Error>

    init(config: FeedServerConfig, store: (any FeedStore)? = nil) async throws {
        var c = config
        c.port = 0
        c.host = "127.0.0.1"
        service = try FeedService(config: c, store: store)
        final class PortBox: @unchecked Sendable { var port = 0 }
        let box = PortBox()
        let app = buildApplication(service) { p in box.port = p }
        task = Task { try await app.run() }
        let deadline = Date().addingTimeInterval(20)
        while box.port == 0 && Date() < deadline { try await Task.sleep(nanoseconds: 5_000_000) }
        guard box.port > 0 else { throw CancellationError() }
        client = HTTPClient(port: box.port)
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        service.stop()
    }

    func token(_ user: String, ttl: Int64 = 3600) -> String { service.issueToken(user: user, ttlSeconds: ttl) }
}

/// A data directory with a catalog and a live generation.
enum World {
    /// Videos v0..v(n-1); topic and creator cycle through `topics` values so lists are diverse.
    static func make(_ dir: String, videos: Int = 60, topics: Int = 12, lists: [String: [Int]]) throws -> SQLiteFeedStore {
        let store = try DataDirectory(dir).openStore()
        try fill(store, videos: videos, topics: topics, lists: lists)
        return store
    }

    /// The same catalog and live generation in any store.
    static func fill(_ store: any FeedStore, videos: Int = 60, topics: Int = 12, lists: [String: [Int]]) throws {
        let old = Int64(Date().timeIntervalSince1970 * 1000) - 30 * 86_400_000
        try store.upsertVideos((0..<videos).map {
            Video(id: "v\($0)", caption: "clip \($0)", topic: "t\($0 % topics)", creator: "c\($0 % topics)", durationMs: 10_000,
                  status: .ready, streamURL: "/media/v\($0)/master.m3u8", createdAt: old + Int64($0))
        })
        let items = (0..<videos).map { "v\($0)" }
        _ = try store.writeGeneration(model: "als", runId: "r1", items: items,
                                      lists: lists.sorted { $0.key < $1.key }.map { (user: $0.key, items: $0.value.map(Int32.init),
                                                                                      scores: $0.value.map { Float(1000 - $0) }) },
                                      activate: true)
    }
}
