import Foundation

/// What the feed server served under an experiment: one record per page, written by the server
/// (not the client), so a report's denominators count what people were shown, not what their
/// client reported, and so the server's own health per variant (fallback share, latency, errors)
/// can be compared.
///
/// Exposures go to a log of their own (the data directory's `exposures/`, or the topic
/// `<events topic>.exposures` on Kafka), never to the event log: training, the ranking worker and
/// the feed's seen sets read only what people did. Each is stored as one record of the event log
/// format (same segments, checksums and group-commit fsync), the exposure as compact JSON in the
/// record's `extra` field. The server appends them after answering, without waiting: an exposure
/// lost to a crash loses one page's denominator, never an acknowledged event.
public struct Exposure: Codable, Sendable, Equatable {
    public var user: String
    /// Milliseconds since the Unix epoch.
    public var timeMs: Int64
    public var experiment: String
    /// The user's variant (an A/B test) or `interleaved`.
    public var variant: String
    /// The served video ids, in page order (empty for a failed request).
    public var videos: [String]
    /// Under an interleaving test, per video: the team (0 = the first variant, 1 = the second)
    /// whose list supplied it, or -1 (fresh upload or trending).
    public var teams: [Int]?
    /// How many of `videos` came from the trending fallback.
    public var fallback: Int
    /// Time to build and encode the page, microseconds.
    public var latencyUs: Int
    /// The request failed (a 5xx): nothing was served.
    public var error: Bool

    public init(user: String, timeMs: Int64, experiment: String, variant: String, videos: [String], teams: [Int]? = nil,
                fallback: Int = 0, latencyUs: Int = 0, error: Bool = false) {
        self.user = user; self.timeMs = timeMs; self.experiment = experiment; self.variant = variant; self.videos = videos
        self.teams = teams; self.fallback = fallback; self.latencyUs = latencyUs; self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case experiment = "exp", variant = "var", videos = "v", teams = "t", fallback = "fb", latencyUs = "us", error = "err"
        case user = "u", timeMs = "ms"
    }

    /// The record the exposure is stored as.
    public var draft: EventDraft {
        let json = (try? Self.encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return EventDraft(user: user, video: "", type: .view, watchMs: 0, timeMs: timeMs, extra: json)
    }

    /// The exposure a record holds; nil when it is not one.
    public init?(record e: Event) {
        guard e.video.isEmpty, let x = try? JSONDecoder().decode(Exposure.self, from: Data(e.draft.extra.utf8)) else { return nil }
        self = x
    }

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    /// Every exposure of `experiment` in a source (an exposure log).
    public static func read(_ source: EventSource, experiment: String) throws -> [Exposure] {
        var out: [Exposure] = []
        try source.forEachRetainedEvent { e in
            if let x = Exposure(record: e), x.experiment == experiment { out.append(x) }
        }
        return out
    }
}
