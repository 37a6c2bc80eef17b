/// Hyper-parameters of implicit ALS (Hu, Koren, Volinsky 2008).
public struct ALSConfig: Sendable, Codable, Equatable {
    public enum Solver: String, Sendable, Codable, CaseIterable {
        /// Per-row normal equations built with BLAS and solved with LAPACKE sposv.
        case exact
        /// Conjugate gradient warm-started from the previous iteration's vector.
        case cg
    }

    public var factors = 64
    /// Added to the diagonal of every normal equation (not scaled by the row's count).
    public var regularization: Float = 0.05
    public var iterations = 15
    public var solver: Solver = .cg
    public var cgSteps = 3
    /// Worker threads; 0 means every available core.
    public var threads = 0
    public var seed: UInt64 = 42
    /// Evaluate the training loss after each iteration (costs about one extra pass over the data).
    public var computeLoss = true

    public init() {}

    public init(factors: Int = 64, regularization: Float = 0.05, iterations: Int = 15, solver: Solver = .cg,
                cgSteps: Int = 3, threads: Int = 0, seed: UInt64 = 42, computeLoss: Bool = true) {
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.solver = solver
        self.cgSteps = cgSteps
        self.threads = threads
        self.seed = seed
        self.computeLoss = computeLoss
    }
}
