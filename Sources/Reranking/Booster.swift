import Foundation
import CXGBoost

public struct BoosterError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { "xgboost: " + message }
}

/// A gradient-boosted tree ensemble through XGBoost's C API: LambdaMART (`rank:ndcg`) over
/// groups of rows (one group per user), dense float features with NaN as "missing".
/// Prediction goes through one lock: the C API's predict shares per-booster buffers.
public final class Booster: @unchecked Sendable {
    let handle: BoosterHandle
    private let lock = NSLock()
    public let featureCount: Int

    static func check(_ code: Int32) throws {
        if code != 0 { throw BoosterError(message: String(cString: fy_XGBGetLastError())) }
    }

    /// A DMatrix of `rows` x `cols` dense features (row-major), optional labels and group sizes.
    final class Data {
        var handle: DMatrixHandle?
        init(_ x: [Float], rows: Int, cols: Int, labels: [Float]? = nil, groups: [Int]? = nil) throws {
            precondition(x.count == rows * cols)
            try Booster.check(x.withUnsafeBufferPointer { fy_XGDMatrixCreateFromMat($0.baseAddress, bst_ulong(rows), bst_ulong(cols), .nan, &handle) })
            if let labels {
                try Booster.check(labels.withUnsafeBufferPointer { fy_XGDMatrixSetFloatInfo(handle, "label", $0.baseAddress, bst_ulong(labels.count)) })
            }
            if let groups {
                let g = groups.map { UInt32($0) }
                try Booster.check(g.withUnsafeBufferPointer { fy_XGDMatrixSetUIntInfo(handle, "group", $0.baseAddress, bst_ulong(g.count)) })
            }
        }
        deinit { if let handle { fy_XGDMatrixFree(handle) } }
    }

    init(handle: BoosterHandle, featureCount: Int) {
        self.handle = handle
        self.featureCount = featureCount
    }

    deinit { fy_XGBoosterFree(handle) }

    /// Trains `rounds` trees on grouped rows. `params` are XGBoost parameters
    /// (e.g. objective rank:ndcg, eta, max_depth); `afterRound(r)` runs after each tree and can
    /// stop training by returning false.
    public static func train(features x: [Float], rows: Int, cols: Int, labels: [Float], groups: [Int], params: [(String, String)],
                             rounds: Int, afterRound: (Int) -> Bool = { _ in true }) throws -> Booster {
        precondition(groups.reduce(0, +) == rows, "group sizes must add up to the rows")
        let data = try Data(x, rows: rows, cols: cols, labels: labels, groups: groups)
        var h: BoosterHandle?
        var dm: [DMatrixHandle?] = [data.handle]
        try check(dm.withUnsafeMutableBufferPointer { fy_XGBoosterCreate($0.baseAddress, 1, &h) })
        let b = Booster(handle: h!, featureCount: cols)
        for (k, v) in params { try check(fy_XGBoosterSetParam(h, k, v)) }
        for r in 0..<rounds {
            try check(fy_XGBoosterUpdateOneIter(h, Int32(r), data.handle))
            if !afterRound(r + 1) { break }
        }
        withExtendedLifetime(data) {}
        return b
    }

    /// Scores of `rows` feature rows, using the first `trees` trees (0 = all).
    public func predict(_ x: [Float], rows: Int, trees: Int = 0) throws -> [Float] {
        guard rows > 0 else { return [] }
        let data = try Data(x, rows: rows, cols: featureCount)
        lock.lock()
        defer { lock.unlock() }
        var n: bst_ulong = 0
        var out: UnsafePointer<Float>?
        try Booster.check(fy_XGBoosterPredict(handle, data.handle, 0, UInt32(trees), 0, &n, &out))
        guard Int(n) == rows, let out else { throw BoosterError(message: "predicted \(n) values for \(rows) rows") }
        return Array(UnsafeBufferPointer(start: out, count: rows))
    }

    /// A new booster of the first `trees` trees (boosting rounds) of this one.
    public func prefix(_ trees: Int) throws -> Booster {
        var h: BoosterHandle?
        lock.lock()
        defer { lock.unlock() }
        try Booster.check(fy_XGBoosterSlice(handle, 0, Int32(trees), 1, &h))
        return Booster(handle: h!, featureCount: featureCount)
    }

    /// Trees in the model.
    public var rounds: Int {
        var n: Int32 = 0
        _ = fy_XGBoosterBoostedRounds(handle, &n)
        return Int(n)
    }

    /// The model in XGBoost's JSON format (what `load` reads back).
    public func serialized() throws -> [UInt8] {
        var n: bst_ulong = 0
        var out: UnsafePointer<CChar>?
        try Booster.check(fy_XGBoosterSaveModelToBuffer(handle, "{\"format\": \"json\"}", &n, &out))
        return out!.withMemoryRebound(to: UInt8.self, capacity: Int(n)) { Array(UnsafeBufferPointer(start: $0, count: Int(n))) }
    }

    public static func load(_ bytes: [UInt8], featureCount: Int) throws -> Booster {
        var h: BoosterHandle?
        try check(fy_XGBoosterCreate(nil, 0, &h))
        let b = Booster(handle: h!, featureCount: featureCount)
        try check(bytes.withUnsafeBytes { fy_XGBoosterLoadModelFromBuffer(h, $0.baseAddress, bst_ulong(bytes.count)) })
        return b
    }

    /// Total gain of the splits on each feature (index -> gain; unused features absent).
    public func gainByFeature() throws -> [Int: Double] {
        var nf: bst_ulong = 0, dim: bst_ulong = 0
        var names: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        var shape: UnsafePointer<bst_ulong>?
        var scores: UnsafePointer<Float>?
        try Booster.check(fy_XGBoosterFeatureScore(handle, "{\"importance_type\": \"total_gain\"}", &nf, &names, &dim, &shape, &scores))
        var out: [Int: Double] = [:]
        for i in 0..<Int(nf) {
            guard let p = names?[i] else { continue }
            let name = String(cString: p)  // "f12"
            if let idx = Int(name.dropFirst()) { out[idx] = Double(scores![i]) }
        }
        return out
    }
}
