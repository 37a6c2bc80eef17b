import Foundation
import EventLog

/// How events become ALS interactions. Per (user, video) the signed weights of its events are
/// summed (optionally decayed by age), then the training confidence scheme applies
/// (`Confidence`): a positive sum is an observed positive with confidence `1 + alpha f(sum)`; a
/// negative sum, under `.penalize`, an explicit negative (preference 0 with that confidence).
///
/// Positive weights (`EventWeights.training` by default): a view counts its watched fraction (0-1),
/// a completion 1, a like 2, a share 3. Skips and hides are negative evidence; `negatives` says how
/// they enter (see `Negatives`). The choice of default is measured by `foryou study-mapping`
/// (scripts/study-mapping).
public struct EventMapping: Sendable, Equatable {
    public enum Negatives: String, Sendable, CaseIterable, Codable {
        /// A skip or hide subtracts `skip`/`hide` from the pair; a net negative pair is trained
        /// towards preference 0 with a confidence above an unobserved pair's (what `implicit`
        /// does with negative values).
        case penalize
        /// A pair with any skip or hide is left out of the positives (but still counts as seen).
        case drop
        /// Skips count as views of the watched fraction; hides are ignored.
        case ignore
    }

    /// Weight per event type; defaults: `EventWeights.training` (EventLog), the one table.
    public var weights: EventWeights = .training
    public var negatives: Negatives = .penalize
    public var view: Float { get { weights.view } set { weights.view = newValue } }
    public var complete: Float { get { weights.complete } set { weights.complete = newValue } }
    public var like: Float { get { weights.like } set { weights.like = newValue } }
    public var share: Float { get { weights.share } set { weights.share = newValue } }
    /// Strength of one skip / one hide under `.penalize`.
    public var skip: Float { get { weights.skip } set { weights.skip = newValue } }
    public var hide: Float { get { weights.hide } set { weights.hide = newValue } }
    /// Each event's weight halves every `halfLifeDays` before the newest event in the log
    /// (nil: no decay).
    public var halfLifeDays: Double?

    public init() {}

    /// The signed weight one event adds to its (user, video) pair, before decay.
    public func weight(of e: Event, duration: Int) -> Float {
        let fraction = duration > 0 ? min(1, Float(e.watchMs) / Float(duration)) : 0.5
        switch e.type {
        case .view: return view * fraction
        case .complete: return complete
        case .like: return like
        case .share: return share
        case .skip:
            switch negatives {
            case .penalize: return -skip
            case .drop: return 0
            case .ignore: return view * fraction
            }
        case .hide: return negatives == .penalize ? -hide : 0
        }
    }

    /// Interactions from the whole log: positives, and explicit negatives as negative weights.
    public static func fromLog(_ log: EventSource, durations: [String: Int], mapping: EventMapping = EventMapping(),
                               until timeMs: Int64? = nil) throws -> Interactions {
        try counted(log, durations: durations, mapping: mapping, until: timeMs).interactions
    }

    /// The same, with how many events were read.
    public static func counted(_ log: EventSource, durations: [String: Int], mapping: EventMapping = EventMapping(),
                               until timeMs: Int64? = nil) throws -> (interactions: Interactions, events: UInt64) {
        var history = EventHistory(mapping: mapping)
        let n = try log.forEachEvent { e in
            if let t = timeMs, e.timeMs >= t { return }
            history.add(e, duration: durations[e.video] ?? 0)
        }
        return (history.interactions(), n)
    }
}

/// Per (user, video): the summed signed event weight (decayed to the pair's newest event), the
/// latest event time and whether a skip or hide was seen. Built by the trainer from the whole log
/// and kept up to date by the ranking worker, so both read events the same way.
public struct EventHistory: Sendable {
    public struct Pair: Sendable, Equatable {
        /// Sum of the pair's event weights, each decayed to `lastTimeMs`.
        public var weight: Double
        public var lastTimeMs: Int64
        public var negative: Bool
        public init(weight: Double, lastTimeMs: Int64, negative: Bool) {
            self.weight = weight; self.lastTimeMs = lastTimeMs; self.negative = negative
        }
    }

    public let mapping: EventMapping
    public private(set) var pairs: [String: [String: Pair]] = [:]
    /// The newest event time added: the reference time decay is measured from.
    public private(set) var newestTimeMs: Int64 = .min

    public init(mapping: EventMapping = EventMapping()) { self.mapping = mapping }

    /// A history as stored (`InteractionTable`).
    public init(mapping: EventMapping, pairs: [String: [String: Pair]], newestTimeMs: Int64) {
        self.mapping = mapping
        self.pairs = pairs
        self.newestTimeMs = newestTimeMs
    }

    private func decay(_ ms: Int64) -> Double {
        guard let h = mapping.halfLifeDays, h > 0, ms > 0 else { return 1 }
        return Foundation.exp2(-Double(ms) / (h * 86_400_000))
    }

    public mutating func add(_ e: Event, duration: Int) {
        let w = Double(mapping.weight(of: e, duration: duration))
        newestTimeMs = max(newestTimeMs, e.timeMs)
        if var p = pairs[e.user]?[e.video] {
            if e.timeMs >= p.lastTimeMs {
                p.weight = p.weight * decay(e.timeMs - p.lastTimeMs) + w
                p.lastTimeMs = e.timeMs
            } else {
                p.weight += w * decay(p.lastTimeMs - e.timeMs)
            }
            p.negative = p.negative || e.type == .skip || e.type == .hide
            pairs[e.user]![e.video] = p
        } else {
            pairs[e.user, default: [:]][e.video] = Pair(weight: w, lastTimeMs: e.timeMs,
                                                       negative: e.type == .skip || e.type == .hide)
        }
    }

    /// The pair's training weight now (decayed to `newestTimeMs`): positive for a positive,
    /// negative for an explicit negative, nil when the pair does not train.
    public func trainingWeight(_ p: Pair) -> Float? {
        if mapping.negatives == .drop && p.negative { return nil }
        let w = Float(p.weight * decay(newestTimeMs - p.lastTimeMs))
        if w > 0 { return w }
        if w < 0 && mapping.negatives == .penalize { return w }
        return nil
    }

    /// Every training pair, users and videos indexed in sorted order (deterministic).
    public func interactions() -> Interactions {
        var out = Interactions()
        var times: [Int64] = []
        for user in pairs.keys.sorted() {
            let u = out.users.index(inserting: user)
            for (video, pair) in pairs[user]!.sorted(by: { $0.key < $1.key }) {
                guard let w = trainingWeight(pair) else { continue }
                out.userIndex.append(u)
                out.itemIndex.append(out.items.index(inserting: video))
                out.weights.append(w)
                times.append(pair.lastTimeMs)
            }
        }
        out.timestamps = times
        return out
    }
}

extension EventMapping {
    /// The mapping as run-record parameters, so whoever folds users into a model (the ranking
    /// worker) reads events exactly as its training did.
    public var params: [String: String] {
        var p = ["negatives": negatives.rawValue, "w_view": "\(view)", "w_complete": "\(complete)", "w_like": "\(like)",
                 "w_share": "\(share)", "w_skip": "\(skip)", "w_hide": "\(hide)"]
        if let h = halfLifeDays { p["half_life_days"] = "\(h)" }
        return p
    }

    /// The mapping recorded in `params`; defaults for what is absent (models trained before
    /// the mapping was recorded used `.drop`).
    public init(params: [String: String]) {
        self.init()
        negatives = params["negatives"].flatMap(Negatives.init(rawValue:)) ?? .drop
        func f(_ key: String, _ into: inout Float) { if let v = params[key].flatMap(Float.init) { into = v } }
        f("w_view", &view); f("w_complete", &complete); f("w_like", &like); f("w_share", &share)
        f("w_skip", &skip); f("w_hide", &hide)
        halfLifeDays = params["half_life_days"].flatMap(Double.init)
    }
}

extension Confidence {
    /// The confidence recorded in a run's parameters (`confidence`, `alpha`), if any.
    public init?(params: [String: String]) {
        guard let s = params["confidence"].flatMap(Scheme.init(rawValue:)), let a = params["alpha"].flatMap(Float.init) else {
            return nil
        }
        self.init(scheme: s, alpha: a)
    }
}
