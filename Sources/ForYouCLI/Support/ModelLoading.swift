import ArgumentParser
import ForYou
import Foundation

enum ModelLoading {
    static func load(_ dir: String) throws -> StoredModel {
        do { return try ModelStore.load(dir) } catch let e as ArtifactError {
            throw CLIError("cannot load model: \(e)")
        }
    }

    /// A run id, unique prefix or model directory, resolved in `registry`; prints what it
    /// resolved to (and why when the name could have meant another run) on stderr.
    static func resolve(_ s: String, in registry: RunsRegistry, command: String) throws -> RunEntry {
        let (entry, note) = try registry.resolveNoting(s)
        if let note { Console.err("\(command): warning: \(note)") }
        if entry.directory != s { Console.err("\(command): \(s) -> \(entry.directory)") }
        return entry
    }

    /// The model directory `s` names (a run id or prefix under `models`, or a directory).
    static func directory(_ s: String, models: String, command: String) throws -> String {
        do { return try resolve(s, in: RunsRegistry(root: models), command: command).directory } catch let e as RegistryError {
            throw CLIError("\(command): \(e)")
        }
    }
}
