import Foundation
import PostgresNIO
import CandidateStore

// Online experiments (`ExperimentStore`).

extension PostgresFeedStore {
    static let experimentColumns = "name, salt, status, variants, created_at, started_at, stopped_at, kind, primary_metric"

    static func experiment(_ r: PostgresRow) throws -> Experiment {
        let (name, salt, status, variants, created, started, stopped, kind, primary) =
            try r.decode((String, String, String, String, Int64, Int64?, Int64?, String, String?).self)
        return Experiment(name: name, salt: salt, status: Experiment.Status(rawValue: status) ?? .stopped,
                          variants: try JSONDecoder().decode([Experiment.Variant].self, from: Data(variants.utf8)),
                          createdAt: created, startedAt: started, stoppedAt: stopped, kind: Experiment.Kind(rawValue: kind) ?? .ab,
                          primary: primary)
    }

    public func createExperiment(name: String, variants: [Experiment.Variant], kind: Experiment.Kind,
                                 primary: String?) throws -> Experiment {
        let e = try Experiment.draft(name: name, variants: variants, kind: kind, primary: primary, now: Self.now())
        let json = String(decoding: try JSONEncoder().encode(variants), as: UTF8.self)
        try transaction { c in
            try run(c, "SELECT pg_advisory_xact_lock(727003)")  // not while a prune decides what to delete
            for v in variants {
                do { try requireComplete(c, v.generation) } catch StoreError.notFound {
                    throw ExperimentError.invalid("variant \(v.name): no generation \(v.generation)")
                } catch let err as StoreError {
                    throw ExperimentError.invalid("variant \(v.name): \(err)")
                }
            }
            let inserted = try run(c, """
                INSERT INTO experiments(name, salt, status, variants, created_at, kind, primary_metric) VALUES (\(name), \(e.salt),
                  \(e.status.rawValue), \(json), \(e.createdAt), \(kind.rawValue), \(primary)) ON CONFLICT(name) DO NOTHING RETURNING name
                """)
            if inserted.isEmpty { throw ExperimentError.exists(name) }
        }
        return e
    }

    public func experiments() throws -> [Experiment] {
        try read("SELECT \(unescaped: Self.experimentColumns) FROM experiments ORDER BY created_at, name COLLATE \"C\"").map(Self.experiment)
    }

    public func experiment(named name: String) throws -> Experiment? {
        try read("SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE name = \(name)").first.map(Self.experiment)
    }

    public func runningExperiment() throws -> Experiment? {
        try read("SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE status = 'running'").first.map(Self.experiment)
    }

    @discardableResult
    public func startExperiment(_ name: String, at time: Int64 = PostgresFeedStore.now()) throws -> Experiment {
        try transaction { c in
            // One experiment runs at a time: starts are serialised on a transaction-scoped lock.
            try run(c, "SELECT pg_advisory_xact_lock(727002)")
            guard let row = try run(c, "SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE name = \(name)").first else {
                throw ExperimentError.notFound(name)
            }
            let e = try Self.experiment(row)
            guard e.status == .draft else { throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue); only a draft starts") }
            if let other = try run(c, "SELECT name FROM experiments WHERE status = 'running'").first {
                throw ExperimentError.anotherRunning(try other.decode(String.self))
            }
            try run(c, "UPDATE experiments SET status = 'running', started_at = \(time) WHERE name = \(name)")
        }
        return try experiment(named: name)!
    }

    @discardableResult
    public func stopExperiment(_ name: String, at time: Int64 = PostgresFeedStore.now()) throws -> Experiment {
        try transaction { c in
            guard let row = try run(c, "SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE name = \(name) FOR UPDATE").first else {
                throw ExperimentError.notFound(name)
            }
            let e = try Self.experiment(row)
            guard e.status == .running else { throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue), not running") }
            try run(c, "UPDATE experiments SET status = 'stopped', stopped_at = \(time) WHERE name = \(name)")
        }
        return try experiment(named: name)!
    }

    public func deleteExperiment(_ name: String) throws {
        try transaction { c in
            guard let row = try run(c, "SELECT \(unescaped: Self.experimentColumns) FROM experiments WHERE name = \(name) FOR UPDATE").first else {
                throw ExperimentError.notFound(name)
            }
            let e = try Self.experiment(row)
            guard e.status == .draft else {
                throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue); only a draft (never started) can be deleted")
            }
            try run(c, "DELETE FROM experiments WHERE name = \(name)")
        }
    }
}
