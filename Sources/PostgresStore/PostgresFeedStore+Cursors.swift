import Foundation
import PostgresNIO
import CandidateStore

// The list-writing consumers of the event log and their cursors (`ConsumerCursorStore`).

extension PostgresFeedStore {
    @discardableResult
    public func replaceLists(generation: Int64, lists: [(user: String, videos: [String], scores: [Float])], consumer: String,
                             nextEvent: UInt64, expecting: UInt64?, fence: String?) throws -> Bool {
        let fenceName = fence ?? consumer
        let wrote: Bool = try transaction { c in
            // Read committed (each statement sees what committed before it), and one writer per
            // fenced cursor at a time (a transaction-scoped advisory lock on its name), so the
            // cursor read below and the write at the end are one compare-and-set.
            try run(c, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            try run(c, "SELECT pg_advisory_xact_lock(hashtext(\("foryou-cursor:" + fenceName)))")
            if let expecting,
               let stored = try run(c, "SELECT next_event FROM consumer_cursors WHERE name = \(fenceName)").first,
               UInt64(try stored.decode(Int64.self)) != expecting {
                return false
            }
            // The generation's row lock serialises writers appending to its item table.
            guard !(try run(c, "SELECT id FROM generations WHERE id = \(generation) FOR UPDATE")).isEmpty else {
                throw StoreError.notFound("no generation \(generation)")
            }
            var table = ItemTableBuilder(try items(of: generation, c, fresh: true))
            let next = Int64(nextEvent)
            for l in lists {
                guard l.videos.count == l.scores.count else { throw StoreError.invalid("list of \(l.user): videos and scores differ in length") }
                let idx = try table.indices(l.videos) { p, v in
                    try run(c, "INSERT INTO generation_items(generation, idx, video_id) VALUES (\(generation), \(p), \(v))")
                }
                let blob = PackedCandidates.pack(idx, l.scores)
                try run(c, """
                    INSERT INTO candidate_lists(generation, user_id, list, through_event) VALUES (\(generation), \(l.user), \(blob), \(next))
                    ON CONFLICT(generation, user_id) DO UPDATE SET list = excluded.list, through_event = excluded.through_event
                    """)
            }
            try run(c, """
                INSERT INTO consumer_cursors(name, generation, next_event) VALUES (\(consumer), \(generation), \(next))
                ON CONFLICT(name) DO UPDATE SET generation = excluded.generation, next_event = excluded.next_event
                """)
            // Servers caching these lists drop them when this commits (delivered after commit only).
            for payload in ListCache.payloads(generation: generation, users: lists.map(\.user)) {
                try run(c, "SELECT pg_notify(\(ListCache.channel), \(payload))")
            }
            return true
        }
        if wrote {
            cacheLock.lock()
            itemCache[generation] = nil
            cacheLock.unlock()
        }
        return wrote
    }

    public func consumerCursors() throws -> [(name: String, generation: Int64?, nextEvent: UInt64)] {
        try read("SELECT name, generation, next_event FROM consumer_cursors ORDER BY name").map { r in
            let (name, g, next) = try r.decode((String, Int64?, Int64).self)
            return (name: name, generation: g, nextEvent: UInt64(next))
        }
    }

    public func consumerCursor(_ name: String) throws -> (generation: Int64?, nextEvent: UInt64)? {
        try read("SELECT generation, next_event FROM consumer_cursors WHERE name = \(name)").first.map { r in
            let (g, next) = try r.decode((Int64?, Int64).self)
            return (generation: g, nextEvent: UInt64(next))
        }
    }
}
