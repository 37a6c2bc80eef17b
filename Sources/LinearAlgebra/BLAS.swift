import CBLAS
import CLAPACKE

/// Thin, typed wrappers over the CBLAS / LAPACKE routines the engine uses. Row-major throughout.
public enum BLAS {
    /// C = alpha * A * op(B) + beta * C, row-major; `transB` means B is stored (n x k).
    @inline(__always)
    public static func gemm(m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int, transB: Bool,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                            transA: Bool = false) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// C (n x n, upper triangle) = alpha * A^T A + beta * C where A is (k x n) row-major.
    @inline(__always)
    public static func syrkTransposed(n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(k), alpha, a, Int32(lda),
                    beta, c, Int32(ldc))
    }

    /// y = alpha * op(A) x + beta * y with A (m x n) row-major.
    @inline(__always)
    public static func gemv(transpose: Bool, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), alpha, a,
                    Int32(lda), x, 1, beta, y, 1)
    }

    /// y = alpha * A x + beta * y with A (n x n) symmetric, upper triangle used.
    @inline(__always)
    public static func symv(n: Int, alpha: Float = 1, a: UnsafePointer<Float>, x: UnsafePointer<Float>,
                            beta: Float = 0, y: UnsafeMutablePointer<Float>) {
        cblas_ssymv(CblasRowMajor, CblasUpper, Int32(n), alpha, a, Int32(n), x, 1, beta, y, 1)
    }

    @inline(__always)
    public static func dot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        cblas_sdot(Int32(n), x, 1, y, 1)
    }

    @inline(__always)
    public static func axpy(_ n: Int, _ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        cblas_saxpy(Int32(n), alpha, x, 1, y, 1)
    }

    /// Inverts a symmetric positive definite A (n x n, row-major) in place through its Cholesky
    /// factor (LAPACK `spotrf` + `spotri`). Only the upper triangle (row <= column) is read and
    /// only it holds the inverse afterwards. A row-major upper triangle is a column-major lower
    /// one, so LAPACK works on the buffer itself (row-major LAPACKE calls would copy n^2 floats).
    /// Returns LAPACK's info (0 = success, > 0 = not positive definite).
    public static func invertSPD(n: Int, a: UnsafeMutablePointer<Float>) -> Int32 {
        let lower = Int8(UInt8(ascii: "L"))
        let info = LAPACKE_spotrf_work(LAPACK_COL_MAJOR, lower, Int32(n), a, Int32(n))
        guard info == 0 else { return info }
        return LAPACKE_spotri_work(LAPACK_COL_MAJOR, lower, Int32(n), a, Int32(n))
    }

    /// Solves A x = b for symmetric positive definite A (n x n, upper triangle, overwritten by
    /// its Cholesky factor); b is overwritten by x. Returns LAPACK's info (0 = success).
    @inline(__always)
    public static func posv(n: Int, a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_sposv_work(LAPACK_ROW_MAJOR, Int8(UInt8(ascii: "U")), Int32(n), 1, a, Int32(n), b, 1)
    }
}

public enum LinearAlgebraError: Error, CustomStringConvertible {
    case notPositiveDefinite(context: String, info: Int32)
    case shape(String)

    public var description: String {
        switch self {
        case .notPositiveDefinite(let context, let info):
            return "sposv failed (info \(info)) for \(context): the normal equations are not positive definite; "
                + "try increasing the regularization"
        case .shape(let s): return s
        }
    }
}
