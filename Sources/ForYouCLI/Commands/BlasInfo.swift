import ArgumentParser
import ForYou
import Foundation
import Platform

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
