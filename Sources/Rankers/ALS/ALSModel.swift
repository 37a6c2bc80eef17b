import Foundation
import LinearAlgebra
import Interactions

/// Implicit-feedback matrix factorisation by alternating least squares.
///
/// `fit` owns the loop, progress and cancellation; `ALSKernels` holds the numerical work;
/// `ALSReference` is the slow, obviously-correct solver the tests compare against.
public final class ALSModel: FactorRanker, @unchecked Sendable {
    public let kind = "als"
    public let config: ALSConfig
    public private(set) var userFactors: Matrix
    public private(set) var itemFactors: Matrix
    /// Loss after each completed iteration (when computed).
    public private(set) var losses: [Double] = []
    public private(set) var iterationSeconds: [Double] = []
    public private(set) var completedIterations = 0

    public init(config: ALSConfig, userFactors: Matrix, itemFactors: Matrix) {
        precondition(userFactors.cols == itemFactors.cols)
        self.config = config
        self.userFactors = userFactors
        self.itemFactors = itemFactors
    }

    /// Seeded initialisation: uniform [0, 0.01), like `implicit`.
    public convenience init(config: ALSConfig, users: Int, items: Int) {
        var g = SeededGenerator(seed: config.seed)
        let x = Matrix(rows: users, cols: config.factors), y = Matrix(rows: items, cols: config.factors)
        for i in 0..<x.count { x.storage[i] = Float(g.unit() * 0.01) }
        for i in 0..<y.count { y.storage[i] = Float(g.unit() * 0.01) }
        self.init(config: config, userFactors: x, itemFactors: y)
    }

    public enum FitOutcome: Sendable, Equatable {
        case completed
        /// Stopped by the cancellation token after this many full iterations.
        case cancelled(afterIterations: Int)
    }

    /// Fits on a user x item confidence matrix (c = 1 + alpha r on observed entries).
    @discardableResult
    public static func fit(_ confidence: CSR, config: ALSConfig, cancel: CancellationToken? = nil,
                           progress: ((IterationReport) -> Void)? = nil) throws -> (ALSModel, FitOutcome) {
        let model = ALSModel(config: config, users: confidence.rows, items: confidence.cols)
        let outcome = try model.train(confidence, cancel: cancel, progress: progress)
        return (model, outcome)
    }

    /// Continues training from the current factors.
    public func train(_ cui: CSR, cancel: CancellationToken? = nil,
                      progress: ((IterationReport) -> Void)? = nil) throws -> FitOutcome {
        precondition(cui.rows == userFactors.rows && cui.cols == itemFactors.rows, "matrix shape differs from the model")
        let threads = config.threads > 0 ? config.threads : BLASRuntime.availableCores
        let previousBLASThreads = BLASRuntime.threads
        BLASRuntime.setThreads(1)
        defer { BLASRuntime.setThreads(previousBLASThreads) }
        let ciu = cui.transposed()
        let maxRow = max(cui.indptr.indices.dropLast().map { cui.rowCount($0) }.max() ?? 1,
                         ciu.indptr.indices.dropLast().map { ciu.rowCount($0) }.max() ?? 1)
        let scratch = (0..<threads).map { _ in ALSKernels.Scratch(k: config.factors, rows: min(maxRow, 4096)) }
        let start = Date()
        guard config.iterations > 0 else { return .completed }
        for it in 1...config.iterations {
            if cancel?.isCancelled == true { return .cancelled(afterIterations: completedIterations) }
            let t0 = Date()
            try ALSKernels.solve(x: userFactors, y: itemFactors, c: cui, regularization: config.regularization,
                                 solver: config.solver, cgSteps: config.cgSteps, threads: threads, scratch: scratch)
            if cancel?.isCancelled == true { return .cancelled(afterIterations: completedIterations) }
            try ALSKernels.solve(x: itemFactors, y: userFactors, c: ciu, regularization: config.regularization,
                                 solver: config.solver, cgSteps: config.cgSteps, threads: threads, scratch: scratch)
            let solveSeconds = Date().timeIntervalSince(t0)
            completedIterations += 1
            iterationSeconds.append(solveSeconds)
            var loss: Double?
            let t1 = Date()
            if config.computeLoss {
                loss = ALSKernels.loss(x: userFactors, y: itemFactors, c: cui, regularization: config.regularization,
                                       threads: threads, scratch: scratch)
                losses.append(loss!)
            }
            progress?(IterationReport(iteration: it, iterations: config.iterations, loss: loss, seconds: solveSeconds,
                                      lossSeconds: Date().timeIntervalSince(t1), elapsed: Date().timeIntervalSince(start)))
        }
        return .completed
    }

    /// Training loss of the current factors.
    public func loss(_ cui: CSR) -> Double {
        let threads = config.threads > 0 ? config.threads : BLASRuntime.availableCores
        let scratch = (0..<threads).map { _ in ALSKernels.Scratch(k: config.factors, rows: 64) }
        return ALSKernels.loss(x: userFactors, y: itemFactors, c: cui, regularization: config.regularization,
                               threads: threads, scratch: scratch)
    }

    /// Solves one user's vector against the fixed item factors (exact), e.g. for fold-in.
    public func foldIn(items: [Int32], confidences: [Float]) throws -> [Float] {
        try ALSFoldIn(fixed: itemFactors, regularization: config.regularization).solve(rows: items, confidences: confidences)
    }

    /// Exposed for the reference tests: one half-step with the fast kernels.
    public static func solveHalf(x: Matrix, y: Matrix, c: CSR, regularization: Float, solver: ALSConfig.Solver,
                                 cgSteps: Int, threads: Int = 1) throws {
        let scratch = (0..<max(1, threads)).map { _ in ALSKernels.Scratch(k: x.cols, rows: 16) }
        try ALSKernels.solve(x: x, y: y, c: c, regularization: regularization, solver: solver, cgSteps: cgSteps,
                             threads: max(1, threads), scratch: scratch)
    }
}
