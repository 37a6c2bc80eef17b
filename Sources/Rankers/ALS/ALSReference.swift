import LinearAlgebra
import Interactions

/// The slow, obviously-correct ALS half-step: for each row, the full dense normal equations
/// sum_i c_ui y_i y_i^T + reg I (c = 1 off the observed entries) against sum_i c_ui p_ui y_i,
/// solved in double precision by Gaussian elimination with partial pivoting. A stored value v > 0
/// is an observed positive (p = 1, c = v); v < 0 an explicit negative (p = 0, c = -v).
public enum ALSReference {
    public static func solveHalf(x: Matrix, y: Matrix, c: CSR, regularization: Float) {
        let k = x.cols
        for u in 0..<x.rows {
            var conf = [Double](repeating: 1, count: y.rows)
            var pref = [Double](repeating: 0, count: y.rows)
            for p in c.rowRange(u) {
                let v = Double(c.values[p])
                conf[Int(c.indices[p])] = abs(v); pref[Int(c.indices[p])] = v > 0 ? 1 : 0
            }
            var a = [Double](repeating: 0, count: k * k)
            var b = [Double](repeating: 0, count: k)
            for i in 0..<y.rows {
                for r in 0..<k {
                    let yr = Double(y[i, r])
                    b[r] += conf[i] * pref[i] * yr
                    for s in 0..<k { a[r * k + s] += conf[i] * yr * Double(y[i, s]) }
                }
            }
            for r in 0..<k { a[r * k + r] += Double(regularization) }
            let sol = solveDense(a, b, k)
            for r in 0..<k { x[u, r] = Float(sol[r]) }
        }
    }

    /// The exact weighted objective sum_{u,i} c_ui (p_ui - x_u.y_i)^2 + reg(|X|^2 + |Y|^2),
    /// divided like `ALSModel`'s loss.
    public static func loss(x: Matrix, y: Matrix, c: CSR, regularization: Float) -> Double {
        var total = 0.0, confSum = 0.0
        for u in 0..<x.rows {
            var conf = [Double](repeating: 1, count: y.rows)
            var pref = [Double](repeating: 0, count: y.rows)
            for p in c.rowRange(u) {
                let v = Double(c.values[p])
                conf[Int(c.indices[p])] = abs(v); pref[Int(c.indices[p])] = v > 0 ? 1 : 0
                confSum += abs(v)
            }
            for i in 0..<y.rows {
                var s = 0.0
                for r in 0..<x.cols { s += Double(x[u, r]) * Double(y[i, r]) }
                total += conf[i] * (pref[i] - s) * (pref[i] - s)
            }
        }
        total += Double(regularization) * (x.squaredNorm() + y.squaredNorm())
        return total / (confSum + Double(x.rows) * Double(y.rows) - Double(c.nnz))
    }

    public static func solveDense(_ a0: [Double], _ b0: [Double], _ n: Int) -> [Double] {
        var a = a0, b = b0
        for col in 0..<n {
            var piv = col
            for r in col..<n where abs(a[r * n + col]) > abs(a[piv * n + col]) { piv = r }
            if piv != col {
                for s in 0..<n { a.swapAt(col * n + s, piv * n + s) }
                b.swapAt(col, piv)
            }
            let d = a[col * n + col]
            for r in (col + 1)..<n {
                let f = a[r * n + col] / d
                if f == 0 { continue }
                for s in col..<n { a[r * n + s] -= f * a[col * n + s] }
                b[r] -= f * b[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = b[r]
            for q in (r + 1)..<n { s -= a[r * n + q] * x[q] }
            x[r] = s / a[r * n + r]
        }
        return x
    }
}
