import LinearAlgebra
import Interactions

/// Solves vectors against one fixed side of an ALS model, exactly, with the fixed side's Gram
/// matrix computed once: user vectors against the item factors (fold-in of users with new
/// events), or item vectors against the user factors (placing a video the model has not seen
/// from its first interactions). Confidences follow the training convention: c > 0 is a positive
/// with confidence c, -c an explicit negative.
public final class ALSFoldIn: @unchecked Sendable {
    public let fixed: Matrix
    public let regularization: Float
    private let gram: [Float]
    private let scratch: ALSKernels.Scratch

    public init(fixed: Matrix, regularization: Float) {
        self.fixed = fixed
        self.regularization = regularization
        gram = ALSKernels.gram(fixed, regularization: regularization)
        scratch = ALSKernels.Scratch(k: fixed.cols, rows: 16)
    }

    public var factors: Int { fixed.cols }

    /// The vector minimising sum_j c_j (p_j - x . f_j)^2 over all rows f_j of the fixed side
    /// (c = 1, p = 0 for rows not given) + reg |x|^2. Not thread-safe (one scratch).
    public func solve(rows: [Int32], confidences: [Float]) throws -> [Float] {
        precondition(rows.count == confidences.count)
        let k = fixed.cols
        var x = [Float](repeating: 0, count: k)
        guard !rows.isEmpty else { return x }
        scratch.reserve(rows: rows.count)
        let ok = rows.withUnsafeBufferPointer { r in
            confidences.withUnsafeBufferPointer { c in
                gram.withUnsafeBufferPointer { g in
                    x.withUnsafeMutableBufferPointer { xb in
                        ALSKernels.gather(fixed, r.baseAddress!, rows.count, into: scratch.gathered)
                        return ALSKernels.exactRow(xb.baseAddress!, k: k, yty: g.baseAddress!, g: scratch.gathered,
                                                   conf: c.baseAddress!, n: rows.count, s: scratch)
                    }
                }
            }
        }
        guard ok else { throw LinearAlgebraError.notPositiveDefinite(context: "fold-in", info: 1) }
        return x
    }
}
