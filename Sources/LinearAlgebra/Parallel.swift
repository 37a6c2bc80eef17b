import Foundation
import Synchronization

/// Work distribution across the engine's worker threads.
public enum Parallel {
    /// Runs `body(range, worker)` over `0..<count` in chunks handed out dynamically to `threads`
    /// workers (chunks keep per-user cost skew from idling a core). `worker` is in `0..<threads`,
    /// so callers can index per-thread scratch.
    public static func forEachChunk(count: Int, chunk: Int, threads: Int,
                                    _ body: (Range<Int>, Int) -> Void) {
        guard count > 0 else { return }
        let threads = max(1, min(threads, (count + chunk - 1) / chunk))
        if threads == 1 {
            var s = 0
            while s < count { body(s..<min(count, s + chunk), 0); s += chunk }
            return
        }
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            while true {
                let s = next.add(chunk, ordering: .relaxed).oldValue
                if s >= count { break }
                body(s..<min(count, s + chunk), worker)
            }
        }
    }
}

/// A flag set from a signal handler or another thread; long jobs poll it between steps.
public final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}
