import Foundation
import LinearAlgebra
import Rescoring
import MetricsEndpoint

/// When the ranking worker retrains from scratch: every `period` seconds and/or after
/// `afterEvents` new events, whichever comes first; never when both are nil.
public struct RetrainSchedule: Sendable {
    public var period: Double?
    public var afterEvents: Int?
    private var last: Date
    private var since = 0

    public init(period: Double? = nil, afterEvents: Int? = nil, now: Date = Date()) {
        self.period = period
        self.afterEvents = afterEvents
        last = now
    }

    public mutating func record(events: Int) { since += events }

    public func due(now: Date = Date()) -> Bool {
        (period.map { now.timeIntervalSince(last) >= $0 } ?? false) || (afterEvents.map { since >= $0 } ?? false)
    }

    /// A retrain ran (or failed): the period and the event count start again.
    public mutating func reset(now: Date = Date()) {
        last = now
        since = 0
    }
}

/// The ranking worker as a long-running service: steps the worker, reports progress, retrains on
/// its schedule (a failed retrain is logged and leaves the live generation as it was), and serves
/// `/metrics` when asked. `foryou worker rank` parses its flags into this and runs it.
public struct WorkerLoop {
    public var seconds = 0.0
    public var idle = 0.2
    public var untilCaughtUp = false
    /// The retrain job (nil: no retrains) and when it runs.
    public var retrain: RescoreConfig?
    public var schedule = RetrainSchedule()
    /// Serve GET /metrics on 127.0.0.1 at this port (0 = off).
    public var metricsPort = 0

    public init() {}

    public struct Summary: Sendable {
        public var events = 0
        public var lists = 0
        public var retrains = 0
    }

    public func run(_ worker: RankingWorker, cancel: CancellationToken, log: @escaping @Sendable (String) -> Void) throws -> Summary {
        let stats = WorkerStats()
        if metricsPort > 0 {
            let app = buildMetricsApplication(host: "127.0.0.1", port: metricsPort, render: { stats.render() }) { p in
                log("metrics on http://127.0.0.1:\(p)/metrics")
            }
            Task.detached { try? await app.run() }
        }
        let start = Date()
        var summary = Summary(), lastReport = Date(), schedule = self.schedule
        var lastIdle: String?
        while !cancel.isCancelled && (seconds == 0 || Date().timeIntervalSince(start) < seconds) {
            let s = try worker.step()
            if worker.idleReason != lastIdle {
                if let why = worker.idleReason { log("waiting: \(why)") }
                lastIdle = worker.idleReason
            }
            if s.refolded > 0 { log("folded \(s.refolded) users into newly live generation") }
            summary.events += s.events
            summary.lists += s.usersUpdated
            schedule.record(events: s.events)
            stats.record(s, lag: worker.lag)
            if Date().timeIntervalSince(lastReport) > 5 && summary.events > 0 {
                log("\(summary.events) events, \(summary.lists) user lists updated; next event \(s.nextEvent)")
                lastReport = Date()
            }
            if let job = retrain, schedule.due() {
                let t = Date()
                do {
                    let r = try RescoreJob.run(job, cancel: cancel)
                    let d = Date().timeIntervalSince(t)
                    stats.retrained(seconds: d)
                    summary.retrains += 1
                    log(String(format: "retrained in %.1fs (read %.1fs, fit %.1fs, score %.1fs, store %.1fs): "
                               + "generation %lld live, %d users x %d videos", d, r.seconds.read, r.seconds.fit,
                               r.seconds.score, r.seconds.store, r.generation, r.users, r.videos))
                } catch {
                    // The live generation is untouched; keep folding in and try at the next period.
                    log("retrain failed, live generation unchanged: \(error)")
                }
                schedule.reset()
            }
            if s.events == 0 {
                if untilCaughtUp && worker.caughtUp { break }
                usleep(useconds_t(idle * 1e6))
            }
        }
        return summary
    }
}
