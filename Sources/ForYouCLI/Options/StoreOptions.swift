import ArgumentParser
import ForYou
import Foundation

struct DataDirOption: ParsableArguments {
    @Option(name: .customLong("data-dir"), help: "Data directory of the embedded store and event log.")
    var dataDir = "var"

    var directory: DataDirectory { DataDirectory(dataDir) }
}

/// `--store`: which candidate store a command works on.
struct StoreOption: ParsableArguments {
    @Option(help: ArgumentHelp("Candidate store: sqlite:PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (default: the data directory's SQLite file).",
                               valueName: "store"))
    var store: String?

    func open(dataDir: String) throws -> any FeedStore { try StoreOption.open(store, dataDir: dataDir) }

    static func open(_ spec: String?, dataDir: String) throws -> any FeedStore {
        guard let spec else { return try DataDirectory(dataDir).openStore() }
        do {
            if spec.hasPrefix("sqlite:") { return try SQLiteFeedStore(path: String(spec.dropFirst("sqlite:".count))) }
            if spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://") { return try PostgresFeedStore(url: spec) }
        } catch let e as PostgresStoreError { throw CLIError("\(e)") }
        throw CLIError("unknown store '\(spec)': give sqlite:PATH or postgres://USER@HOST:PORT/DATABASE")
    }

    /// A store URL fit for logs: the password replaced.
    static func redacted(_ spec: String) -> String { spec.hasPrefix("postgres") ? PostgresFeedStore.redact(spec) : spec }
}

/// `--events file:DIR|kafka://BROKERS/TOPIC`: which event log a command appends to or reads.
struct EventsOption: ParsableArguments {
    @Option(name: .customLong("events"),
            help: ArgumentHelp("Event log: file:DIR or kafka://HOST:PORT[,HOST:PORT...]/TOPIC (default: the data directory's events/ folder; librdkafka settings from the file FORYOU_KAFKA_CONFIG names).",
                               valueName: "log"))
    var spec: String?

    enum Location { case file(String), kafka(KafkaLocation) }

    func location(dataDir: String) throws -> Location {
        guard let spec else { return .file(DataDirectory(dataDir).events) }
        if spec.hasPrefix("file:") {
            let dir = String(spec.dropFirst("file:".count))
            guard !dir.isEmpty else { throw CLIError("--events file:DIR needs a folder") }
            return .file(dir)
        }
        if spec.hasPrefix("kafka://") {
            do { return .kafka(try KafkaLocation(url: spec)) } catch let e as KafkaError { throw CLIError("--events: \(e)") }
        }
        throw CLIError("--events '\(spec)': give file:DIR or kafka://HOST:PORT/TOPIC")
    }
}
