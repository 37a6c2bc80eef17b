import Foundation
import EventLog
import LinearAlgebra
import Rankers
import Artifacts

/// Files for notebooks: a run's per-user metrics as CSV, its factors or embeddings as `.npy`
/// (numpy's format, float32, C order, readable by `numpy.load`) and the id maps as CSV.
public enum Export {
    /// numpy `.npy` (format 1.0) bytes of a row-major float32 matrix.
    public static func npy(_ m: Matrix) -> [UInt8] {
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(m.rows), \(m.cols)), }"
        // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple of 64, ending in \n.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let n = UInt16(header.utf8.count)
        out += [UInt8(n & 0xff), UInt8(n >> 8)]
        out += Array(header.utf8)
        out.reserveCapacity(out.count + m.count * 4)
        for i in 0..<m.count {
            let b = m.storage[i].bitPattern.littleEndian
            out += [UInt8(b & 0xff), UInt8((b >> 8) & 0xff), UInt8((b >> 16) & 0xff), UInt8(b >> 24)]
        }
        return out
    }

    static func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// Writes the run's files into `directory` (created); returns their names.
    public static func run(_ e: RunEntry, to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let m = try ModelStore.load(e.directory)
        var written: [String] = []
        func write(_ name: String, _ bytes: [UInt8]) throws {
            try AtomicFile.write(bytes, to: directory + "/" + name)
            written.append(name)
        }
        func ids(_ raw: [String]) -> [UInt8] {
            Array(("index,id\n" + raw.enumerated().map { "\($0),\(csvField($1))\n" }.joined()).utf8)
        }
        try write("users.csv", ids(m.users.raw))
        try write("items.csv", ids(m.items.raw))
        switch m.ranker {
        case let f as FactorRanker:
            try write("user_factors.npy", npy(f.userFactors))
            try write("item_factors.npy", npy(f.itemFactors))
        case let p as PopularityModel:
            try write("item_scores.npy", npy(Matrix(rows: p.itemCount, cols: 1, values: p.itemScores)))
        case let e as EASEModel:
            // scores = X @ B, X the binary user x item matrix of the (user index, item index) pairs in seen.csv.
            try write("item_weights.npy", npy(e.weights))
            var csv = "user,item\n"
            for u in 0..<e.userRows.rows { for i in e.userRows.columns(ofRow: u) { csv += "\(u),\(i)\n" } }
            try write("seen.csv", Array(csv.utf8))
        default:
            break
        }
        if let info = e.run.evaluation {
            let rec = try EvaluationRecord.read(e.directory + "/" + info.perUserFile)
            var csv = "user," + EvaluationRecord.metricNames.joined(separator: ",") + "\n"
            for (u, user) in rec.users.enumerated() {
                csv += csvField(user) + EvaluationRecord.metricNames.map { "," + String(rec.metrics[$0]![u]) }.joined() + "\n"
            }
            try write("per_user_metrics.csv", Array(csv.utf8))
        }
        return written
    }
}
