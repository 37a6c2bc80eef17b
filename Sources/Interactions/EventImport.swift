import Foundation
import EventLog

/// An interaction file turned into events (`foryou events import`): one event of `type` per row,
/// stamped with the row's time (seconds) when the file has one, else with consecutive
/// milliseconds ending at `now`; watch time = the video's duration. Appended in batches through
/// `append` (which makes each batch durable before returning), so an interruption leaves a prefix.
public enum EventImport {
    /// Returns how many events were appended; stops early when `cancelled()` says so.
    public static func append(_ d: Interactions, type: EventType, durations: [String: Int], now: Int64, batchSize: Int = 50_000,
                              cancelled: () -> Bool = { false }, append: ([EventDraft]) throws -> Void) throws -> Int {
        var count = 0
        var batch: [EventDraft] = []
        batch.reserveCapacity(min(batchSize, d.count))
        for r in 0..<d.count {
            if cancelled() { break }
            let video = d.items.raw[Int(d.itemIndex[r])]
            let time = d.timestamps.map { $0[r] * 1000 } ?? (now - Int64(d.count - r))
            batch.append(EventDraft(user: d.users.raw[Int(d.userIndex[r])], video: video, type: type,
                                    watchMs: UInt32(clamping: durations[video] ?? 0), timeMs: time))
            if batch.count == batchSize {
                try append(batch)
                count += batch.count
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { try append(batch); count += batch.count }
        return count
    }
}
