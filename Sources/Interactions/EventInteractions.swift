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
        var weight: [String: [String: (Float, Int64, Bool)]] = [:]
        try log.forEach(from: 0) { e in
            let w = mapping.weight(of: e, duration: durations[e.video] ?? 0)
            let neg = e.type == .skip || e.type == .hide
            var cur = weight[e.user]?[e.video] ?? (0, e.timeMs, false)
            cur.0 += w
            cur.1 = max(cur.1, e.timeMs)
            cur.2 = cur.2 || neg
            weight[e.user, default: [:]][e.video] = cur
        }
        var out = Interactions()
        var times: [Int64] = []
        for user in weight.keys.sorted() {
            let u = out.users.index(inserting: user)
            for (video, w) in weight[user]!.sorted(by: { $0.key < $1.key }) {
                if mapping.dropNegatives && w.2 { continue }
                if w.0 <= 0 { continue }
                out.userIndex.append(u)
                out.itemIndex.append(out.items.index(inserting: video))
                out.weights.append(w.0)
                times.append(w.1)
            }
        }
        out.timestamps = times
        return out
    }
}
