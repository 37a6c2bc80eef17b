import ArgumentParser
import ForYou
import Foundation

struct Videos: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The video catalog.", subcommands: [Import.self, List.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a catalog file: JSON lines with id, caption, tags, topic, creator, duration_ms, status, stream_url, thumbnail_url.")
        @Argument(help: "JSONL file.") var file: String
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read \(file)") }
            var videos: [Video] = []
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
                do { videos.append(try CatalogLine.decode(String(line), now: now)) } catch {
                    throw CLIError("\(file):\(n + 1): \(error)")
                }
            }
            try store.open(dataDir: data.dataDir).upsertVideos(videos)
            print("imported \(videos.count) videos into \(store.store.map(StoreOption.redacted) ?? data.directory.store)")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the catalog as JSON lines.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        func run() throws {
            for v in try store.open(dataDir: data.dataDir).videos() { print(CatalogLine.encode(v)) }
        }
    }
}
