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

    public var description: String {
        switch self {
        case .notFound(let s): return "no run '\(s)' (neither a model directory nor a run id under the registry)"
        case .ambiguous(let s, let ids): return "'\(s)' matches several runs: \(ids.joined(separator: ", "))"
        case .badFilter(let s): return "bad filter '\(s)': use KEY=VALUE, KEY>NUMBER or KEY<NUMBER"
        }
    }
}

/// The runs under a models directory (each a subdirectory with run.json): listing, lookup by
/// id or unique prefix, filtering and sorting on any recorded field, diff, removal.
public struct RunsRegistry: Sendable {
    public let root: String
    public init(root: String) { self.root = root }

    /// Every readable run, oldest first (unreadable directories are skipped).
    public func all() -> [RunEntry] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: root) else { return [] }
        return names.sorted().compactMap { name -> RunEntry? in
            let dir = root + "/" + name
            guard !name.hasSuffix(".partial"), let run = try? ModelStore.readRun(dir) else { return nil }
            return RunEntry(directory: dir, run: run)
        }.sorted { ($0.run.createdAt, $0.id) < ($1.run.createdAt, $1.id) }
    }

    /// A model directory path, a run id, or a unique prefix of one.
    public func resolve(_ s: String) throws -> RunEntry {
        if let run = try? ModelStore.readRun(s) { return RunEntry(directory: s, run: run) }
        let runs = all()
        if let exact = runs.first(where: { $0.id == s || ($0.directory as NSString).lastPathComponent == s }) { return exact }
        let matches = runs.filter { $0.id.hasPrefix(s) }
        if matches.count == 1 { return matches[0] }
        if matches.isEmpty { throw RegistryError.notFound(s) }
        throw RegistryError.ambiguous(s, matches.map(\.id))
    }

    public func remove(_ s: String) throws -> RunEntry {
        let e = try resolve(s)
        try FileManager.default.removeItem(atPath: e.directory)
        return e
    }

    /// A recorded field by name: id, model, created, outcome, code, data (fingerprint), rows,
    /// users, items, fit_s, a metric ("ndcg@10"), or a parameter ("factors").
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
            return run.params[key]
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
            case .equal: return v == value
            case .greater: return (Double(v) ?? -.infinity) > Double(value)!
            case .less: return (Double(v) ?? .infinity) < Double(value)!
            }
        }
    }

    /// Runs matching every filter, sorted by `key` (numerically when both values are numbers;
    /// runs without the field last).
    public func list(filters: [Filter] = [], sort key: String? = nil, descending: Bool = false) -> [RunEntry] {
        var runs = all().filter { e in filters.allSatisfy { $0.matches(e.run) } }
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
        for k in Set(a.metrics.keys).union(b.metrics.keys).sorted() {
            add("metric " + k, a.metrics[k].map { String(format: "%.6g", $0) }, b.metrics[k].map { String(format: "%.6g", $0) })
        }
        return rows
    }
}
