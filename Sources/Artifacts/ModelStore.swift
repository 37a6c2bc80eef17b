import Foundation
import EventLog
import Checksum
import LinearAlgebra
import Interactions
import Rankers
import Reranking

/// A trained model on disk: `DIR/run.json`, `users.tsv` and `items.tsv` (raw ids in index
/// order), `seen.bin` (the training matrix, used to exclude seen items), and the model's own
/// binary files (`user_factors.bin` + `item_factors.bin` for factor models, `popularity.bin`).
/// A directory is written under a temporary name and renamed into place when complete.
public struct StoredModel {
    public var ranker: Ranker
    public var users: IdMap
    public var items: IdMap
    public var seen: CSR
    public var run: RunRecord
    public var directory: String
}

public enum ModelStore {
    public static func save(_ ranker: Ranker, users: IdMap, items: IdMap, seen: CSR, run: RunRecord,
                            to directory: String) throws {
        let fm = FileManager.default
        let parent = (directory as NSString).deletingLastPathComponent
        if !parent.isEmpty { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) }
        let tmp = directory + ".partial"
        if fm.fileExists(atPath: tmp) { try fm.removeItem(atPath: tmp) }
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        var run = run
        var files: [String: String] = [:]
        func record(_ name: String) throws {
            guard let d = digest(path: tmp + "/" + name) else { throw ArtifactError.missing(tmp + "/" + name) }
            files[name] = d
        }
        try AtomicFile.write(users.raw.joined(separator: "\n") + (users.count > 0 ? "\n" : ""), to: tmp + "/users.tsv")
        try AtomicFile.write(items.raw.joined(separator: "\n") + (items.count > 0 ? "\n" : ""), to: tmp + "/items.tsv")
        // A second stage keeps the raw weights it was trained with (its user features read them).
        let seen = (ranker as? RerankModel)?.seen ?? seen
        try BinaryFormat.writeCSR(seen, to: tmp + "/seen.bin")
        switch ranker {
        case let f as FactorRanker:
            try BinaryFormat.writeMatrix(f.userFactors, to: tmp + "/user_factors.bin")
            try BinaryFormat.writeMatrix(f.itemFactors, to: tmp + "/item_factors.bin")
            if let t = f as? TwoTowerRanker, let m = t.model {
                // The towers, to embed users and videos unseen at training time when scoring.
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                try AtomicFile.write(Array(try enc.encode(m.config)) + [10], to: tmp + "/two_tower.json")
                for (n, p) in m.parameters.enumerated() { try BinaryFormat.writeMatrix(p, to: tmp + "/tt_\(n).bin") }
                // The items' training features (rows = items, columns = feature buckets).
                var rows: [Int32] = [], cols: [Int32] = []
                for (i, f) in t.itemFeatures.enumerated() { for b in f { rows.append(Int32(i)); cols.append(b) } }
                try BinaryFormat.writeCSR(CSR(rows: t.itemFeatures.count, cols: m.config.featureBuckets, rowIndex: rows, colIndex: cols,
                                              values: [Float](repeating: 1, count: rows.count)), to: tmp + "/tt_features.bin")
            }
        case let p as PopularityModel:
            try BinaryFormat.writeMatrix(Matrix(rows: p.itemCount, cols: 1, values: p.itemScores), to: tmp + "/popularity.bin")
        case let e as EASEModel:
            // The user rows are seen.bin's pattern; only B is the model's own.
            try BinaryFormat.writeMatrix(e.weights, to: tmp + "/ease_weights.bin")
        case let r as RerankModel:
            // Each source is a model directory of its own under sources/; the ranker is XGBoost's JSON.
            for (name, source) in zip(r.sourceNames, r.sources) {
                var sub = run
                sub.id = run.id + "-" + name
                sub.model = source.kind  // what load dispatches on ("ease" for ease-recent too)
                sub.featureImportance = nil
                sub.curves = nil
                // An EASE source keeps its own user rows (ease-recent: each user's newest items).
                try save(source, users: users, items: items, seen: (source as? EASEModel)?.userRows ?? seen, run: sub,
                         to: tmp + "/sources/" + name)
            }
            // The bag: rerank_booster.json, then rerank_booster_2.json, ... (summed at prediction).
            for (k, b) in r.boosters.enumerated() {
                try AtomicFile.write(try b.serialized(), to: tmp + "/" + Self.boosterFile(k))
            }
            let stats = r.features.stats.columns
            try BinaryFormat.writeMatrix(Matrix(rows: 5, cols: items.count, values: stats.flatMap { $0 }), to: tmp + "/rerank_item_stats.bin")
            if let tokens = r.features.itemTokens {
                var rows: [Int32] = [], cols: [Int32] = []
                for (i, f) in tokens.enumerated() { for b in f { rows.append(Int32(i)); cols.append(b) } }
                try BinaryFormat.writeCSR(CSR(rows: tokens.count, cols: Int(cols.max() ?? 0) + 1, rowIndex: rows, colIndex: cols,
                                              values: [Float](repeating: 1, count: rows.count)), to: tmp + "/rerank_tokens.bin")
            }
            run.params["sources"] = r.sourceNames.joined(separator: ",")
            run.params["per_source"] = "\(r.perSource)"
        default:
            throw ArtifactError.inconsistent(directory, "cannot store a ranker of kind \(ranker.kind)")
        }
        for name in try fm.contentsOfDirectory(atPath: tmp) {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: tmp + "/" + name, isDirectory: &isDir), isDir.boolValue { continue }  // sub-models record their own
            try record(name)
        }
        run.files = files
        try writeRun(run, to: tmp + "/run.json")
        if fm.fileExists(atPath: directory) { try fm.removeItem(atPath: directory) }
        try fm.moveItem(atPath: tmp, toPath: directory)
        try AtomicFile.syncDirectory(parent.isEmpty ? "." : parent)
    }

    public static func writeRun(_ run: RunRecord, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(Array(try enc.encode(run.normalized)) + [10], to: path)
    }

    public static func readRun(_ directory: String) throws -> RunRecord {
        let path = directory + "/run.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ArtifactError.missing(path + " (is \(directory) a model directory?)")
        }
        do { return try JSONDecoder().decode(RunRecord.self, from: data).normalized } catch {
            throw ArtifactError.badMetadata(path, "unreadable run record: \(error)")
        }
    }

    public static func load(_ directory: String) throws -> StoredModel {
        let run = try readRun(directory)
        // Every artifact must match the checksum recorded when it was written.
        for (name, crc) in run.files {
            let path = directory + "/" + name
            guard let d = digest(path: path) else { throw ArtifactError.missing(path) }
            if d != crc {
                // Let the binary reader name truncation precisely when it can.
                if name.hasSuffix(".bin") {
                    if ["seen.bin", "tt_features.bin", "rerank_tokens.bin"].contains(name) { _ = try BinaryFormat.readCSR(path) } else { _ = try BinaryFormat.readMatrix(path) }
                }
                throw ArtifactError.checksumMismatch(path)
            }
        }
        let users = try readIds(directory + "/users.tsv")
        let items = try readIds(directory + "/items.tsv")
        let seen = try BinaryFormat.readCSR(directory + "/seen.bin")
        guard seen.rows == users.count, seen.cols == items.count else {
            throw ArtifactError.inconsistent(directory + "/seen.bin", "shape \(seen.rows) x \(seen.cols) does not match "
                                             + "\(users.count) users x \(items.count) items")
        }
        let ranker: Ranker
        switch run.model {
        case "als":
            let (x, y) = try readFactors(directory, users: users.count, items: items.count)
            var cfg = ALSConfig()
            cfg.factors = x.cols
            if let r = run.params["reg"].flatMap(Float.init) { cfg.regularization = r }
            ranker = ALSModel(config: cfg, userFactors: x, itemFactors: y)
        case "blend":
            let (x, y) = try readFactors(directory, users: users.count, items: items.count)
            ranker = StoredFactors(kind: "blend", userFactors: x, itemFactors: y)
        case "two-tower":
            let (x, y) = try readFactors(directory, users: users.count, items: items.count)
            var model: TwoTowerModel?
            if let data = FileManager.default.contents(atPath: directory + "/two_tower.json") {
                guard let cfg = try? JSONDecoder().decode(TwoTowerConfig.self, from: data) else {
                    throw ArtifactError.badMetadata(directory + "/two_tower.json", "unreadable two-tower config")
                }
                var ps: [Matrix] = []
                for n in 0..<11 { ps.append(try BinaryFormat.readMatrix(directory + "/tt_\(n).bin")) }
                do { model = try TwoTowerModel(config: cfg, parameters: ps) } catch {
                    throw ArtifactError.inconsistent(directory, "\(error)")
                }
            }
            var features: [[Int32]]?
            let featuresPath = directory + "/tt_features.bin"
            if model != nil, FileManager.default.fileExists(atPath: featuresPath) {
                let f = try BinaryFormat.readCSR(featuresPath)
                guard f.rows == items.count else {
                    throw ArtifactError.inconsistent(featuresPath, "\(f.rows) rows for \(items.count) items")
                }
                features = (0..<f.rows).map { Array(f.columns(ofRow: $0)) }
            }
            ranker = TwoTowerRanker(userFactors: x, itemFactors: y, model: model, itemFeatures: features)
        case "ease":
            let b = try BinaryFormat.readMatrix(directory + "/ease_weights.bin")
            guard b.rows == items.count, b.cols == items.count else {
                throw ArtifactError.inconsistent(directory + "/ease_weights.bin", "shape \(b.rows) x \(b.cols) for \(items.count) items")
            }
            ranker = EASEModel(weights: b, userRows: seen.filteredBinary(), lambda: run.params["lambda"].flatMap(Float.init) ?? 0)
        case "rerank":
            let names = (run.params["sources"] ?? "").split(separator: ",").map(String.init)
            guard !names.isEmpty, let perSource = run.params["per_source"].flatMap(Int.init) else {
                throw ArtifactError.badMetadata(directory + "/run.json", "a rerank model needs its sources and per_source")
            }
            var sources: [(String, Ranker)] = []
            for name in names {
                let sub = try load(directory + "/sources/" + name)
                guard sub.users.raw == users.raw, sub.items.raw == items.raw else {
                    throw ArtifactError.inconsistent(directory + "/sources/" + name, "its users or items differ from the second stage's")
                }
                sources.append((name, sub.ranker))
            }
            let stats = try BinaryFormat.readMatrix(directory + "/rerank_item_stats.bin")
            guard stats.rows == 5, stats.cols == items.count else {
                throw ArtifactError.inconsistent(directory + "/rerank_item_stats.bin", "shape \(stats.rows) x \(stats.cols) for \(items.count) items")
            }
            let columns = (0..<5).map { Array(UnsafeBufferPointer(start: stats.row($0), count: items.count)) }
            var tokens: [[Int32]]?
            if FileManager.default.fileExists(atPath: directory + "/rerank_tokens.bin") {
                let t = try BinaryFormat.readCSR(directory + "/rerank_tokens.bin")
                tokens = (0..<t.rows).map { Array(t.columns(ofRow: $0)) }
            }
            let features = RerankFeatures(sources: names, stats: ItemStats(columns: columns), itemTokens: tokens)
            var boosters: [Booster] = []
            while true {
                let path = directory + "/" + Self.boosterFile(boosters.count)
                guard let bytes = FileManager.default.contents(atPath: path) else {
                    if boosters.isEmpty { throw ArtifactError.missing(path) }
                    break
                }
                do { boosters.append(try Booster.load(Array(bytes), featureCount: features.count)) } catch {
                    throw ArtifactError.inconsistent(path, "\(error)")
                }
            }
            ranker = RerankModel(sources: sources, perSource: perSource, seen: seen, features: features, boosters: boosters)
        case "popularity":
            let p = try BinaryFormat.readMatrix(directory + "/popularity.bin")
            guard p.rows == items.count else {
                throw ArtifactError.inconsistent(directory, "popularity has \(p.rows) items, id map \(items.count)")
            }
            ranker = PopularityModel(userCount: users.count, itemScores: p.values)
        default:
            throw ArtifactError.badMetadata(directory + "/run.json", "unknown model kind '\(run.model)'")
        }
        return StoredModel(ranker: ranker, users: users, items: items, seen: seen, run: run, directory: directory)
    }

    /// `user_factors.bin` and `item_factors.bin`, checked against the id maps' sizes.
    static func readFactors(_ directory: String, users: Int, items: Int) throws -> (Matrix, Matrix) {
        let x = try BinaryFormat.readMatrix(directory + "/user_factors.bin")
        let y = try BinaryFormat.readMatrix(directory + "/item_factors.bin")
        guard x.rows == users, y.rows == items, x.cols == y.cols else {
            throw ArtifactError.inconsistent(directory, "factor shapes \(x.rows)x\(x.cols) / \(y.rows)x\(y.cols) do not "
                                             + "match \(users) users x \(items) items")
        }
        return (x, y)
    }

    static func readIds(_ path: String) throws -> IdMap {
        guard let data = FileManager.default.contents(atPath: path) else { throw ArtifactError.missing(path) }
        let text = String(decoding: data, as: UTF8.self)
        var ids = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if ids.last == "" { ids.removeLast() }
        let map = IdMap(raw: ids)
        guard map.count == ids.count else { throw ArtifactError.inconsistent(path, "duplicate ids") }
        return map
    }

    /// The k-th booster of a second stage's bag (0-based).
    static func boosterFile(_ k: Int) -> String { k == 0 ? "rerank_booster.json" : "rerank_booster_\(k + 1).json" }

    public static func hex(_ v: UInt32) -> String { String(format: "%08x", v) }

    public static func digest(_ data: Data) -> String {
        digestString(data.withUnsafeBytes { FNV64.digest($0) })
    }

    static func digestString(_ fnv: UInt64) -> String { "fnv1a64:" + String(format: "%016llx", fnv) }

    /// The same digest of a file, read 1 MiB at a time (artifacts run to gigabytes; checking
    /// one never holds it whole); nil when it cannot be read.
    public static func digest(path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var h = FNV64()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = read(fd, buf.baseAddress!, buf.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        return digestString(h.value)
    }

    /// CRC-32C over files' bytes, in order: the data fingerprint of a run.
    /// How many training users interacted with each item of a stored model (by raw id).
    public static func trainingPopularity(_ directory: String) throws -> [String: Int] {
        let items = try readIds(directory + "/items.tsv")
        let seen = try BinaryFormat.readCSR(directory + "/seen.bin")
        guard seen.cols == items.count else { throw ArtifactError.inconsistent(directory + "/seen.bin", "columns do not match items.tsv") }
        var counts = [Int](repeating: 0, count: items.count)
        for i in seen.indices { counts[Int(i)] += 1 }
        return Dictionary(uniqueKeysWithValues: zip(items.raw, counts))
    }

    /// Adds (or replaces) a file in a stored model directory and records its digest in run.json,
    /// with `update` applied to the run record; the file and then run.json are written atomically.
    public static func addFile(_ name: String, bytes: [UInt8], to directory: String, update: (inout RunRecord) -> Void) throws {
        var run = try readRun(directory)
        try AtomicFile.write(bytes, to: directory + "/" + name)
        run.files[name] = digest(Data(bytes))
        update(&run)
        try writeRun(run, to: directory + "/run.json")
    }

    public static func fingerprint(paths: [String]) throws -> String {
        var c = CRC32C()
        for p in paths {
            // In 64 MiB steps, each given back once summed: a 1.5 GB input no longer adds 1.5 GB
            // to training's peak resident set.
            let f = try MappedFile(path: p)
            let step = 64 << 20
            for at in stride(from: 0, to: f.bytes.count, by: step) {
                c.update(UnsafeRawBufferPointer(rebasing: f.bytes[at..<min(f.bytes.count, at + step)]))
                f.release(upTo: at + step)
            }
        }
        return hex(c.finalValue)
    }

    public static func newRunId(model: String, date: Date = Date()) -> String {
        var g = SystemRandomNumberGenerator()
        return "\(model)-\(UTCStamp.compact(date))-\(String(format: "%04x", UInt16.random(in: 0...UInt16.max, using: &g)))"
    }
}
