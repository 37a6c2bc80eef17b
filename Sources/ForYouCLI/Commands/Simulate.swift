import ArgumentParser
import ForYou
import Foundation

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Drive a running server with the world's synthetic users (known tastes) through the real HTTP API.",
        discussion: """
        Needs a data directory made by `foryou world` (its world.json gives the users' tastes) and \
        the server's address. People fetch pages (a session scrolls --pages-per-session pages with \
        the cursor), react to each clip by the behaviour model in `Simulator` (matching topics are \
        watched longer, completed, liked; others skipped) and post their events in one batch per page. \
        Each session's person is drawn uniformly from the --users people with replacement: over a short \
        run some people come back and others never do (the report counts distinct users per variant).
        """)
    @OptionGroup var data: DataDirOption
    @Option(help: "Server base URL.") var url = "http://127.0.0.1:8080"
    @Option(help: "People (world users 0..N-1).") var users = 1_000
    @Option(help: "Minutes to run.") var minutes: Double?
    @Option(help: "Seconds to run (instead of --minutes).") var seconds: Double?
    @Option(help: "Feed pages per second, all people together.") var rate = 20.0
    @Option(help: "Concurrent people.") var concurrency = 8
    @Option(name: .customLong("pages-per-session"), help: "Pages per session.") var pagesPerSession = 3
    @Option(help: "Seed of the people's choices.") var seed: UInt64 = 1

    func run() throws {
        let dir = data.directory
        guard let bytes = FileManager.default.contents(atPath: dir.root + "/world.json"),
              let world = try? JSONDecoder().decode(WorldConfig.self, from: bytes) else {
            throw CLIError("simulate: \(dir.root)/world.json is missing; the data directory must come from `foryou world`")
        }
        let (liked, _) = try WorldGenerator.tastes(world)
        let signer = TokenSigner(key: try dir.signingKey())
        var c = SimulationConfig(baseURL: url)
        c.users = min(users, world.users)
        c.seconds = seconds ?? (minutes ?? 1) * 60
        c.pagesPerSecond = rate
        c.concurrency = concurrency
        c.pagesPerSession = pagesPerSession
        c.seed = seed
        let sim = Simulator(config: c, liked: liked, token: { signer.issue(user: $0, ttlSeconds: 86_400) })
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            box.value = await sim.run(cancelled: { CLIContext.cancel.isCancelled }) { Console.err($0) }
            done.signal()
        }
        done.wait()
        let r = box.value!
        print(String(format: "simulate: %d pages, %d videos, %d events in %.1fs (%.1f pages/s), %d errors", r.pages, r.videos, r.events,
                     r.seconds, Double(r.pages) / max(r.seconds, 1e-9), r.errors))
        for (k, n) in r.servedByVariant.sorted(by: { $0.key < $1.key }) { print("  served under \(k): \(n)") }
        if let e = r.firstError { Console.err("simulate: first error: \(e)") }
        if r.pages == 0 { throw CLIError("simulate: no page could be fetched from \(url)") }
    }

    final class ResultBox: @unchecked Sendable { var value: SimulationResult? }
}
