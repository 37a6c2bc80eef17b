import Foundation
import CandidateStore

/// The server's view of what the store says to serve: the live generation, the running
/// experiment and each generation's model name, as of the last refresh. Replaced together under
/// one lock; every read is short.
final class GenerationView: @unchecked Sendable {
    private let lock = NSLock()
    private var liveGeneration: GenerationInfo?
    private var runningExperiment: Experiment?
    private var generationModels: [Int64: String] = [:]

    func set(live: GenerationInfo?, experiment: Experiment?, models: [Int64: String]) {
        lock.lock(); defer { lock.unlock() }
        liveGeneration = live
        runningExperiment = experiment
        generationModels = models
    }

    /// The live generation as of the last refresh.
    var live: GenerationInfo? {
        lock.lock(); defer { lock.unlock() }
        return liveGeneration
    }

    /// The running experiment as of the last refresh.
    var experiment: Experiment? {
        lock.lock(); defer { lock.unlock() }
        return runningExperiment
    }

    func model(ofGeneration g: Int64) -> String? {
        lock.lock(); defer { lock.unlock() }
        return generationModels[g]
    }
}
