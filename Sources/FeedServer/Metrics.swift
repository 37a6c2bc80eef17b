import Foundation

/// A minimal Prometheus registry: latency histograms by route and status, counters, gauges.
final class MetricsRegistry: @unchecked Sendable {
    private let lock = NSLock()
    static let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    struct Histogram {
        var buckets: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0
        init(_ b: [Double]) { buckets = b; counts = [Int](repeating: 0, count: b.count) }
        mutating func observe(_ v: Double) {
            for (i, b) in buckets.enumerated() where v <= b { counts[i] += 1 }
            sum += v
            count += 1
        }
    }

    struct RequestKey: Hashable {
        var method: String
        var route: String
        var status: Int
    }
    private var requests: [RequestKey: Histogram] = [:]
    private var fsyncBatches = Histogram(MetricsRegistry.batchBuckets)
    private var counters: [String: Double] = [:]

    func observeRequest(method: String, route: String, status: Int, seconds: Double) {
        let key = RequestKey(method: method, route: route, status: status)
        lock.lock()
        requests[key, default: Histogram(MetricsRegistry.latencyBuckets)].observe(seconds)
        lock.unlock()
    }

    func observeFsyncBatch(_ n: Int) {
        lock.lock(); fsyncBatches.observe(Double(n)); lock.unlock()
    }

    func add(_ name: String, _ v: Double = 1) {
        lock.lock(); counters[name, default: 0] += v; lock.unlock()
    }

    func render(gauges: [(String, String, Double)]) -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = "# HELP foryou_http_request_duration_seconds Request latency by route and status.\n"
        out += "# TYPE foryou_http_request_duration_seconds histogram\n"
        for key in requests.keys.sorted(by: { ($0.method, $0.route, $0.status) < ($1.method, $1.route, $1.status) }) {
            let h = requests[key]!
            let labels = "route=\"\(key.method) \(key.route)\",status=\"\(key.status)\""
            for (b, c) in zip(h.buckets, h.counts) { out += "foryou_http_request_duration_seconds_bucket{\(labels),le=\"\(b)\"} \(c)\n" }
            out += "foryou_http_request_duration_seconds_bucket{\(labels),le=\"+Inf\"} \(h.count)\n"
            out += "foryou_http_request_duration_seconds_sum{\(labels)} \(h.sum)\n"
            out += "foryou_http_request_duration_seconds_count{\(labels)} \(h.count)\n"
        }
        out += "# HELP foryou_event_fsync_batch_events Events made durable by one fsync (group commit).\n"
        out += "# TYPE foryou_event_fsync_batch_events histogram\n"
        for (b, c) in zip(fsyncBatches.buckets, fsyncBatches.counts) { out += "foryou_event_fsync_batch_events_bucket{le=\"\(b)\"} \(c)\n" }
        out += "foryou_event_fsync_batch_events_bucket{le=\"+Inf\"} \(fsyncBatches.count)\n"
        out += "foryou_event_fsync_batch_events_sum \(fsyncBatches.sum)\nforyou_event_fsync_batch_events_count \(fsyncBatches.count)\n"
        for name in counters.keys.sorted() {
            out += "# TYPE \(name) counter\n\(name) \(counters[name]!)\n"
        }
        for (name, help, v) in gauges {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n\(name) \(v)\n"
        }
        return out
    }
}
