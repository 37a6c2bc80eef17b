import Foundation
import LinearAlgebra
#if canImport(Glibc)
import Glibc
#else
#error("foryou builds and is tested on Linux (glibc) only")
#endif

/// Detects when OpenBLAS chose kernels that waste the CPU's vector units (Debian's 0.3.21 takes
/// some recent Intel CPUs for a "Prescott") and picks the right `OPENBLAS_CORETYPE`.
///
/// OpenBLAS reads `OPENBLAS_CORETYPE` once, when the library loads, so a correction needs a
/// re-exec of the process; `KernelSelection.ensure` does that before any BLAS work.
public struct KernelSelection: Sendable, Equatable {
    /// Vector capability, in increasing order.
    public enum Level: Int, Comparable, Sendable, CustomStringConvertible {
        case sse = 1, avx = 2, avx2 = 3, avx512 = 4
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public var description: String {
            switch self { case .sse: "SSE"; case .avx: "AVX"; case .avx2: "AVX2+FMA"; case .avx512: "AVX-512" }
        }
    }

    public let core: String
    public let coreLevel: Level?
    public let cpuLevel: Level
    public let cpuFlags: Set<String>

    public init(core: String, cpuFlags: Set<String>) {
        self.core = core
        self.cpuFlags = cpuFlags
        self.coreLevel = KernelSelection.level(ofCore: core)
        self.cpuLevel = KernelSelection.level(ofFlags: cpuFlags)
    }

    /// OpenBLAS core names grouped by the widest vector unit their SGEMM kernels use.
    public static func level(ofCore name: String) -> Level? {
        switch name.lowercased() {
        case "katmai", "coppermine", "northwood", "prescott", "banias", "core2", "penryn", "dunnington",
             "nehalem", "atom", "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano":
            return .sse
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator":
            return .avx
        case "haswell", "zen":
            return .avx2
        case "skylakex", "cooperlake", "sapphirerapids":
            return .avx512
        default:
            return nil
        }
    }

    public static func level(ofFlags flags: Set<String>) -> Level {
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return .avx512 }
        if flags.contains("avx2") && flags.contains("fma") { return .avx2 }
        if flags.contains("avx") { return .avx }
        return .sse
    }

    /// The core type to ask for, or nil when the loaded kernels already match the CPU.
    public var recommendedCore: String? {
        guard let coreLevel, coreLevel < cpuLevel else { return nil }
        switch cpuLevel {
        case .avx512: return cpuFlags.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
        case .avx2: return "Haswell"
        case .avx: return "Sandybridge"
        case .sse: return nil
        }
    }

    public static func readCPUFlags(from cpuinfo: String = "/proc/cpuinfo") -> Set<String> {
        guard let text = try? String(contentsOfFile: cpuinfo, encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    public static func current() -> KernelSelection {
        KernelSelection(core: BLASRuntime.coreName, cpuFlags: readCPUFlags())
    }

    static let markerVariable = "FORYOU_KERNEL_REEXEC"

    /// Outcome of `ensure`, for `--verbose` output and benchmarks.
    public struct Report: Sendable {
        public let core: String
        public let cpuLevel: Level
        public let note: String
    }

    /// If the loaded kernels are weaker than the CPU, set `OPENBLAS_CORETYPE` and re-exec this
    /// process (does not return in that case). After a re-exec, verifies the new kernels with a
    /// small SGEMM against a double-precision reference and falls back if they disagree.
    /// `FORYOU_BLAS_CORETYPE=keep` disables the correction.
    public static func ensure(arguments: [String] = CommandLine.arguments) -> Report {
        let env = ProcessInfo.processInfo.environment
        let sel = current()
        if let previous = env[markerVariable] {
            // We are the re-exec'd process.
            if selfCheck() {
                return Report(core: sel.core, cpuLevel: sel.cpuLevel,
                              note: "OpenBLAS had picked \(previous) kernels on a CPU with \(sel.cpuLevel); "
                                + "re-executed with OPENBLAS_CORETYPE=\(sel.core)")
            }
            // The forced kernels computed wrong results: go back to what OpenBLAS chose.
            if previous != sel.core {
                setenv("OPENBLAS_CORETYPE", previous, 1)
                setenv(markerVariable + "_FAILED", "1", 1)
                unsetenv(markerVariable)
                reexec(arguments)
            }
            return Report(core: sel.core, cpuLevel: sel.cpuLevel, note: "kernel self-check failed; kept \(sel.core)")
        }
        if env[markerVariable + "_FAILED"] != nil {
            return Report(core: sel.core, cpuLevel: sel.cpuLevel,
                          note: "forced kernels failed the self-check; using \(sel.core) (slower)")
        }
        if env["FORYOU_BLAS_CORETYPE"]?.lowercased() == "keep" {
            return Report(core: sel.core, cpuLevel: sel.cpuLevel, note: "kernel correction disabled by FORYOU_BLAS_CORETYPE=keep")
        }
        guard let wanted = sel.recommendedCore else {
            return Report(core: sel.core, cpuLevel: sel.cpuLevel,
                          note: "OpenBLAS kernels \(sel.core) match the CPU (\(sel.cpuLevel))")
        }
        setenv("OPENBLAS_CORETYPE", wanted, 1)
        setenv(markerVariable, sel.core, 1)
        reexec(arguments)
        // reexec only returns when execv failed; carry on with the slow kernels.
        unsetenv(markerVariable)
        return Report(core: sel.core, cpuLevel: sel.cpuLevel,
                      note: "OpenBLAS picked \(sel.core) on a \(sel.cpuLevel) CPU; re-exec to \(wanted) failed")
    }

    private static func reexec(_ arguments: [String]) {
        let path = "/proc/self/exe"
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv(path, &argv)
    }

    /// SGEMM on a small awkward shape against a double-precision reference.
    public static func selfCheck() -> Bool {
        let m = 37, n = 53, k = 67
        var a = [Float](repeating: 0, count: m * k), b = [Float](repeating: 0, count: n * k)
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2001 - 1000) / 1000
        }
        for i in a.indices { a[i] = next() }
        for i in b.indices { b[i] = next() }
        var c = [Float](repeating: 0, count: m * n)
        BLAS.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, transB: true, c: &c, ldc: n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[i * k + p]) * Double(b[j * k + p]) }
                if abs(Double(c[i * n + j]) - s) > 1e-3 { return false }
            }
        }
        return true
    }
}
