import ArgumentParser
import ForYou
import Foundation

/// `foryou export RUN`: a run's numbers for notebooks.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a run's factors/embeddings (.npy), id maps and per-user metrics (CSV) for notebooks.",
        discussion: """
        Into OUT/<run id>/: users.csv and items.csv (index,id: row i of the .npy files is that id), \
        user_factors.npy and item_factors.npy (float32, numpy.load reads them), item_scores.npy for \
        popularity runs, and per_user_metrics.csv when the run has a recorded evaluation.
        """)
    @Option(help: "Models directory holding the runs.") var models = "models"
    @Argument(help: "Runs (id, unique prefix or model directory).") var runs: [String]
    @Option(help: "Output directory.") var out = "notebooks-data"

    func run() throws {
        let reg = RunsRegistry(root: models)
        for r in runs {
            let e: RunEntry
            do { e = try ModelLoading.resolve(r, in: reg, command: "export") } catch let err as RegistryError { throw CLIError("export: \(err)") }
            let dir = out + "/" + e.id
            let files: [String]
            do { files = try Export.run(e, to: dir) } catch let err as ArtifactError { throw CLIError("export: \(err)") }
            print("\(dir): " + files.joined(separator: ", "))
        }
    }
}
