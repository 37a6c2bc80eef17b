import Foundation
import NIOCore
import PostgresNIO
import CandidateStore

// Generations and their candidate lists (`GenerationStore`): written whole through COPY,
// switched live, rolled back, pruned; lists read through the list cache (PostgresListCache.swift).

extension PostgresFeedStore {
    /// COPY text format: backslash, tab, newline and carriage return escaped.
    static func appendText(_ s: String, to buf: inout ByteBuffer) {
        for b in s.utf8 {
            switch b {
            case 0x5C: buf.writeStaticString("\\\\")
            case 0x09: buf.writeStaticString("\\t")
            case 0x0A: buf.writeStaticString("\\n")
            case 0x0D: buf.writeStaticString("\\r")
            default: buf.writeInteger(b)
            }
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A bytea value in COPY text format: \\x followed by hex digits.
    static func appendBytea(_ d: Data, to buf: inout ByteBuffer) {
        buf.writeStaticString("\\\\x")
        buf.reserveCapacity(minimumWritableBytes: d.count * 2)
        d.withUnsafeBytes { raw in
            for b in raw {
                buf.writeInteger(hexDigits[Int(b >> 4)])
                buf.writeInteger(hexDigits[Int(b & 15)])
            }
        }
    }

    func copyItems(_ c: PostgresConnection, generation: Int64, items: [String]) throws {
        try copy(c, table: "generation_items", columns: ["generation", "idx", "video_id"], lines: items.count) { i, buf in
            buf.writeString("\(generation)\t\(i)\t")
            Self.appendText(items[i], to: &buf)
            buf.writeStaticString("\n")
        }
    }

    func copyLists(_ c: PostgresConnection, generation: Int64, through: Int64?, lists: [(user: String, items: [Int32], scores: [Float])]) throws {
        let through = through.map(String.init) ?? "\\N"
        try copy(c, table: "candidate_lists", columns: ["generation", "user_id", "list", "through_event"], lines: lists.count) { i, buf in
            buf.writeString("\(generation)\t")
            Self.appendText(lists[i].user, to: &buf)
            buf.writeStaticString("\t")
            Self.appendBytea(PackedCandidates.pack(lists[i].items, lists[i].scores), to: &buf)
            buf.writeString("\t\(through)\n")
        }
    }

    static func check(_ lists: [(user: String, items: [Int32], scores: [Float])], catalog: Int) throws {
        for l in lists {
            guard l.items.count == l.scores.count, l.items.allSatisfy({ $0 >= 0 && Int($0) < catalog }) else {
                throw StoreError.invalid("list of user \(l.user) refers to items outside the generation's catalog")
            }
        }
    }

    public func writeGeneration(model: String, runId: String, items: [String],
                                lists: [(user: String, items: [Int32], scores: [Float])], activate: Bool) throws -> Int64 {
        try writeGeneration(model: model, runId: runId, items: items, lists: lists, activate: activate, modelDir: nil, eventsThrough: nil)
    }

    public func writeGeneration(model: String, runId: String, items: [String],
                                lists: [(user: String, items: [Int32], scores: [Float])], activate: Bool,
                                modelDir: String?, eventsThrough: UInt64?) throws -> Int64 {
        try Self.check(lists, catalog: items.count)
        let topN = lists.map(\.items.count).max() ?? 0
        let through = eventsThrough.map { Int64($0) }
        return try transaction { c in
            let gen = try run(c, """
                INSERT INTO generations(model, run_id, created_at, users, top_n, model_dir, events_through)
                VALUES (\(model), \(runId), \(Self.now()), \(Int64(lists.count)), \(topN), \(modelDir), \(through)) RETURNING id
                """)[0].decode(Int64.self)
            try copyItems(c, generation: gen, items: items)
            try copyLists(c, generation: gen, through: through, lists: lists)
            if activate { try makeLive(c, gen) }
            return gen
        }
    }

    func makeLive(_ c: PostgresConnection, _ gen: Int64) throws {
        try run(c, """
            INSERT INTO live(singleton, generation) VALUES (1, \(gen))
            ON CONFLICT(singleton) DO UPDATE SET generation = excluded.generation
            """)
        try run(c, "UPDATE generations SET activated_at = \(Self.now()) WHERE id = \(gen)")
    }

    static let infoColumns = "id, model, run_id, created_at, users, top_n, activated_at, shards, shards_done"

    static func info(_ r: PostgresRow, live: Int64?) throws -> GenerationInfo {
        let (id, model, runId, created, users, topN, activated, shards, done) =
            try r.decode((Int64, String, String, Int64, Int64, Int32, Int64?, Int32?, Int32?).self)
        return GenerationInfo(id: id, model: model, runId: runId, createdAt: created, users: Int(users), topN: Int(topN),
                              live: id == live, activatedAt: activated, shards: shards.map(Int.init), shardsDone: done.map(Int.init))
    }

    func live(_ c: PostgresConnection) throws -> Int64? {
        try run(c, "SELECT generation FROM live WHERE singleton = 1").first?.decode(Int64.self)
    }

    public func generations() throws -> [GenerationInfo] {
        try withConnection { c in
            let l = try live(c)
            return try run(c, "SELECT \(unescaped: Self.infoColumns) FROM generations ORDER BY id").map { try Self.info($0, live: l) }
        }
    }

    public func liveGeneration() throws -> GenerationInfo? {
        try read("SELECT \(unescaped: Self.infoColumns) FROM generations g JOIN live l ON l.generation = g.id").first
            .map { try Self.info($0, live: try $0.decode(Int64.self)) }
    }

    func requireComplete(_ c: PostgresConnection, _ generation: Int64) throws {
        guard let r = try run(c, "SELECT shards, shards_done FROM generations WHERE id = \(generation)").first else {
            throw StoreError.notFound("no generation \(generation)")
        }
        let (n, done) = try r.decode((Int32?, Int32?).self)
        if let n, let done, done < n {
            throw StoreError.conflict("generation \(generation) is incomplete: \(done) of \(n) shards written")
        }
    }

    public func activate(_ generation: Int64) throws {
        try transaction { c in
            try requireComplete(c, generation)
            try makeLive(c, generation)
        }
    }

    public func rollback() throws -> GenerationInfo {
        try transaction { c in
            guard let l = try live(c) else { throw StoreError.notFound("no generation is live") }
            guard let prev = try run(c, """
                SELECT \(unescaped: Self.infoColumns) FROM generations WHERE id != \(l) AND activated_at IS NOT NULL
                ORDER BY activated_at DESC, id DESC LIMIT 1
                """).first else {
                throw StoreError.notFound("no earlier live generation to roll back to")
            }
            let id = try prev.decode(Int64.self)
            try makeLive(c, id)
            return try Self.info(prev, live: id)
        }
    }

    public func prune(keep: Int) throws -> [Int64] {
        let removed: [Int64] = try transaction { c in
            // Experiments being created name generations prune must keep: one at a time.
            try run(c, "SELECT pg_advisory_xact_lock(727003)")
            let l = try live(c)
            let generations = try run(c, "SELECT \(unescaped: Self.infoColumns) FROM generations").map { try Self.info($0, live: l) }
            let experiments = try run(c, "SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE status != 'stopped'")
                .map(Self.experiment)
            let doomed = GenerationPruning.doomed(generations, keep: keep, experiments: experiments, now: Self.now())
            for id in doomed { try run(c, "DELETE FROM generations WHERE id = \(id)") }  // lists, items, shards cascade
            return doomed
        }
        cacheLock.lock()
        for id in removed { itemCache[id] = nil }
        cacheLock.unlock()
        return removed
    }

    public func source(generation: Int64) throws -> (modelDir: String?, eventsThrough: UInt64?)? {
        try read("SELECT model_dir, events_through FROM generations WHERE id = \(generation)").first.map { r in
            let (dir, through) = try r.decode((String?, Int64?).self)
            return (modelDir: dir, eventsThrough: through.map { UInt64($0) })
        }
    }

    func items(of generation: Int64, _ c: PostgresConnection, fresh: Bool = false) throws -> [String] {
        cacheLock.lock()
        if !fresh, let cached = itemCache[generation] { cacheLock.unlock(); return cached }
        cacheLock.unlock()
        let list = try run(c, "SELECT video_id FROM generation_items WHERE generation = \(generation) ORDER BY idx")
            .map { try $0.decode(String.self) }
        cacheLock.lock()
        itemCache[generation] = list
        cacheLock.unlock()
        return list
    }

    public func memoryCandidates(generation: Int64, user: String) -> PackedCandidates?? {
        listCache?.peek(ListCache.Key(generation: generation, user: user))
    }

    public func packedCandidates(generation: Int64, user: String) throws -> PackedCandidates? {
        try cachedList(generation: generation, user: user) { try readList(generation: generation, user: user) }
    }

    private func readList(generation: Int64, user: String) throws -> PackedCandidates? {
        try withConnection { c in
            guard let r = try run(c, "SELECT list, through_event FROM candidate_lists WHERE generation = \(generation) AND user_id = \(user)")
                .first else { return nil }
            let (blob, through) = try r.decode((Data, Int64?).self)
            var packed = PackedCandidates(generation: generation, itemTable: try items(of: generation, c), blob: blob,
                                          throughEvent: through.map { UInt64($0) })
            // Another process may have appended to the item table since it was cached.
            if packed.count > 0 && Int(packed.maxItem) >= packed.itemTable.count {
                packed.itemTable = try items(of: generation, c, fresh: true)
            }
            return packed
        }
    }
}
