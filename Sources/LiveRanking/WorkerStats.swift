import Foundation
import MetricsEndpoint

/// The worker's figures for /metrics.
public final class WorkerStats: @unchecked Sendable {
    private let lock = NSLock()
    private var events = 0, lists = 0, retrains = 0, placedVideos = 0, steps = 0
    private var lag: UInt64 = 0
    private var freshness: Double?
    private var lastRetrainSeconds: Double?
    private var retrainSecondsTotal = 0.0

    public init() {}

    public func record(_ s: RankingWorker.Step, lag: UInt64) {
        lock.lock(); defer { lock.unlock() }
        events += s.events
        lists += s.usersUpdated
        steps += 1
        self.lag = lag
        if let f = s.freshnessSeconds { freshness = f }
        placedVideos = s.foldedVideos
    }

    public func retrained(seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        retrains += 1
        lastRetrainSeconds = seconds
        retrainSecondsTotal += seconds
    }

    public func render() -> String {
        lock.lock(); defer { lock.unlock() }
        var out = PrometheusText()
        func metric(_ name: String, _ type: String, _ help: String, _ v: Double) { out.metric(name, type, help, v) }
        metric("foryou_worker_steps_total", "counter", "Micro-batches run (the first one loads the live model).", Double(steps))
        metric("foryou_worker_events_applied_total", "counter", "Events folded in.", Double(events))
        metric("foryou_worker_lists_updated_total", "counter", "User lists replaced.", Double(lists))
        metric("foryou_worker_lag_events", "gauge", "Events in the log not yet applied.", Double(lag))
        if let f = freshness {
            metric("foryou_worker_freshness_seconds", "gauge", "Event appended -> its user's list stored, newest batch.", f)
        }
        metric("foryou_worker_placed_videos", "gauge", "Videos without model factors placed from their first interactions.",
               Double(placedVideos))
        metric("foryou_worker_retrains_total", "counter", "Full retrains.", Double(retrains))
        metric("foryou_worker_retrain_seconds_total", "counter", "Time spent retraining.", retrainSecondsTotal)
        if let r = lastRetrainSeconds { metric("foryou_worker_last_retrain_seconds", "gauge", "Duration of the last retrain.", r) }
        return out.text
    }
}
