import Foundation
import Checksum

/// What a person did with a video, as the feed reports it.
public enum EventType: UInt8, Sendable, CaseIterable, Codable {
    case view = 1, complete = 2, like = 3, share = 4, skip = 5, hide = 6

    public var name: String {
        switch self {
        case .view: "view"; case .complete: "complete"; case .like: "like"
        case .share: "share"; case .skip: "skip"; case .hide: "hide"
        }
    }

    public init?(name: String) {
        guard let t = EventType.allCases.first(where: { $0.name == name }) else { return nil }
        self = t
    }
}

/// How much one event of each type counts: the one place event weights are written down, as one
/// named table per purpose. The two purposes weigh events differently on purpose, so they are two
/// tables, not one:
/// - `trending`: the feed server's popularity score (`FeedServer`'s `Trending`). Every weight is
///   a count of attention, never negative; a skip or a hide adds nothing (it still counts as an
///   event for the fresh-upload pool and marks the video seen).
/// - `training`: the defaults of the mapping from events to training interactions
///   (`Interactions.EventMapping`, which runs can override and record in their parameters). A
///   view's weight is per watched fraction (0-1); `skip` and `hide` are the strength of negative
///   evidence, subtracted from the pair's sum under the `penalize` rule.
public struct EventWeights: Sendable, Equatable {
    public var view: Float
    public var complete: Float
    public var like: Float
    public var share: Float
    public var skip: Float
    public var hide: Float

    public init(view: Float, complete: Float, like: Float, share: Float, skip: Float, hide: Float) {
        self.view = view
        self.complete = complete
        self.like = like
        self.share = share
        self.skip = skip
        self.hide = hide
    }

    /// The weight of one event of type `t`.
    public subscript(_ t: EventType) -> Float {
        switch t {
        case .view: view; case .complete: complete; case .like: like
        case .share: share; case .skip: skip; case .hide: hide
        }
    }

    /// A video's trending score: a view 1, a completion 2, a like 3, a share 4; skips and hides 0.
    public static let trending = EventWeights(view: 1, complete: 2, like: 3, share: 4, skip: 0, hide: 0)

    /// Training interactions by default: a view 1 per watched fraction, a completion 1, a like 2,
    /// a share 3; a skip subtracts 1 and a hide 4 (under `penalize`). The choice is measured by
    /// `foryou study-mapping` (scripts/study-mapping).
    public static let training = EventWeights(view: 1, complete: 1, like: 2, share: 3, skip: 1, hide: 4)
}

/// An event before it is appended: the log assigns its id.
public struct EventDraft: Sendable, Equatable {
    public var user: String
    public var video: String
    public var type: EventType
    public var watchMs: UInt32
    /// Milliseconds since the Unix epoch.
    public var timeMs: Int64
    /// Client-supplied key that makes retries safe (empty = none).
    public var idempotencyKey: String
    /// Free-form annotations (experiment, variant, ...) as compact JSON; empty = none.
    public var extra: String

    public init(user: String, video: String, type: EventType, watchMs: UInt32 = 0, timeMs: Int64,
                idempotencyKey: String = "", extra: String = "") {
        self.user = user
        self.video = video
        self.type = type
        self.watchMs = watchMs
        self.timeMs = timeMs
        self.idempotencyKey = idempotencyKey
        self.extra = extra
    }
}

/// An event in the log: its id is its position (0, 1, 2, ...).
public struct Event: Sendable, Equatable {
    public var id: UInt64
    public var draft: EventDraft

    public init(id: UInt64, draft: EventDraft) {
        self.id = id
        self.draft = draft
    }

    /// A digest of the whole record (id and every field): what checkpoints of a log (serving
    /// snapshots, interaction tables) store of the last event they cover, so a checkpoint is
    /// never applied to another log (one reset, or restored from an older backup).
    public var fingerprint: UInt64 {
        var out: [UInt8] = []
        EventCodec.encode(id: id, draft, into: &out)
        return out.withUnsafeBytes { FNV64.digest($0) }
    }

    public var user: String { draft.user }
    public var video: String { draft.video }
    public var type: EventType { draft.type }
    public var watchMs: UInt32 { draft.watchMs }
    public var timeMs: Int64 { draft.timeMs }
}

/// Binary payload of one record (version 1):
///   u8 version | u64 id | i64 timeMs | u8 type | u32 watchMs |
///   (u16 length + UTF-8 bytes) x 4: user, video, idempotency key, extra
enum EventCodec {
    static let version: UInt8 = 1
    static let maxField = Int(UInt16.max)

    static func encode(id: UInt64, _ d: EventDraft, into out: inout [UInt8]) {
        out.append(version)
        withUnsafeBytes(of: id.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: d.timeMs.littleEndian) { out.append(contentsOf: $0) }
        out.append(d.type.rawValue)
        withUnsafeBytes(of: d.watchMs.littleEndian) { out.append(contentsOf: $0) }
        for s in [d.user, d.video, d.idempotencyKey, d.extra] {
            let bytes = Array(s.utf8.prefix(maxField))
            withUnsafeBytes(of: UInt16(bytes.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: bytes)
        }
    }

    /// The record's id when `decode` would accept it, without building the event (no strings):
    /// what opening a log checks for every record.
    static func validatedId(_ p: UnsafeRawBufferPointer) -> UInt64? {
        let fixed = 1 + 8 + 8 + 1 + 4
        guard p.count >= fixed + 8, p[0] == version, EventType(rawValue: p[17]) != nil else { return nil }
        var pos = fixed
        for _ in 0..<4 {
            guard pos + 2 <= p.count else { return nil }
            pos += 2 + Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: pos, as: UInt16.self)))
        }
        guard pos == p.count else { return nil }
        return UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
    }

    static func decode(_ p: UnsafeRawBufferPointer) -> Event? {
        var pos = 0
        func take(_ n: Int) -> UnsafeRawBufferPointer? {
            guard pos + n <= p.count else { return nil }
            defer { pos += n }
            return UnsafeRawBufferPointer(rebasing: p[pos..<(pos + n)])
        }
        guard let v = take(1), v[0] == version,
              let idB = take(8), let tB = take(8), let tyB = take(1), let wB = take(4),
              let type = EventType(rawValue: tyB[0]) else { return nil }
        // Four length-prefixed strings (no array per record: replay decodes millions).
        func string() -> String? {
            guard let lB = take(2) else { return nil }
            let n = Int(UInt16(littleEndian: lB.loadUnaligned(as: UInt16.self)))
            return take(n).map { String(decoding: $0, as: UTF8.self) }
        }
        guard let user = string(), let video = string(), let key = string(), let extra = string(), pos == p.count else { return nil }
        let d = EventDraft(user: user, video: video, type: type,
                           watchMs: UInt32(littleEndian: wB.loadUnaligned(as: UInt32.self)),
                           timeMs: Int64(littleEndian: tB.loadUnaligned(as: Int64.self)),
                           idempotencyKey: key, extra: extra)
        return Event(id: UInt64(littleEndian: idB.loadUnaligned(as: UInt64.self)), draft: d)
    }
}

extension EventDraft {
    /// The record payload other logs (Kafka) carry: the file log's encoding, id 0.
    public var payload: [UInt8] {
        var out: [UInt8] = []
        EventCodec.encode(id: 0, self, into: &out)
        return out
    }

    /// Decodes a `payload`; nil when the bytes are not one.
    public static func decode(payload: UnsafeRawBufferPointer) -> EventDraft? { EventCodec.decode(payload)?.draft }
}

/// Where the feed service appends events: the data directory's file log or a Kafka topic. An
/// append returns only once the events are durable (fsync, or every in-sync replica's ack).
public protocol EventAppender: AnyObject, Sendable {
    func append(_ drafts: [EventDraft]) async throws -> [UInt64]
    /// Why the writer stopped (a failed fsync, a fatal producer error); nil while it works.
    var writerFailure: String? { get }
    func close()
}

extension EventLog: EventAppender {}

/// Every event of a log from its start, in order per user: what training and experiment reports
/// read (the file log, or a Kafka topic up to its end when the read began).
public protocol EventSource: AnyObject {
    /// Where the events are read from, for messages and run records.
    var sourceName: String { get }
    /// Calls `body` for each event; returns how many.
    @discardableResult
    func forEachEvent(_ body: (Event) throws -> Void) throws -> UInt64
    /// The file log's end (`events_through` of a generation trained on it); nil for others.
    var logPosition: UInt64? { get }
    /// Calls `body` for each event the source still holds (a pruned file log: from its first;
    /// a Kafka topic: what its retention kept), for readers that want what is there, not all
    /// there ever was (experiment reports, statistics); returns how many.
    @discardableResult
    func forEachRetainedEvent(_ body: (Event) throws -> Void) throws -> UInt64
}

extension EventSource {
    @discardableResult
    public func forEachRetainedEvent(_ body: (Event) throws -> Void) throws -> UInt64 { try forEachEvent(body) }
}

extension EventLog: EventSource {
    public var sourceName: String { directory }
    @discardableResult
    public func forEachEvent(_ body: (Event) throws -> Void) throws -> UInt64 {
        // A pruned log cannot be read whole: `forEach` says so (training reads the interaction table).
        let end = endId
        try forEach(from: 0, limit: Int(end), body)
        return end
    }
    public var logPosition: UInt64? { endId }
    @discardableResult
    public func forEachRetainedEvent(_ body: (Event) throws -> Void) throws -> UInt64 {
        let end = endId, first = firstId
        try forEach(from: first, limit: Int(end - first), body)
        return end - first
    }
}
