import Foundation
import Interactions
import CandidateStore

/// A live generation's model, ready to place videos it has no vector for and to rebuild users'
/// lists from their event history without retraining.
package protocol LiveModel: AnyObject {
    var generation: Int64 { get }
    var mapping: EventMapping { get }
    /// Videos placed so far (vectors the model itself does not have).
    var placed: Int { get }
    /// True when videos are placed from the catalog (features) as soon as they appear; false
    /// when they are placed from their first interactions.
    var placesFromCatalog: Bool { get }
    func isModelItem(_ video: String) -> Bool
    @discardableResult
    func place(_ videos: [String], history: EventHistory, catalog: [String: Video], usersOf: [String: Set<String>]) throws -> Int
    func lists(for people: [String], history: EventHistory, top: Int, threads: Int) throws
        -> [(user: String, videos: [String], scores: [Float])]
}
