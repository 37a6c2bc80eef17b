import ArgumentParser
import ForYou
import Foundation

struct Generations: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage candidate generations: list, activate, rollback, prune.",
        subcommands: [List.self, Activate.self, Rollback.self, Prune.self])

    static func describe(_ g: GenerationInfo) -> String {
        let created = Date(timeIntervalSince1970: Double(g.createdAt) / 1000)
        let shards = g.shards.map { n in g.complete ? "\t\(n) shards" : "\tincomplete: \(g.shardsDone ?? 0) of \(n) shards written" } ?? ""
        return "\(g.live ? "*" : " ") \(g.id)\t\(g.model)\t\(g.runId)\t\(g.users) users\ttop \(g.topN)\t\(UTCStamp.iso8601(created))"
            + shards
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List generations (* = live).")
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            for g in try store.open(dataDir: data.dataDir).generations() { print(Generations.describe(g)) }
        }
    }

    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a generation live (atomic switch).")
        @Argument(help: "Generation id.") var id: Int64
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            do { try store.open(dataDir: data.dataDir).activate(id) } catch let e as StoreError { throw CLIError("\(e)") }
            print("generation \(id) is live")
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put the previously live generation back.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            do { print("generation \(try store.open(dataDir: data.dataDir).rollback().id) is live again") } catch let e as StoreError {
                throw CLIError("\(e)")
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete all but the newest K generations (never the live one).")
        @Option(help: "Generations to keep.") var keep = 3
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func validate() throws { guard keep >= 1 else { throw ValidationError("--keep must be >= 1") } }
        func run() throws {
            let removed = try store.open(dataDir: data.dataDir).prune(keep: keep)
            print(removed.isEmpty ? "nothing to prune" : "removed generations \(removed.map(String.init).joined(separator: ", "))")
        }
    }
}
