import CBLAS
import Foundation

/// Control of OpenBLAS's own threading and kernel choice.
///
/// The engine parallelises across users itself, so OpenBLAS runs single-threaded inside each
/// worker thread; letting both layers spawn threads oversubscribes the cores.
public enum BLASRuntime {
    public static var threads: Int { Int(openblas_get_num_threads()) }

    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    /// The kernel family OpenBLAS picked at load time ("Haswell", "SkylakeX", "Prescott", ...).
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    public static var configuration: String {
        guard let p = openblas_get_config() else { return "unknown" }
        return String(cString: p)
    }

    /// Number of cores available to this process.
    public static var availableCores: Int { ProcessInfo.processInfo.activeProcessorCount }
}
