import ArgumentParser
import ForYou
import Foundation
import Platform

struct Recommend: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Top-N for one user (seen items excluded).")

    @Option(help: "Model directory.") var model: String
    @Option(help: "Raw user id.") var user: String
    @Option(help: "List length N.") var top = 10
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.announce()
        let m = try ModelLoading.load(model)
        guard let u = m.users.index(of: user) else { throw CLIError("unknown user '\(user)' (not in \(model)/users.tsv)") }
        let recs = BatchScorer(top: top, threads: 1).recommend(m.ranker, users: [u], exclude: m.seen)
        for (item, score) in zip(recs.list(0), recs.scoreList(0)) {
            print("\(m.items.raw[Int(item)])\t\(score)")
        }
    }
}

struct Similar: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Items most similar to an item (cosine over item factors).")

    @Option(help: "Model directory (a factor model such as ALS).") var model: String
    @Option(help: "Raw item id.") var item: String
    @Option(help: "How many.") var top = 10
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.announce()
        let m = try ModelLoading.load(model)
        guard let f = m.ranker as? FactorRanker else { throw CLIError("\(m.run.model) models have no item factors; use an ALS model") }
        guard let i = m.items.index(of: item) else { throw CLIError("unknown item '\(item)' (not in \(model)/items.tsv)") }
        for (j, s) in f.similarItems(to: Int(i), count: top) { print("\(m.items.raw[j])\t\(s)") }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import an interaction file and report its size and import speed (validates every line).")

    @Argument(help: "Interaction file.") var file: String
    @OptionGroup var input: FormatOptions
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let (d, s) = try input.read(file, verbose: false)
        let csr = d.matrix()
        let rate = Double(d.count) / max(s, 1e-9)
        if json {
            print("{\"rows\": \(d.count), \"users\": \(d.users.count), \"items\": \(d.items.count), \"nnz\": \(csr.nnz), "
                  + "\"has_time\": \(d.timestamps != nil), \"import_s\": \(s), \"rows_per_s\": \(rate)}")
        } else {
            print("\(file): \(d.count) rows, \(d.users.count) users, \(d.items.count) items, \(csr.nnz) distinct pairs, "
                  + (d.timestamps != nil ? "with times" : "no times")
                  + String(format: "; imported in %.2fs (%.2fM rows/s)", s, rate / 1e6))
        }
    }
}

struct BlasInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blas-info",
        abstract: "Show the OpenBLAS kernels in use and measure SGEMM on the scoring shape.")

    @Option(help: "Rows of the user block (M).") var m = 256
    @Option(help: "Catalog size (N).") var n = 50_000
    @Option(help: "Factors (K).") var k = 64
    @Flag(help: "Measure SGEMM GFLOP/s with one BLAS call per thread, like the scorer.") var benchmark = false
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var common: CommonOptions

    func run() throws {
        common.announce()
        let r = CLIContext.kernelReport
        let sel = KernelSelection.current()
        var out: [String: Any] = ["core": BLASRuntime.coreName, "config": BLASRuntime.configuration,
                                  "cpu_level": "\(sel.cpuLevel)", "note": r?.note ?? "",
                                  "cores": BLASRuntime.availableCores]
        if benchmark {
            let threads = common.threads > 0 ? common.threads : BLASRuntime.availableCores
            out["sgemm_gflops"] = BLASBenchmark.sgemm(m: m, n: n, k: k, threads: threads)
            out["shape"] = "\(m)x\(k) * \(k)x\(n)"
            out["threads"] = threads
        }
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for key in out.keys.sorted() { print("\(key): \(out[key]!)") }
        }
    }
}
