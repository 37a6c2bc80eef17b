import ArgumentParser
import ForYou
import Foundation
import Platform

@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
struct ForYouCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "foryou",
        abstract: "Train, score and evaluate For-You feed rankers.",
        discussion: """
        The data path: interactions (files) -> model (ALS or popularity) -> scores over the full \
        catalog -> top-N lists -> evaluation. Typical session:

          foryou synth --out var/synth.tsv
          foryou split --input var/synth.tsv --strategy chrono --fraction 0.2 --out-dir var
          foryou train --train var/train.tsv --out models/als-demo
          foryou evaluate --model models/als-demo --test var/test.tsv
          foryou score-all --model models/als-demo --top 100 --out var/recs.tsv
        """,
        version: CodeVersion.semantic,
        subcommands: [Train.self, ScoreAll.self, Evaluate.self, Recommend.self, Similar.self,
                      Synth.self, Split.self, Inspect.self, BlasInfo.self, Generations.self, Videos.self, Events.self, Serve.self, Token.self, WorldCommand.self, Demo.self, Rescore.self, Worker.self, BenchStore.self, StudyMapping.self, StudyFoldIn.self, Runs.self, Compare.self, SweepCommand.self, ExportCommand.self, ReportCommand.self, ExperimentCommand.self, SimulateCommand.self, MediaCommand.self]
    )
}

/// Process-wide state the commands share: the kernel selection outcome and Ctrl-C.
enum CLIContext {
    nonisolated(unsafe) static var kernelReport: KernelSelection.Report?
    static let cancel = CancellationToken()
}

/// Options most commands take.
struct CommonOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print BLAS kernel selection, timings and other details to stderr.")
    var verbose = false

    @Option(help: "Worker threads (0 = all cores). OpenBLAS itself runs single-threaded inside them.")
    var threads: Int = 0

    func validate() throws {
        guard threads >= 0 else { throw ValidationError("--threads must be >= 0") }
    }

    func announce() {
        guard verbose, let r = CLIContext.kernelReport else { return }
        Console.err("blas: OpenBLAS core \(r.core), CPU \(r.cpuLevel): \(r.note)")
    }
}

enum Console {
    static func err(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    static func duration(_ s: Double) -> String {
        s < 60 ? String(format: "%.1fs", s) : String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60)
    }
}

enum Interrupts {
    /// First Ctrl-C asks long jobs to stop at the next safe point; a second one exits at once.
    static func install() {
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler {
            if CLIContext.cancel.isCancelled {
                Console.err("interrupted again: exiting now")
                exit(130)
            }
            Console.err("interrupt: stopping at the next safe point (Ctrl-C again to exit now)")
            CLIContext.cancel.cancel()
        }
        source.resume()
        holder = source
    }
    nonisolated(unsafe) static var holder: DispatchSourceSignal?
}

/// A failure the CLI reports as one clear line and a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs async work from a synchronous command (the CLI's commands are synchronous; the server
/// and its clients are async).
func runBlocking(_ body: @escaping @Sendable () async throws -> Void) throws {
    final class Box: @unchecked Sendable { var error: Error? }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { try await body() } catch { box.error = error }
        done.signal()
    }
    done.wait()
    if let e = box.error { throw e }
}
