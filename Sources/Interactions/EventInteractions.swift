import Foundation
import EventLog

/// How events become ALS interactions: per (user, video) the weights of its events are summed,
/// then the training confidence scheme applies (`Confidence`). Defaults: a view counts its
/// watched fraction (0-1), a completion 1, a like 2, a share 3; skips and hides mark the pair
/// as negative evidence and drop it from the positives (issue 5 refines this).
public struct EventMapping: Sendable, Equatable {
    public var view: Float = 1
    public var complete: Float = 1
    public var like: Float = 2
    public var share: Float = 3
    /// Pairs with a skip or hide are dropped from the training positives.
    public var dropNegatives = true

    public init() {}

    /// The weight one event adds to its (user, video) pair.
    public func weight(of e: Event, duration: Int) -> Float {
        switch e.type {
        case .view: return view * (duration > 0 ? min(1, Float(e.watchMs) / Float(duration)) : 0.5)
        case .complete: return complete
        case .like: return like
        case .share: return share
        case .skip, .hide: return 0
        }
    }

    public static func fromLog(_ log: EventLog, durations: [String: Int], mapping: EventMapping = EventMapping()) throws -> Interactions {
        var history = EventHistory(mapping: mapping)
        try log.forEach(from: 0) { history.add($0, duration: durations[$0.video] ?? 0) }
        var out = Interactions()
        var times: [Int64] = []
        for user in history.pairs.keys.sorted() {
            let u = out.users.index(inserting: user)
            for (video, pair) in history.pairs[user]!.sorted(by: { $0.key < $1.key }) where history.isPositive(pair) {
                out.userIndex.append(u)
                out.itemIndex.append(out.items.index(inserting: video))
                out.weights.append(pair.weight)
                times.append(pair.lastTimeMs)
            }
        }
        out.timestamps = times
        return out
    }
}

/// Per (user, video): the summed event weight, the latest event time and whether a skip or hide
/// was seen. Built by the trainer from the whole log and kept up to date by the ranking worker,
/// so both read events the same way.
public struct EventHistory: Sendable {
    public struct Pair: Sendable, Equatable {
        public var weight: Float
        public var lastTimeMs: Int64
        public var negative: Bool
    }

    public let mapping: EventMapping
    public private(set) var pairs: [String: [String: Pair]] = [:]

    public init(mapping: EventMapping = EventMapping()) { self.mapping = mapping }

    public mutating func add(_ e: Event, duration: Int) {
        let w = mapping.weight(of: e, duration: duration)
        var p = pairs[e.user]?[e.video] ?? Pair(weight: 0, lastTimeMs: e.timeMs, negative: false)
        p.weight += w
        p.lastTimeMs = max(p.lastTimeMs, e.timeMs)
        p.negative = p.negative || e.type == .skip || e.type == .hide
        pairs[e.user, default: [:]][e.video] = p
    }

    /// Whether the pair is a training positive under the mapping.
    public func isPositive(_ p: Pair) -> Bool { !(mapping.dropNegatives && p.negative) && p.weight > 0 }
}
