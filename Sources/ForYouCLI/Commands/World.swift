import ArgumentParser
import ForYou
import Foundation

struct WorldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world",
        abstract: "Generate a world: a video catalog, users with hidden tastes, and their past sessions in the event log.")

    @Option(help: "Users.") var users = 2_000
    @Option(help: "Videos.") var videos = 1_000
    @Option(help: "Topics.") var topics = 16
    @Option(help: "Seed.") var seed: UInt64 = 42
    @Option(name: .customLong("sessions-per-user"), help: "Past sessions per user, on average (about 15 events each).")
    var sessionsPerUser = 4.0
    @OptionGroup var data: DataDirOption

    func validate() throws {
        guard users > 0, videos > 1, topics > 0 else { throw ValidationError("--users, --videos (> 1) and --topics must be positive") }
        guard sessionsPerUser > 0, sessionsPerUser <= 1_000 else { throw ValidationError("--sessions-per-user must be in (0, 1000]") }
    }

    func run() throws {
        let dir = data.directory
        let log = try EventLog(directory: dir.events, access: .append)
        guard log.endId == 0 else { throw CLIError("\(dir.events) already holds \(log.endId) events; use an empty --data-dir") }
        var c = WorldConfig()
        c.users = users; c.videos = videos; c.topics = topics; c.seed = seed; c.sessionsPerUser = sessionsPerUser
        let s = try WorldGenerator.generate(c, store: try dir.openStore(), log: log)
        log.close()
        // What `foryou simulate` regenerates the users' tastes from.
        try AtomicFile.write(Array(try JSONEncoder().encode(c)), to: dir.root + "/world.json")
        Console.err("world: \(s.videos) videos, \(s.users) users, \(s.events) events in \(dir.root)")
    }
}
