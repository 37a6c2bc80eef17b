import Foundation
import LinearAlgebra
import Interactions

// The epoch loop: batches in a shuffled order, a report per epoch, validation with early
// stopping on the best epoch's parameters, and cancellation between batches.

/// One epoch's figures.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var epochs: Int
    public var loss: Double
    public var validationNDCG: Double?
    public var examplesPerSecond: Double
    public var elapsed: Double
    public var eta: Double
    public var best: Bool
    /// An epoch of the refit on all training interactions (after early stopping chose the count).
    public var refit = false

    public var line: String {
        let v = validationNDCG.map { String(format: "val NDCG@10 %.4f%@", $0, best ? " *" : "") } ?? "val -"
        return String(format: "%@epoch %d/%d  loss %.4f  %@  %.0f ex/s  elapsed %.1fs  ETA %.1fs", refit ? "refit " : "", epoch, epochs,
                      loss, v, examplesPerSecond, elapsed, eta)
    }
}

extension TwoTowerTrainer {
    public enum Outcome: Equatable, Sendable {
        case completed
        case stoppedEarly(bestEpoch: Int)
        case cancelled(bestEpoch: Int)
    }

    /// Trains for up to `config.epochs`, evaluating `validate` (returns NDCG@10 of the current
    /// model, or nil) after each; keeps the parameters of the best epoch and stops after
    /// `patience` epochs without improvement or on cancellation.
    public func train(cancel: CancellationToken? = nil, validate: ((TwoTowerModel) -> Double?)? = nil,
                      progress: (EpochReport) -> Void = { _ in }) -> Outcome {
        let previousThreads = BLASRuntime.threads
        BLASRuntime.setThreads(1)
        defer { BLASRuntime.setThreads(previousThreads) }
        var g = SeededGenerator(seed: config.seed ^ 0x7777)
        let historySeed = config.seed ^ 0x4157
        let n = data.count
        let bsz = max(2, min(config.batch, n))
        let s = Scratch(rows: bsz, cols: bsz + config.uniformNegatives, d: config.dim, hidden: config.hidden,
                        history: config.history)
        var order = (0..<Int32(n)).map { $0 }
        var best = -Double.infinity, bestEpoch = 0, sinceBest = 0
        var snapshot: [[Float]]?
        let start = Date()
        var outcome = Outcome.completed
        for epoch in 1...max(1, config.epochs) {
            let t0 = Date()
            order.shuffle(using: &g)
            var lossSum = 0.0, batches = 0
            data.pairUser.withUnsafeBufferPointer { pairUser in
                data.pairItem.withUnsafeBufferPointer { pairItem in
                    order.withUnsafeBufferPointer { order in
                        var p = 0
                        while p + bsz <= n {  // a short last batch would change the softmax; it is skipped
                            if cancel?.isCancelled == true { break }
                            drawUniformNegatives(into: s.colItems + bsz, using: &g)
                            let source = BatchSource(pairUser: pairUser.baseAddress!, pairItem: pairItem.baseAddress!,
                                                     examples: order.baseAddress! + p,
                                                     seed: historySeed ^ UInt64(epoch) &* 0xD1B5_4A32_D192_ED03, position: p)
                            lossSum += batchLoss(b: bsz, cols: bsz + config.uniformNegatives, s: s, source: source, backward: true,
                                                 adam: nextAdamStep())
                            batches += 1
                            p += bsz
                        }
                    }
                }
            }
            if cancel?.isCancelled == true {
                outcome = .cancelled(bestEpoch: bestEpoch)
                break
            }
            let trainSeconds = Date().timeIntervalSince(t0)
            let ndcg = validate?(model)
            var improved = false
            if let v = ndcg {
                if v > best { best = v; bestEpoch = epoch; sinceBest = 0; improved = true; snapshot = params.all.map(\.values) }
                else { sinceBest += 1 }
            } else {
                bestEpoch = epoch
            }
            let elapsed = Date().timeIntervalSince(start)
            progress(EpochReport(epoch: epoch, epochs: config.epochs, loss: lossSum / Double(max(1, batches)), validationNDCG: ndcg,
                                 examplesPerSecond: Double(batches * bsz) / max(trainSeconds, 1e-9), elapsed: elapsed,
                                 eta: elapsed / Double(epoch) * Double(config.epochs - epoch), best: improved))
            if validate != nil && sinceBest >= config.patience {
                outcome = .stoppedEarly(bestEpoch: bestEpoch)
                break
            }
        }
        if let snap = snapshot {
            for (p, values) in zip(params.all, snap) { values.withUnsafeBufferPointer { p.storage.update(from: $0.baseAddress!, count: p.count) } }
        }
        return outcome
    }
}
