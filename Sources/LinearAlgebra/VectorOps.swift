import CBLAS
/// Small dense vector kernels for the per-row work around the BLAS calls (embedding gathers and
/// scatters of 16-128 floats, softmax rows), where a BLAS call's overhead exceeds its work.
/// SIMD16 over the body, scalar tail.
public enum VectorOps {
    /// y += a * x over n floats.
    @inline(__always)
    public static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        var i = 0
        let av = SIMD16<Float>(repeating: a)
        while i + 16 <= n {
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(y + i).storeBytes(of: yv + av * xv, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { y[i] += a * x[i]; i += 1 }
    }

    /// e^x for each lane, |relative error| < 2e-7 on [-87, 88]; lanes below -87 (including
    /// -infinity) give 0.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        typealias V = SIMD16<Float>
        let lo = V(repeating: -87), hi = V(repeating: 88)
        let dead = x .< lo
        var xc = x.replacing(with: lo, where: dead)
        xc = xc.replacing(with: hi, where: xc .> hi)
        // n = round(x / ln2) with the 1.5 * 2^23 trick (no per-lane conversions); x = n ln2 + r.
        let magic = V(repeating: 12_582_912)
        let t = xc * 1.442_695_040_888_963_4 + magic
        let n = t - magic
        var r = xc - n * 0.693_359_375
        r = r - n * -2.121_944_400_546_905_8e-4
        // Cephes expf polynomial.
        var p = V(repeating: 1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * r * r + r + 1
        // 2^n: the integer n sits in t's low mantissa bits.
        let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((ni &+ 127) &<< 23, to: V.self)
        return (p * scale).replacing(with: 0, where: dead)
    }

    /// In place: row[c] = exp(row[c] - shift) over n floats; returns their sum.
    @inline(__always)
    public static func expShifted(_ row: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
        var i = 0
        var acc = SIMD16<Float>(repeating: 0)
        let s = SIMD16<Float>(repeating: shift)
        while i + 16 <= n {
            let v = exp(UnsafeRawPointer(row + i).loadUnaligned(as: SIMD16<Float>.self) - s)
            UnsafeMutableRawPointer(row + i).storeBytes(of: v, as: SIMD16<Float>.self)
            acc += v
            i += 16
        }
        var sum = acc.sum()
        while i < n {
            var t = SIMD16<Float>(repeating: -.infinity)
            t[0] = row[i] - shift
            let e = exp(t)[0]
            row[i] = e
            sum += e
            i += 1
        }
        return sum
    }

    /// In place: row[c] -= bias[c]; returns the maximum.
    @inline(__always)
    public static func subtractMax(_ row: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, _ n: Int) -> Float {
        var i = 0
        var mx = SIMD16<Float>(repeating: -.infinity)
        while i + 16 <= n {
            let v = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD16<Float>.self)
                - UnsafeRawPointer(bias + i).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(row + i).storeBytes(of: v, as: SIMD16<Float>.self)
            mx = mx.replacing(with: v, where: v .> mx)
            i += 16
        }
        var m = mx.max()
        while i < n { row[i] -= bias[i]; m = Swift.max(m, row[i]); i += 1 }
        return m
    }

    /// Hints that the `count` floats at `p` are about to be read (one prefetch per 64-byte line).
    @inline(__always)
    public static func prefetch(_ p: UnsafePointer<Float>, _ count: Int) {
        var o = 0
        while o < count { foryou_prefetch(p + o); o += 16 }
    }

    /// Hints that the `count` floats at `p` are about to be read and written (one prefetch per
    /// 64-byte line), for row updates whose rows are known ahead.
    @inline(__always)
    public static func prefetchForWrite(_ p: UnsafePointer<Float>, _ count: Int) {
        var o = 0
        while o < count { foryou_prefetch_write(p + o); o += 16 }
    }

    /// x *= a over n floats.
    @inline(__always)
    public static func scale(_ x: UnsafeMutablePointer<Float>, _ n: Int, _ a: Float) {
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) * a
            UnsafeMutableRawPointer(x + i).storeBytes(of: v, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { x[i] *= a; i += 1 }
    }

    /// y += a * (sum of the rows `rows[0..<count]` of a row-major table with `n` columns), the
    /// sum kept in registers 64 columns at a time (one store per output, not one per row).
    @inline(__always)
    public static func sumRows(_ n: Int, _ a: Float, table: UnsafePointer<Float>, rows: UnsafePointer<Int32>, count: Int,
                               into y: UnsafeMutablePointer<Float>) {
        typealias V = SIMD16<Float>
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
        @inline(__always) func add(_ p: UnsafeMutablePointer<Float>, _ v: V) {
            UnsafeMutableRawPointer(p).storeBytes(of: load(p) + a * v, as: V.self)
        }
        var j = 0
        while j + 64 <= n {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            for k in 0..<count {
                if k + 6 < count {
                    prefetch(table + Int(rows[k + 6]) * n + j, 64)
                }
                let r = table + Int(rows[k]) * n + j
                a0 += load(r); a1 += load(r + 16); a2 += load(r + 32); a3 += load(r + 48)
            }
            add(y + j, a0); add(y + j + 16, a1); add(y + j + 32, a2); add(y + j + 48, a3)
            j += 64
        }
        while j + 16 <= n {
            var a0 = V()
            for k in 0..<count { a0 += load(table + Int(rows[k]) * n + j) }
            add(y + j, a0)
            j += 16
        }
        while j < n {
            var t: Float = 0
            for k in 0..<count { t += table[Int(rows[k]) * n + j] }
            y[j] += a * t
            j += 1
        }
    }
}
