import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Interactions
import EventLog
import CandidateStore

/// Synthetic people with known tastes using the real HTTP API: each fetches feed pages, reacts
/// to every clip on them by the behaviour model below and posts what it did, at a chosen rate.
///
/// Behaviour model (the one the world's past sessions were generated with): a clip matches when
/// its topic is one the person likes. A clip that does not match is skipped with probability
/// 0.6 after 5-35 % of it; otherwise it is viewed: 55-100 % of a matching clip (a completion
/// when 95 % or more), 5-35 % of another; a matching clip is liked with probability 0.25 and
/// shared with 0.05; a non-matching one hidden with 0.05.
public struct SimulationConfig: Sendable {
    public var baseURL: String
    /// People: world users "0" ..< users.
    public var users = 1_000
    public var seconds = 60.0
    /// Feed pages fetched per second, all people together.
    public var pagesPerSecond = 20.0
    public var concurrency = 8
    public var pageSize = 10
    /// Pages a session scrolls through (with the cursor) before the person leaves.
    public var pagesPerSession = 3
    public var seed: UInt64 = 1
    public init(baseURL: String) { self.baseURL = baseURL }
}

public struct SimulationResult: Sendable {
    public var pages = 0
    public var videos = 0
    public var events = 0
    public var errors = 0
    public var firstError: String?
    /// Served videos per (experiment/variant, or "-" outside experiments).
    public var servedByVariant: [String: Int] = [:]
    public var seconds = 0.0
}

public enum Behaviour {
    public struct Reaction: Sendable, Equatable {
        public var type: EventType
        public var watchMs: Int
    }

    public static func react(topic: String, durationMs: Int, liked: Set<String>, using g: inout SeededGenerator) -> [Reaction] {
        let match = liked.contains(topic)
        let dur = max(1, durationMs)
        let frac = match ? min(1, 0.55 + 0.5 * g.unit()) : 0.05 + 0.3 * g.unit()
        let watch = Int(Double(dur) * frac)
        if !match && g.unit() < 0.6 { return [Reaction(type: .skip, watchMs: watch)] }
        var out = [Reaction(type: .view, watchMs: watch)]
        if frac >= 0.95 { out.append(Reaction(type: .complete, watchMs: dur)) }
        if match && g.unit() < 0.25 { out.append(Reaction(type: .like, watchMs: 0)) }
        if match && g.unit() < 0.05 { out.append(Reaction(type: .share, watchMs: 0)) }
        if !match && g.unit() < 0.05 { out.append(Reaction(type: .hide, watchMs: 0)) }
        return out
    }
}

public final class Simulator: @unchecked Sendable {
    let config: SimulationConfig
    let liked: [String: Set<String>]
    let token: @Sendable (String) -> String
    private let lock = NSLock()
    private var result = SimulationResult()

    /// `liked`: each person's liked topics; `token`: a bearer token for a user id.
    public init(config: SimulationConfig, liked: [String: [String]], token: @escaping @Sendable (String) -> String) {
        self.config = config
        self.liked = liked.mapValues(Set.init)
        self.token = token
    }

    func record(_ f: (inout SimulationResult) -> Void) {
        lock.lock(); f(&result); lock.unlock()
    }

    func request(_ method: String, _ path: String, user: String, body: Data? = nil) async throws -> (Int, Data) {
        var r = URLRequest(url: URL(string: config.baseURL + path)!)
        r.httpMethod = method
        r.setValue("Bearer " + token(user), forHTTPHeaderField: "Authorization")
        if let body {
            r.httpBody = body
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        r.timeoutInterval = 10
        let (data, response) = try await URLSession.shared.data(for: r)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    /// Runs until `seconds` passed (or `cancelled()` says stop); `progress` gets a line every ~5 s.
    public func run(cancelled: @escaping @Sendable () -> Bool = { false },
                    progress: @escaping @Sendable (String) -> Void = { _ in }) async -> SimulationResult {
        let start = Date()
        let perWorker = config.pagesPerSecond / Double(max(1, config.concurrency))
        await withTaskGroup(of: Void.self) { group in
            for w in 0..<max(1, config.concurrency) {
                group.addTask { await self.worker(w, start: start, interval: 1 / max(perWorker, 1e-6), cancelled: cancelled) }
            }
            group.addTask {
                var last = Date()
                while Date().timeIntervalSince(start) < self.config.seconds && !cancelled() {
                    try? await Task.sleep(nanoseconds: 250_000_000)
                    if Date().timeIntervalSince(last) >= 5 {
                        last = Date()
                        let r = self.snapshot()
                        progress(String(format: "simulate: %.0fs/%.0fs  %d pages, %d videos, %d events, %d errors", Date().timeIntervalSince(start),
                                        self.config.seconds, r.pages, r.videos, r.events, r.errors))
                    }
                }
            }
        }
        record { $0.seconds = Date().timeIntervalSince(start) }
        return snapshot()
    }

    func snapshot() -> SimulationResult {
        lock.lock(); defer { lock.unlock() }
        return result
    }

    func worker(_ w: Int, start: Date, interval: Double, cancelled: @Sendable () -> Bool) async {
        var g = SeededGenerator(seed: config.seed, stream: UInt64(w))
        var next = Date()
        while Date().timeIntervalSince(start) < config.seconds && !cancelled() {
            let user = "\(Int(g.next() % UInt64(max(1, config.users))))"
            let taste = liked[user] ?? []
            var cursor: String?
            for _ in 0..<config.pagesPerSession {
                let wait = next.timeIntervalSinceNow
                if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                next = max(next, Date().addingTimeInterval(-interval)).addingTimeInterval(interval)
                if Date().timeIntervalSince(start) >= config.seconds || cancelled() { return }
                var path = "/api/v1/foryou?limit=\(config.pageSize)"
                if let c = cursor { path += "&cursor=" + c }
                do {
                    let (status, data) = try await request("GET", path, user: user)
                    guard status == 200, let page = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                          let videos = page["videos"] as? [[String: Any]] else {
                        record { $0.errors += 1; $0.firstError = $0.firstError ?? "GET \(path): HTTP \(status)" }
                        break
                    }
                    var events: [[String: Any]] = []
                    var served: [String: Int] = [:]
                    for v in videos {
                        guard let id = v["id"] as? String else { continue }
                        let key = (v["experiment"] as? String).map { "\($0)/\(v["variant"] as? String ?? "?")" } ?? "-"
                        served[key, default: 0] += 1
                        for r in Behaviour.react(topic: v["topic"] as? String ?? "", durationMs: v["duration_ms"] as? Int ?? 0,
                                                 liked: taste, using: &g) {
                            events.append(["video_id": id, "type": r.type.name, "watch_ms": r.watchMs])
                        }
                    }
                    if !events.isEmpty {
                        for chunk in stride(from: 0, to: events.count, by: 100) {
                            let body = try JSONSerialization.data(withJSONObject: ["events": Array(events[chunk..<min(events.count, chunk + 100)])])
                            let (st, d) = try await request("POST", "/api/v1/events:batch", user: user, body: body)
                            if st != 202 {
                                record { $0.errors += 1; $0.firstError = $0.firstError ?? "POST events: HTTP \(st) \(String(decoding: d, as: UTF8.self))" }
                            }
                        }
                    }
                    record {
                        $0.pages += 1
                        $0.videos += videos.count
                        $0.events += events.count
                        for (k, n) in served { $0.servedByVariant[k, default: 0] += n }
                    }
                    cursor = page["next_cursor"] as? String
                    if cursor == nil { break }
                } catch {
                    record { $0.errors += 1; $0.firstError = $0.firstError ?? "\(error)" }
                    break
                }
            }
        }
    }
}
