import ArgumentParser
import ForYou
import Foundation

struct BenchStore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-store",
        abstract: "Measure candidate-list lookups per second on a data directory's live generation.")

    @OptionGroup var data: DataDirOption
    @Option(help: "Lookups per thread.") var n = 50_000
    @Option(help: "Threads.") var threads = 1

    func run() throws {
        let store = try data.directory.openStore()
        guard let live = try store.liveGeneration() else { throw CLIError("no live generation in \(data.dataDir)") }
        let users = live.users
        let t0 = Date()
        final class Count: @unchecked Sendable { var found = 0; let lock = NSLock() }
        let c = Count()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var g = SeededGenerator(seed: UInt64(t + 1))
            var found = 0
            for _ in 0..<n {
                let u = Int(g.next() % UInt64(max(1, users)))
                if (try? store.packedCandidates(generation: live.id, user: "\(u)")) != nil { found += 1 }
            }
            c.lock.lock(); c.found += found; c.lock.unlock()
        }
        let s = Date().timeIntervalSince(t0)
        print(String(format: "%d lookups on %d thread(s) in %.2fs: %.0f lookups/s (%d found)", n * threads, threads, s,
                     Double(n * threads) / s, c.found))
    }
}
