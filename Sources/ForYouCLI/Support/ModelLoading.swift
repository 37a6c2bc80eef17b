import ArgumentParser
import ForYou
import Foundation

enum ModelLoading {
    static func load(_ dir: String) throws -> StoredModel {
        do { return try ModelStore.load(dir) } catch let e as ArtifactError {
            throw CLIError("cannot load model: \(e)")
        }
    }
}
