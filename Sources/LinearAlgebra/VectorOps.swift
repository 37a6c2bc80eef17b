import CVectorKernels

/// Small dense kernels for the per-row work around the BLAS calls (softmax rows, embedding
/// gathers and scatters, Adam, the towers' element-wise passes), where a BLAS call's overhead
/// exceeds its work. They are C (CVectorKernels), built for AVX-512, AVX2+FMA and baseline
/// x86-64; the widest this CPU runs is chosen when the program loads.
public enum VectorOps {
    /// The instruction set the kernels run with: "avx512", "avx2" or "baseline".
    public static var level: String { String(cString: fy_kernels_level()) }

    /// Every instruction set this build has kernels for, widest last.
    public static let levels = ["baseline", "avx2", "avx512"]

    /// Switches the kernels to `level` if this CPU runs it (tests compare every build against a
    /// reference); false, and nothing changed, otherwise. Not while kernels run elsewhere.
    @discardableResult
    public static func use(_ level: String) -> Bool { fy_kernels_use(level) != 0 }

    /// y += a * x over n floats.
    @inline(__always)
    public static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        fy_axpy(n, a, x, y)
    }

    /// x *= a over n floats.
    @inline(__always)
    public static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float) {
        fy_scale(x, n, a)
    }

    /// x[i] = e^x[i] over n floats (|relative error| < 3e-7 on [-87, 88]; 0 below -87,
    /// including -infinity).
    @inline(__always)
    public static func exp(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        fy_exp(x, n)
    }

    /// One row of logits in place, z = row - bias (entries at -infinity excluded): returns
    /// log(sum(e^z)); the row becomes gradScale * softmax(z), or e^(z - max z) when gradScale
    /// is 0.
    @inline(__always)
    public static func softmaxRow(_ row: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, _ n: Int,
                                  gradScale: Float) -> Double {
        fy_softmax_row(row, bias, n, gradScale)
    }

    /// y += a * (sum of the rows `rows[0..<count]` of a row-major table with `n` columns), the
    /// rows requested ahead of use.
    @inline(__always)
    public static func sumRows(_ n: Int, _ a: Float, table: UnsafePointer<Float>, rows: UnsafePointer<Int32>, count: Int,
                               into y: UnsafeMutablePointer<Float>) {
        fy_sum_rows(n, a, table, rows, count, y)
    }

    /// One AdamW step's constants.
    public typealias AdamStep = fy_adam_step

    /// AdamW on `n` parameters (gradient reset to zero).
    @inline(__always)
    public static func adam(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                            _ v: UnsafeMutablePointer<Float>, _ n: Int, _ step: AdamStep) {
        withUnsafePointer(to: step) { fy_adam(p, g, m, v, n, $0) }
    }

    /// AdamW on the rows `rows` (d floats each) of row-major tables (gradients reset); rows are
    /// requested a few ahead.
    @inline(__always)
    public static func adamRows(_ p: UnsafeMutablePointer<Float>, _ g: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                                _ v: UnsafeMutablePointer<Float>, d: Int, rows: UnsafePointer<Int32>, count: Int, _ step: AdamStep) {
        withUnsafePointer(to: step) { fy_adam_rows(p, g, m, v, d, rows, count, $0) }
    }

    /// h = max(h + bias, 0) over `rows` rows of `n`.
    @inline(__always)
    public static func biasReLU(_ h: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, _ n: Int) {
        fy_bias_relu(h, bias, rows, n)
    }

    /// dH = h > 0 ? dH : 0 over `rows` rows of `n`, its column sums added to `colsum`.
    @inline(__always)
    public static func reluBackward(h: UnsafePointer<Float>, _ dH: UnsafeMutablePointer<Float>, rows: Int, _ n: Int,
                                    colsum: UnsafeMutablePointer<Float>) {
        fy_relu_backward(h, dH, rows, n, colsum)
    }

    /// y = y + bias + x, each row then scaled to unit length; norms[r] = max(|row|, 1e-12).
    @inline(__always)
    public static func residualNormalize(_ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                         rows: Int, _ n: Int, norms: UnsafeMutablePointer<Float>) {
        fy_residual_normalize(y, bias, x, rows, n, norms)
    }

    /// Backward through y / |y| per row: dOut = (dOut - out (out . dOut)) / norm, with `out` the
    /// normalised rows; the result's column sums added to `colsum`.
    @inline(__always)
    public static func normalizeBackward(out: UnsafePointer<Float>, _ dOut: UnsafeMutablePointer<Float>, norms: UnsafePointer<Float>,
                                         rows: Int, _ n: Int, colsum: UnsafeMutablePointer<Float>) {
        fy_normalize_backward(out, dOut, norms, rows, n, colsum)
    }

    /// Hints that the 64-byte line holding `p` is about to be read.
    @inlinable @inline(__always)
    public static func prefetch<T>(_ p: UnsafePointer<T>) { fy_prefetch(p) }

    /// Hints that the `count` floats at `p` are about to be read (one prefetch per 64-byte line).
    @inlinable @inline(__always)
    public static func prefetch(_ p: UnsafePointer<Float>, _ count: Int) {
        var o = 0
        while o < count { fy_prefetch(p + o); o += 16 }
    }
}
