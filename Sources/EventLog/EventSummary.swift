import Foundation

/// Counts over a stream of events (`foryou events stats`): by type, distinct users and videos,
/// and the time range.
public struct EventSummary: Sendable {
    public private(set) var events = 0
    public private(set) var byType: [EventType: Int] = [:]
    public private(set) var users = Set<String>()
    public private(set) var videos = Set<String>()
    public private(set) var firstTimeMs: Int64?
    public private(set) var lastTimeMs: Int64?

    public init() {}

    public mutating func add(_ e: Event) {
        events += 1
        byType[e.type, default: 0] += 1
        users.insert(e.user)
        videos.insert(e.video)
        firstTimeMs = min(firstTimeMs ?? e.timeMs, e.timeMs)
        lastTimeMs = max(lastTimeMs ?? e.timeMs, e.timeMs)
    }
}
