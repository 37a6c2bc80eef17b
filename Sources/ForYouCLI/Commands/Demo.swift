import ArgumentParser
import ForYou
import Foundation

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole loop on one machine: world -> train ALS on its events -> score-all into the store -> serve.",
        discussion: "Prints a token and a curl line, then serves until Ctrl-C. Re-running reuses the world in --data-dir.")

    @Option(name: .customLong("data-dir"), help: "Data directory.") var dataDir = "var/demo-world"
    @Option(help: "Users of a new world.") var users = 5_000
    @Option(help: "Videos of a new world.") var videos = 2_000
    @Option(help: "Port.") var port = 8080
    @Option(help: "Seed.") var seed: UInt64 = 42
    @Flag(name: .customLong("no-serve"), help: "Stop after storing the candidate generation.") var noServe = false

    func run() throws {
        let dir = DataDirectory(dataDir)
        var log: EventLog? = try EventLog(directory: dir.events, access: .append)
        let store = try dir.openStore()
        if log!.endId == 0 {
            var c = WorldConfig()
            c.users = users; c.videos = videos; c.seed = seed
            let s = try WorldGenerator.generate(c, store: store, log: log!)
            try AtomicFile.write(Array(try JSONEncoder().encode(c)), to: dataDir + "/world.json")
            Console.err("demo: world of \(s.videos) videos, \(s.users) users, \(s.events) events in \(dataDir)")
            do {
                let n = try DemoMedia.attach(dataDir: dataDir, clips: 6) { Console.err($0) }
                Console.err("demo: \(n) videos play one of 6 generated clips")
            } catch let e as MediaError {
                Console.err("demo: no playable clips (\(e)); the feed still works")
            }
        } else {
            Console.err("demo: reusing the world in \(dataDir) (\(log!.endId) events)")
        }
        log = nil
        var job = RescoreConfig(dataDir: dataDir)
        job.modelsDir = dataDir + "/models"
        job.als = ALSConfig(factors: 32, regularization: 0.05, iterations: 10, solver: .cg)
        job.top = 200
        let r = try RescoreJob.run(job, cancel: CLIContext.cancel) { Console.err("demo: " + $0) }
        Console.err("demo: generation \(r.generation) live: \(r.users) users x top 200 (model \(r.modelDirectory))")
        let token = TokenSigner(key: try dir.signingKey()).issue(user: "1", ttlSeconds: 86_400)
        print("token for user 1: \(token)")
        print("curl -s -H 'Authorization: Bearer \(token)' 'http://127.0.0.1:\(port)/api/v1/foryou?limit=10'")
        print("open http://127.0.0.1:\(port)/?token=\(token) in a browser (native HLS: Safari, recent Chromium)")
        fflush(stdout)
        if noServe { return }
        var c = FeedServerConfig()
        c.dataDir = dataDir
        c.port = port
        let service = try FeedService(config: c)
        service.startBackgroundRefresh()
        try runBlocking {
            try await buildApplication(service) { p in Console.err("demo: serving on http://127.0.0.1:\(p) (Ctrl-C stops)") }
                .runService()
        }
        service.stop()
    }
}
