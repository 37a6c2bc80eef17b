import ArgumentParser
import ForYou
import Foundation

struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Long-running workers.", subcommands: [Rank.self])

    struct Rank: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep the live generation fresh: fold users with new events in and replace their lists.",
            discussion: """
            Reads the event log from its committed cursor in micro-batches; for each user with new \
            events, solves the user's vector against the live model's item factors from the whole \
            history, rescores the full catalog and replaces the user's list; the lists and the \
            cursor commit in one transaction, so a crash loses and repeats nothing. Needs a live \
            generation with a recorded model (foryou rescore, or score-all --into). Ctrl-C stops.
            """)

        @OptionGroup var data: DataDirOption
        @Option(help: "List length per user.") var top = 200
        @Option(help: "Events per micro-batch.") var batch = 2_000
        @Option(help: "Seconds to wait when there is nothing new.") var idle = 0.2
        @Option(help: "Stop after this many seconds (0 = run until Ctrl-C).") var seconds = 0.0

        func validate() throws {
            guard top > 0, batch > 0, idle > 0, seconds >= 0 else { throw ValidationError("--top, --batch, --idle must be positive") }
        }

        func run() throws {
            var c = RankingWorker.Config(dataDir: data.dataDir)
            c.top = top
            c.batch = batch
            let worker: RankingWorker
            do { worker = try RankingWorker(config: c) } catch let e as EventLogError { throw CLIError("\(e)") }
            Console.err("worker rank: starting at event \(worker.nextEvent)")
            let start = Date()
            var events = 0, users = 0, lastReport = Date()
            while !CLIContext.cancel.isCancelled && (seconds == 0 || Date().timeIntervalSince(start) < seconds) {
                let s = try worker.step()
                events += s.events
                users += s.usersUpdated
                if Date().timeIntervalSince(lastReport) > 5 && events > 0 {
                    Console.err("worker rank: \(events) events, \(users) user lists updated; next event \(s.nextEvent)")
                    lastReport = Date()
                }
                if s.events == 0 { usleep(useconds_t(idle * 1e6)) }
            }
            Console.err("worker rank: stopped at event \(worker.nextEvent) (\(events) events, \(users) lists this run)")
        }
    }
}
