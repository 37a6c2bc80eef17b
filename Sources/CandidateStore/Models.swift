import Foundation

public enum VideoStatus: String, Sendable, Codable, CaseIterable {
    case processing, ready, failed, removed
}

/// A clip of the catalog.
public struct Video: Sendable, Codable, Equatable {
    public var id: String
    public var caption: String
    public var tags: [String]
    public var topic: String
    public var creator: String
    public var durationMs: Int
    public var status: VideoStatus
    public var streamURL: String?
    public var thumbnailURL: String?
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64
    public var uploadId: String?
    public var owner: String?

    public init(id: String, caption: String = "", tags: [String] = [], topic: String = "", creator: String = "",
                durationMs: Int = 0, status: VideoStatus = .ready, streamURL: String? = nil, thumbnailURL: String? = nil,
                createdAt: Int64 = 0, uploadId: String? = nil, owner: String? = nil) {
        self.id = id
        self.caption = caption
        self.tags = tags
        self.topic = topic
        self.creator = creator
        self.durationMs = durationMs
        self.status = status
        self.streamURL = streamURL
        self.thumbnailURL = thumbnailURL
        self.createdAt = createdAt
        self.uploadId = uploadId
        self.owner = owner
    }
}

/// A set of top-N lists produced by one model run.
public struct GenerationInfo: Sendable, Equatable, Codable {
    public var id: Int64
    public var model: String
    public var runId: String
    public var createdAt: Int64
    public var users: Int
    public var topN: Int
    public var live: Bool
    public var activatedAt: Int64?
    /// For a generation written by several scoring processes: how many shards, and how many
    /// are written (it can go live only when all are).
    public var shards: Int? = nil
    public var shardsDone: Int? = nil
    public var complete: Bool { shards == nil || shardsDone == shards }

    public init(id: Int64, model: String, runId: String, createdAt: Int64, users: Int, topN: Int, live: Bool, activatedAt: Int64?,
                shards: Int? = nil, shardsDone: Int? = nil) {
        self.id = id; self.model = model; self.runId = runId; self.createdAt = createdAt; self.users = users; self.topN = topN
        self.live = live; self.activatedAt = activatedAt; self.shards = shards; self.shardsDone = shardsDone
    }
}

public struct Candidate: Sendable, Equatable {
    public var video: String
    public var score: Float
    public init(video: String, score: Float) {
        self.video = video
        self.score = score
    }
}

/// A user's list as stored: (u32 item index, f32 score) pairs over the generation's item table
/// (shared, cached), decoded on access so a page reads only the entries it walks.
public struct PackedCandidates: Sendable {
    public var generation: Int64
    public var itemTable: [String]
    let blob: Data
    /// The list reflects every event with a smaller id (nil: not known, e.g. a model trained on a file).
    public var throughEvent: UInt64?

    public init(generation: Int64, itemTable: [String], blob: Data, throughEvent: UInt64? = nil) {
        self.generation = generation
        self.itemTable = itemTable
        self.blob = blob
        self.throughEvent = throughEvent
    }

    public var count: Int { blob.count / 8 }

    public subscript(_ n: Int) -> (item: UInt32, score: Float) {
        blob.withUnsafeBytes { b in
            (UInt32(littleEndian: b.loadUnaligned(fromByteOffset: n * 8, as: UInt32.self)),
             Float(bitPattern: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: n * 8 + 4, as: UInt32.self))))
        }
    }

    public var entries: [(item: UInt32, score: Float)] { (0..<count).map { self[$0] } }

    /// The stored form of a list: (u32 item index, f32 score) pairs, little-endian (every backend
    /// stores the same bytes).
    public static func pack(_ items: [Int32], _ scores: [Float]) -> Data {
        var d = Data(capacity: items.count * 8)
        for (i, s) in zip(items, scores) {
            withUnsafeBytes(of: UInt32(bitPattern: i).littleEndian) { d.append(contentsOf: $0) }
            withUnsafeBytes(of: s.bitPattern.littleEndian) { d.append(contentsOf: $0) }
        }
        return d
    }

    /// The largest item index in the list (0 when empty).
    public var maxItem: UInt32 { (0..<count).reduce(0) { max($0, self[$1].item) } }
}

public enum StoreError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case conflict(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .notFound(let s), .conflict(let s), .invalid(let s): return s
        }
    }
}

/// A generation's item table while lists are written against it (the ranking worker's list
/// replacement): known videos map to their index, new ones are appended at the end.
public struct ItemTableBuilder {
    public private(set) var table: [String]
    private var position: [String: Int32]

    public init(_ table: [String]) {
        self.table = table
        position = Dictionary(table.enumerated().map { ($1, Int32($0)) }, uniquingKeysWith: { a, _ in a })
    }

    /// The indices of `videos`; `append(index, video)` stores each video new to the table first.
    public mutating func indices(_ videos: [String], append: (Int32, String) throws -> Void) rethrows -> [Int32] {
        var idx: [Int32] = []
        idx.reserveCapacity(videos.count)
        for v in videos {
            if let p = position[v] { idx.append(p); continue }
            let p = Int32(table.count)
            try append(p, v)
            table.append(v)
            position[v] = p
            idx.append(p)
        }
        return idx
    }
}
