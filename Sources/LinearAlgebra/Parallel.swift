import Foundation
import Synchronization
import CVectorKernels

/// Work distribution across the engine's worker threads.
public enum Parallel {
    /// Runs `body(range, worker)` over `0..<count` in chunks handed out dynamically to `threads`
    /// workers (chunks keep per-user cost skew from idling a core). `worker` is in `0..<threads`,
    /// so callers can index per-thread scratch. The calling thread is worker 0; the others come
    /// from `SpinPool.shared` when it is free (a region starts without a thread wake-up), else
    /// from Dispatch.
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
        func work(_ worker: Int) {
            while true {
                let s = next.add(chunk, ordering: .relaxed).oldValue
                if s >= count { break }
                body(s..<min(count, s + chunk), worker)
            }
        }
        if SpinPool.shared.run(workers: threads, work) { return }
        DispatchQueue.concurrentPerform(iterations: threads) { work($0) }
    }
}

/// Helper threads that keep polling for a little while after each parallel region, so the
/// next region starts in well under a microsecond instead of after a thread wake-up. A training
/// batch runs several regions of a few hundred microseconds each, and waking Dispatch's threads
/// for every one left the second core idle about a tenth of the time. After `spinTime` without
/// work a helper sleeps until the next region. Helpers are started as regions ask for them (up
/// to one per core but the caller's), and a region waits only for the helpers it uses. One
/// region runs at a time: a nested or concurrent region is refused (`run` returns false) and
/// the caller uses Dispatch instead.
public final class SpinPool: @unchecked Sendable {
    public static let shared = SpinPool(helpers: max(0, BLASRuntime.availableCores - 1))

    /// The most threads besides the caller's.
    public let helpers: Int
    /// How long an idle helper polls before sleeping.
    let spinTime: UInt64 = 200_000  // ns

    private let busy = Atomic<Bool>(false)
    /// The current region: its generation (high bits) and worker count (low 16 bits), published
    /// in one store so a helper never pairs one region's number with another's worker count.
    private let state = Atomic<Int>(0)
    private let pending = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let condition = NSCondition()
    /// The current region's body: set before `state` is advanced, read only by the region's own
    /// helpers, which the caller waits for before it changes it.
    private nonisolated(unsafe) var job: ((Int) -> Void)?
    /// Helpers started so far, and the generation counter (only touched while `busy`).
    private nonisolated(unsafe) var started = 0
    private nonisolated(unsafe) var generation = 0

    init(helpers: Int) { self.helpers = helpers }

    /// Runs `body(worker)` for worker 0 (this thread) ..< `workers` and returns true, or returns
    /// false at once when the pool is too small or already running a region.
    public func run(workers: Int, _ body: (Int) -> Void) -> Bool {
        guard workers >= 1, workers - 1 <= helpers, workers < 1 << 16,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            return false
        }
        defer { busy.store(false, ordering: .releasing) }
        while started < workers - 1 {
            started += 1
            let index = started, from = generation
            let t = Thread { [unowned self] in self.helperLoop(index, seen: from) }
            t.name = "foryou-spin-\(index)"
            t.start()
        }
        return withoutActuallyEscaping(body) { body in
            job = body
            generation += 1
            pending.store(workers - 1, ordering: .sequentiallyConsistent)
            state.store(generation << 16 | workers, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                condition.lock(); condition.broadcast(); condition.unlock()
            }
            body(0)
            var spins = 0
            while pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins < 4096 { fy_spin_pause() } else { sched_yield() }
            }
            job = nil
            return true
        }
    }

    /// Helper `index`: runs each region that includes it, starting after generation `seen`.
    private func helperLoop(_ index: Int, seen start: Int) {
        var seen = start
        while true {
            var st = state.load(ordering: .acquiring)
            if st >> 16 == seen {
                let since = DispatchTime.now().uptimeNanoseconds
                var spins = 0
                while st >> 16 == seen {
                    fy_spin_pause()
                    spins += 1
                    if spins & 255 == 0 && DispatchTime.now().uptimeNanoseconds - since > spinTime {
                        condition.lock()
                        sleepers.add(1, ordering: .sequentiallyConsistent)
                        while state.load(ordering: .sequentiallyConsistent) >> 16 == seen { condition.wait() }
                        sleepers.subtract(1, ordering: .sequentiallyConsistent)
                        condition.unlock()
                    }
                    st = state.load(ordering: .acquiring)
                }
            }
            seen = st >> 16
            if index < st & 0xFFFF {
                runJob(index)
                pending.subtract(1, ordering: .releasing)
            }
        }
    }

    /// The region's body for one helper. Its reference to the body ends on return, before the
    /// helper reports done: the caller's `withoutActuallyEscaping` checks that none outlives it.
    @inline(never)
    private func runJob(_ index: Int) {
        job?(index)
    }
}

/// A flag set from a signal handler or another thread; long jobs poll it between steps.
public final class CancellationToken: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}
