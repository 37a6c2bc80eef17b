import Foundation
import GRDB
import Checksum

/// An online experiment. An A/B test (`kind` `.ab`) splits users between variants by a salted
/// hash of their id, each variant served from its own candidate generation. An interleaving test
/// (`.interleave`, exactly two variants) serves every user pages that merge both variants' lists
/// by team draft (`TeamDraft`), and credits each side with what its videos earned.
public struct Experiment: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case draft, running, stopped }
    public enum Kind: String, Codable, Sendable { case ab, interleave }

    public struct Variant: Codable, Sendable, Equatable {
        public var name: String
        /// The generation whose lists this variant's users get.
        public var generation: Int64
        public var weight: Double
        public init(name: String, generation: Int64, weight: Double) {
            self.name = name; self.generation = generation; self.weight = weight
        }
    }

    public var name: String
    /// Random per experiment, so two experiments split users independently.
    public var salt: String
    public var status: Status
    public var variants: [Variant]
    /// Milliseconds since the Unix epoch.
    public var createdAt: Int64
    public var startedAt: Int64?
    public var stoppedAt: Int64?
    public var kind: Kind
    /// The primary metric declared when the experiment was created (nil: the report's default).
    public var primary: String?

    public init(name: String, salt: String, status: Status = .draft, variants: [Variant], createdAt: Int64,
                startedAt: Int64? = nil, stoppedAt: Int64? = nil, kind: Kind = .ab, primary: String? = nil) {
        self.name = name; self.salt = salt; self.status = status; self.variants = variants; self.createdAt = createdAt
        self.startedAt = startedAt; self.stoppedAt = stoppedAt; self.kind = kind; self.primary = primary
    }

    /// A user's position in [0, 1): FNV-1a of salt and user id, then the SplitMix64 finaliser
    /// (so nearby ids land far apart). Stable across processes and machines.
    public static func bucket(user: String, salt: String) -> Double {
        var f = FNV64()
        Array((salt + "\u{0}" + user).utf8).withUnsafeBytes { f.update($0) }
        var z = f.value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1.0p-53
    }

    /// The user's variant: the bucket against the variants' cumulative weight shares.
    public func variant(for user: String) -> Variant {
        let total = variants.reduce(0) { $0 + $1.weight }
        let b = Self.bucket(user: user, salt: salt) * total
        var acc = 0.0
        for v in variants {
            acc += v.weight
            if b < acc { return v }
        }
        return variants[variants.count - 1]
    }

    /// The annotation events and served videos carry: {"exp":NAME,"var":VARIANT}.
    /// (Names are letters, digits, '-', '_', '.': nothing to escape.)
    public func annotation(for user: String) -> String {
        "{\"exp\":\"\(name)\",\"var\":\"\(kind == .interleave ? Self.interleaved : variant(for: user).name)\"}"
    }

    /// The variant name events carry under an interleaving test (every user sees both sides).
    public static let interleaved = "interleaved"


    /// A new draft with a random salt, after checking names, variant count and weights (every
    /// store's `createExperiment` starts here).
    public static func draft(name: String, variants: [Variant], kind: Kind = .ab, primary: String? = nil,
                             now: Int64) throws -> Experiment {
        guard validName(name), variants.allSatisfy({ validName($0.name) }) else {
            throw ExperimentError.invalid("experiment and variant names use letters, digits, '-', '_' and '.' (at most 64)")
        }
        guard variants.count >= 2 else { throw ExperimentError.invalid("an experiment needs at least two variants") }
        guard Set(variants.map(\.name)).count == variants.count else { throw ExperimentError.invalid("variant names must differ") }
        guard variants.allSatisfy({ $0.weight > 0 && $0.weight.isFinite }) else { throw ExperimentError.invalid("variant weights must be positive") }
        if kind == .interleave {
            guard variants.count == 2 else { throw ExperimentError.invalid("an interleaving test compares exactly two variants") }
            guard variants[0].generation != variants[1].generation else {
                throw ExperimentError.invalid("an interleaving test needs two different generations")
            }
        }
        if let primary, !validName(primary) { throw ExperimentError.invalid("primary metric '\(primary)' is not a metric name") }
        var salt = ""
        var g = SystemRandomNumberGenerator()
        for _ in 0..<4 { salt += String(format: "%04x", UInt16.random(in: 0...UInt16.max, using: &g)) }
        return Experiment(name: name, salt: salt, variants: variants, createdAt: now, kind: kind, primary: primary)
    }

    public static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || "-_.".contains($0) }
    }

    /// (experiment, variant) from an event's annotation, if it has one.
    public static func parseAnnotation(_ extra: String) -> (experiment: String, variant: String)? {
        guard !extra.isEmpty, let d = try? JSONDecoder().decode([String: String].self, from: Data(extra.utf8)),
              let e = d["exp"], let v = d["var"] else { return nil }
        return (e, v)
    }
}

public enum ExperimentError: Error, CustomStringConvertible, Equatable {
    case exists(String)
    case notFound(String)
    case invalid(String)
    case anotherRunning(String)

    public var description: String {
        switch self {
        case .exists(let n): return "an experiment named '\(n)' exists"
        case .notFound(let n): return "no experiment '\(n)'"
        case .invalid(let s): return s
        case .anotherRunning(let n): return "experiment '\(n)' is running; stop it first (one experiment decides the feed at a time)"
        }
    }
}

extension SQLiteFeedStore {
    static func registerExperiments(_ m: inout DatabaseMigrator) {
        m.registerMigration("v7-experiments") { db in
            try db.execute(sql: """
                CREATE TABLE experiments(name TEXT PRIMARY KEY, salt TEXT NOT NULL,
                  status TEXT NOT NULL CHECK(status IN ('draft','running','stopped')), variants TEXT NOT NULL,
                  created_at INTEGER NOT NULL, started_at INTEGER, stopped_at INTEGER)
                """)
        }
        m.registerMigration("v10-experiment-kind") { db in
            try db.execute(sql: "ALTER TABLE experiments ADD COLUMN kind TEXT NOT NULL DEFAULT 'ab'")
            try db.execute(sql: "ALTER TABLE experiments ADD COLUMN primary_metric TEXT")
        }
    }

    static func experiment(_ r: Row) throws -> Experiment {
        let variants = try JSONDecoder().decode([Experiment.Variant].self, from: Data((r["variants"] as String).utf8))
        return Experiment(name: r["name"], salt: r["salt"], status: Experiment.Status(rawValue: r["status"]) ?? .stopped,
                          variants: variants, createdAt: r["created_at"], startedAt: r["started_at"], stoppedAt: r["stopped_at"],
                          kind: Experiment.Kind(rawValue: r["kind"]) ?? .ab, primary: r["primary_metric"])
    }

    /// Creates a draft experiment; every variant's generation must exist, names must be unique
    /// and weights positive.
    public func createExperiment(name: String, variants: [Experiment.Variant], kind: Experiment.Kind,
                                 primary: String?) throws -> Experiment {
        let e = try Experiment.draft(name: name, variants: variants, kind: kind, primary: primary, now: Self.now())
        let salt = e.salt
        try pool.write { db in
            for v in variants where try Int64.fetchOne(db, sql: "SELECT id FROM generations WHERE id = ?", arguments: [v.generation]) == nil {
                throw ExperimentError.invalid("variant \(v.name): no generation \(v.generation)")
            }
            for v in variants {
                do { try SQLiteFeedStore.requireComplete(db, v.generation) } catch let e as StoreError {
                    throw ExperimentError.invalid("variant \(v.name): \(e)")
                }
            }
            if try Int.fetchOne(db, sql: "SELECT 1 FROM experiments WHERE name = ?", arguments: [name]) != nil {
                throw ExperimentError.exists(name)
            }
            let json = String(decoding: try JSONEncoder().encode(variants), as: UTF8.self)
            try db.execute(sql: """
                INSERT INTO experiments(name, salt, status, variants, created_at, kind, primary_metric) VALUES (?,?,?,?,?,?,?)
                """, arguments: [name, salt, e.status.rawValue, json, e.createdAt, kind.rawValue, primary])
        }
        return e
    }

    public func experiments() throws -> [Experiment] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM experiments ORDER BY created_at, name").map(Self.experiment) }
    }

    public func experiment(named name: String) throws -> Experiment? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM experiments WHERE name = ?", arguments: [name]).map(Self.experiment) }
    }

    /// The running experiment, if any.
    public func runningExperiment() throws -> Experiment? {
        try pool.read { db in try Row.fetchOne(db, sql: "SELECT * FROM experiments WHERE status = 'running'").map(Self.experiment) }
    }

    /// The named experiment inside a write transaction, or `.notFound`.
    private static func stored(_ db: Database, _ name: String) throws -> Experiment {
        guard let e = try Row.fetchOne(db, sql: "SELECT * FROM experiments WHERE name = ?", arguments: [name]).map(experiment) else {
            throw ExperimentError.notFound(name)
        }
        return e
    }

    /// Starts a draft (or restarts nothing: a stopped experiment stays stopped). At most one runs.
    @discardableResult
    public func startExperiment(_ name: String, at time: Int64 = SQLiteFeedStore.now()) throws -> Experiment {
        try pool.write { db in
            let e = try Self.stored(db, name)
            guard e.status == .draft else { throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue); only a draft starts") }
            if let other = try String.fetchOne(db, sql: "SELECT name FROM experiments WHERE status = 'running'") {
                throw ExperimentError.anotherRunning(other)
            }
            try db.execute(sql: "UPDATE experiments SET status = 'running', started_at = ? WHERE name = ?", arguments: [time, name])
        }
        return try experiment(named: name)!
    }

    @discardableResult
    public func stopExperiment(_ name: String, at time: Int64 = SQLiteFeedStore.now()) throws -> Experiment {
        try pool.write { db in
            let e = try Self.stored(db, name)
            guard e.status == .running else { throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue), not running") }
            try db.execute(sql: "UPDATE experiments SET status = 'stopped', stopped_at = ? WHERE name = ?", arguments: [time, name])
        }
        return try experiment(named: name)!
    }

    public func deleteExperiment(_ name: String) throws {
        try pool.write { db in
            let e = try Self.stored(db, name)
            guard e.status == .draft else {
                throw ExperimentError.invalid("experiment '\(name)' is \(e.status.rawValue); only a draft (never started) can be deleted")
            }
            try db.execute(sql: "DELETE FROM experiments WHERE name = ?", arguments: [name])
        }
    }
}
