import Foundation

/// `run.json`: what a training run was given, what it produced and how long it took.
public struct RunRecord: Codable, Sendable {
    public struct DataInfo: Codable, Sendable {
        public var paths: [String]
        public var format: String
        /// CRC-32C over the input files' bytes, in order (hex).
        public var fingerprint: String
        public var rows: Int
        public var users: Int
        public var items: Int
        public var nnz: Int

        public init(paths: [String], format: String, fingerprint: String, rows: Int, users: Int, items: Int, nnz: Int) {
            self.paths = paths; self.format = format; self.fingerprint = fingerprint
            self.rows = rows; self.users = users; self.items = items; self.nnz = nnz
        }
    }

    public struct Timings: Codable, Sendable {
        public var importSeconds: Double
        public var fitSeconds: Double
        public var iterationSeconds: [Double]
        public var lossSeconds: Double?

        public init(importSeconds: Double, fitSeconds: Double, iterationSeconds: [Double], lossSeconds: Double?) {
            self.importSeconds = importSeconds; self.fitSeconds = fitSeconds
            self.iterationSeconds = iterationSeconds; self.lossSeconds = lossSeconds
        }
    }

    /// A recorded evaluation: which held-out set, and the file with each test user's metrics
    /// and top-K list (what `foryou compare` pairs two runs on).
    public struct EvaluationInfo: Codable, Sendable, Equatable {
        public var test: [String]
        /// Digest of the test file's bytes.
        public var testFingerprint: String
        public var k: Int
        public var users: Int
        /// File in the model directory: user, precision, recall, ndcg, ap, top-K items.
        public var perUserFile: String

        public init(test: [String], testFingerprint: String, k: Int, users: Int, perUserFile: String) {
            self.test = test; self.testFingerprint = testFingerprint; self.k = k; self.users = users
            self.perUserFile = perUserFile
        }
    }

    public var formatVersion = 1
    public var id: String
    public var model: String
    public var createdAt: String
    public var codeVersion: String
    public var params: [String: String]
    public var data: DataInfo
    public var losses: [Double]
    public var timings: Timings
    public var outcome: String
    public var environment: [String: String]
    /// Metrics by name ("ndcg@10", ...) from evaluations recorded against this model.
    public var metrics: [String: Double]
    /// Digest of each artifact file, checked again on load.
    public var files: [String: String]
    /// The latest recorded evaluation (nil: none).
    public var evaluation: EvaluationInfo?
    /// Per-iteration (or per-epoch) figures besides `losses`, by name (e.g. "validation_ndcg@10").
    public var curves: [String: [Double]]?
    /// A learned second stage's feature importances (total split gain by feature name).
    public var featureImportance: [String: Double]?
    /// What training measured or decided, as opposed to what it was given (`params`): validation
    /// figures, throughput, the chosen tree count or blend weight, how an early-stopped run ended.
    /// Runs recorded before 0.5 have these among their parameters.
    public var results: [String: String]?

    public init(id: String, model: String, createdAt: String, codeVersion: String, params: [String: String],
                data: DataInfo, losses: [Double], timings: Timings, outcome: String, environment: [String: String],
                metrics: [String: Double], files: [String: String]) {
        self.id = id; self.model = model; self.createdAt = createdAt; self.codeVersion = codeVersion
        self.params = params; self.data = data; self.losses = losses; self.timings = timings
        self.outcome = outcome; self.environment = environment; self.metrics = metrics; self.files = files
    }
}

public enum CodeVersion {
    public static let semantic = "0.4.0"

    /// The package version plus the git commit of the working directory when there is one.
    public static var current: String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git", "rev-parse", "--short", "HEAD"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return semantic }
        p.waitUntilExit()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return p.terminationStatus == 0 && !out.isEmpty ? "\(semantic)+\(out)" : semantic
    }
}

extension RunRecord {
    /// A parameter value in its one normal form: a decimal whose fraction is all zeros loses it
    /// ("1.0" -> "1", "-10.00" -> "-10"), so a value written from a Float and the same value typed
    /// in a sweep grid are one string. Anything else is kept as it is.
    public static func normalized(_ value: String) -> String {
        guard let dot = value.firstIndex(of: "."), dot != value.startIndex else { return value }
        let whole = value[..<dot], fraction = value[value.index(after: dot)...]
        let digits = whole.first == "-" ? whole.dropFirst() : whole[...]
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
              !fraction.isEmpty, fraction.allSatisfy({ $0 == "0" }) else { return value }
        return String(whole)
    }

    /// This record with every parameter in normal form.
    public var normalized: RunRecord {
        var r = self
        r.params = params.mapValues(Self.normalized)
        return r
    }
}

/// UTC timestamps for run records, run ids and printed times, formatted from `gmtime_r`: Foundation's date
/// formatting loads calendar and ICU data (megabytes of a small training run's peak memory).
public enum UTCStamp {
    static func fields(_ date: Date) -> tm {
        var t = time_t(date.timeIntervalSince1970.rounded(.down)), parts = tm()
        gmtime_r(&t, &parts)
        return parts
    }

    /// `2026-12-05T21:55:19Z`, as `ISO8601DateFormatter` writes it.
    public static func iso8601(_ date: Date = Date()) -> String {
        let f = fields(date)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", f.tm_year + 1900, f.tm_mon + 1, f.tm_mday, f.tm_hour, f.tm_min, f.tm_sec)
    }

    /// `20261205-215519`, for run ids.
    public static func compact(_ date: Date) -> String {
        let f = fields(date)
        return String(format: "%04d%02d%02d-%02d%02d%02d", f.tm_year + 1900, f.tm_mon + 1, f.tm_mday, f.tm_hour, f.tm_min, f.tm_sec)
    }
}
