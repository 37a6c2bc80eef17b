import Foundation
import Artifacts

/// A recorded run: its directory and run.json.
public struct RunEntry: Sendable {
    public var directory: String
    public var run: RunRecord
    public var id: String { run.id }
}

public enum RegistryError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case ambiguous(String, [String])
    case badFilter(String)
    case unknownField(String, [String])

    public var description: String {
        switch self {
        case .notFound(let s): return "no run '\(s)' (neither a model directory nor a run id under the registry)"
        case .ambiguous(let s, let ids): return "'\(s)' matches several runs: \(ids.joined(separator: ", "))"
        case .badFilter(let s): return "bad filter '\(s)': use KEY=VALUE, KEY>NUMBER or KEY<NUMBER"
        case .unknownField(let s, let known):
            return "no run records a field '\(s)'; known fields: \(known.joined(separator: ", "))"
        }
    }
}

/// The runs under a models directory (each a subdirectory with run.json): listing, lookup by
/// id or unique prefix, filtering and sorting on any recorded field, diff, removal.
public struct RunsRegistry: Sendable {
    public let root: String
    public init(root: String) { self.root = root }

    /// Every readable run, oldest first, and the directories whose run.json exists but cannot be
    /// read (path, reason). Directories without a run.json are not runs and are left out.
    public func scan() -> (runs: [RunEntry], unreadable: [(directory: String, reason: String)]) {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: root) else { return ([], []) }
        var runs: [RunEntry] = [], bad: [(String, String)] = []
        for name in names.sorted() where !name.hasSuffix(".partial") {
            let dir = root + "/" + name
            guard fm.fileExists(atPath: dir + "/run.json") else { continue }
            do { runs.append(RunEntry(directory: dir, run: try ModelStore.readRun(dir))) } catch { bad.append((dir, "\(error)")) }
        }
        return (runs.sorted { ($0.run.createdAt, $0.id) < ($1.run.createdAt, $1.id) }, bad)
    }

    /// Every readable run, oldest first.
    public func all() -> [RunEntry] { scan().runs }

    /// A run id, a model directory name under the registry, a model directory path, or a unique
    /// prefix of a run id.
    public func resolve(_ s: String) throws -> RunEntry { try resolveNoting(s).entry }

    /// `resolve`, and a note when the name could have meant another run: a name without a "/" is
    /// looked up in the registry first (a same-named folder in the working directory does not
    /// shadow it); a path with a "/" is taken as a path first.
    public func resolveNoting(_ s: String) throws -> (entry: RunEntry, note: String?) {
        let asPath = try? ModelStore.readRun(s)
        if s.contains("/"), let run = asPath { return (RunEntry(directory: s, run: run), nil) }
        let runs = all()
        if let exact = runs.first(where: { $0.id == s || ($0.directory as NSString).lastPathComponent == s }) {
            var note: String?
            if asPath != nil, Self.canonical(s) != Self.canonical(exact.directory) {
                note = "'\(s)' is both run \(exact.id) in \(root) and the directory ./\(s); using the run (give ./\(s) for the directory)"
            }
            return (exact, note)
        }
        if let run = asPath { return (RunEntry(directory: s, run: run), nil) }
        let matches = runs.filter { $0.id.hasPrefix(s) }
        if matches.count == 1 { return (matches[0], nil) }
        if matches.isEmpty { throw RegistryError.notFound(s) }
        throw RegistryError.ambiguous(s, matches.map(\.id))
    }

    static func canonical(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// The fields `value` knows for these runs: the fixed ones, every metric and every parameter.
    public static func fields(_ runs: [RunEntry]) -> Set<String> {
        var f: Set<String> = ["id", "model", "created", "outcome", "code", "data", "rows", "users", "items", "fit_s", "test"]
        for e in runs { f.formUnion(e.run.metrics.keys); f.formUnion(e.run.params.keys); f.formUnion((e.run.results ?? [:]).keys) }
        return f
    }

    public func remove(_ s: String) throws -> RunEntry {
        let e = try resolve(s)
        try FileManager.default.removeItem(atPath: e.directory)
        return e
    }

    /// A recorded field by name: id, model, created, outcome, code, data (fingerprint), rows,
    /// users, items, fit_s, a metric ("ndcg@10"), a parameter ("factors"), or a training result
    /// ("validation_ndcg").
    public static func value(_ run: RunRecord, _ key: String) -> String? {
        switch key {
        case "id": return run.id
        case "model": return run.model
        case "created": return run.createdAt
        case "outcome": return run.outcome
        case "code": return run.codeVersion
        case "data": return run.data.fingerprint
        case "rows": return String(run.data.rows)
        case "users": return String(run.data.users)
        case "items": return String(run.data.items)
        case "fit_s": return String(format: "%.2f", run.timings.fitSeconds)
        case "test": return run.evaluation?.testFingerprint
        default:
            if let m = run.metrics[key] { return String(format: "%.6g", m) }
            return run.params[key] ?? run.results?[key]
        }
    }

    public struct Filter: Sendable {
        enum Op: Sendable { case equal, greater, less }
        let key: String, op: Op, value: String

        public init(_ s: String) throws {
            for (sym, op) in [("=", Op.equal), (">", Op.greater), ("<", Op.less)] {
                if let r = s.range(of: sym) {
                    key = String(s[..<r.lowerBound]); value = String(s[r.upperBound...]); self.op = op
                    guard !key.isEmpty, !value.isEmpty, op == .equal || Double(value) != nil else { throw RegistryError.badFilter(s) }
                    return
                }
            }
            throw RegistryError.badFilter(s)
        }

        public func matches(_ run: RunRecord) -> Bool {
            guard let v = RunsRegistry.value(run, key) else { return false }
            switch op {
            case .equal: return RunRecord.normalized(v) == RunRecord.normalized(value)
            case .greater: return (Double(v) ?? -.infinity) > Double(value)!
            case .less: return (Double(v) ?? .infinity) < Double(value)!
            }
        }
    }

    /// Runs matching every filter, sorted by `key` (numerically when both values are numbers;
    /// runs without the field last).
    /// A sort or filter field no run records is an error naming the known ones (when there are runs).
    public func list(filters: [Filter] = [], sort key: String? = nil, descending: Bool = false) throws -> [RunEntry] {
        let every = all()
        if !every.isEmpty {
            let known = Self.fields(every)
            for f in filters.map(\.key) + (key.map { [$0] } ?? []) where !known.contains(f) {
                throw RegistryError.unknownField(f, known.sorted())
            }
        }
        var runs = every.filter { e in filters.allSatisfy { $0.matches(e.run) } }
        if let key {
            runs.sort { a, b in
                let va = Self.value(a.run, key), vb = Self.value(b.run, key)
                guard let x = va else { return false }
                guard let y = vb else { return true }
                if let dx = Double(x), let dy = Double(y) { return descending ? dx > dy : dx < dy }
                return descending ? x > y : x < y
            }
        }
        return runs
    }

    /// Fields that differ between two runs: (field, a, b); "-" where one has none.
    public static func diff(_ a: RunRecord, _ b: RunRecord) -> [(field: String, a: String, b: String)] {
        var rows: [(String, String, String)] = []
        func add(_ f: String, _ x: String?, _ y: String?) { if x != y { rows.append((f, x ?? "-", y ?? "-")) } }
        add("model", a.model, b.model)
        add("code", a.codeVersion, b.codeVersion)
        add("data", a.data.fingerprint, b.data.fingerprint)
        add("data paths", a.data.paths.joined(separator: ","), b.data.paths.joined(separator: ","))
        add("test", a.evaluation?.testFingerprint, b.evaluation?.testFingerprint)
        add("outcome", a.outcome, b.outcome)
        for k in Set(a.params.keys).union(b.params.keys).sorted() { add("param " + k, a.params[k], b.params[k]) }
        let (ra, rb) = (a.results ?? [:], b.results ?? [:])
        for k in Set(ra.keys).union(rb.keys).sorted() { add("result " + k, ra[k], rb[k]) }
        for k in Set(a.metrics.keys).union(b.metrics.keys).sorted() {
            add("metric " + k, a.metrics[k].map { String(format: "%.6g", $0) }, b.metrics[k].map { String(format: "%.6g", $0) })
        }
        return rows
    }
}
