import Foundation
import Interactions

/// How a validation split is carved from training interactions (never from the test split):
/// the part every choice (hyper-parameters, epochs, blend and ranker weights) is made on. It
/// should mirror the test: a chronological test (each user's latest interactions) wants a
/// chronological carve, a random one a random carve. Only positive rows are held out; users
/// with fewer than `minItems` positives keep everything in train.
public struct ValidationCarve: Sendable, Equatable, Codable {
    public enum Scheme: String, Sendable, Codable, CaseIterable {
        /// chrono when the interactions have times, else random.
        case auto
        /// Each user's latest `fraction` (floor, at least one).
        case chrono
        /// A seeded random `fraction` of each user's positives (floor, at least one).
        case random
        /// `k` per user: the latest when times exist, else a seeded random k.
        case leaveK = "leave-k"
    }

    public var scheme: Scheme
    public var fraction: Double
    public var k: Int
    public var seed: UInt64
    public var minItems: Int

    public init(scheme: Scheme = .auto, fraction: Double = 0.1, k: Int = 1, seed: UInt64 = 42, minItems: Int = 5) {
        self.scheme = scheme
        self.fraction = fraction
        self.k = k
        self.seed = seed
        self.minItems = minItems
    }

    public enum CarveError: Error, CustomStringConvertible {
        case needsTimes
        case empty
        public var description: String {
            switch self {
            case .needsTimes:
                return "a chronological validation carve needs each training pair's time: give --times FILE (user,item,timestamp CSV) "
                    + "or --validation random"
            case .empty: return "no user has enough interactions to carve a validation split"
            }
        }
    }

    /// The scheme `auto` stands for on `data`.
    public func resolved(for data: Interactions) -> Scheme {
        scheme == .auto ? (data.timestamps == nil ? .random : .chrono) : scheme
    }

    /// What the run record notes about the carve.
    public func params(for data: Interactions) -> [String: String] {
        let s = resolved(for: data)
        var p = ["validation": s.rawValue]
        if s == .leaveK { p["validation_k"] = "\(k)" } else { p["validation_fraction"] = "\(fraction)" }
        return p
    }

    /// (train rows, validation rows) as sorted row indices of `data`.
    public func rows(_ data: Interactions) throws -> (train: [Int], validation: [Int]) {
        let scheme = resolved(for: data)
        if scheme == .chrono && data.timestamps == nil { throw CarveError.needsTimes }
        var byUser = [[Int]](repeating: [], count: data.users.count)
        var train: [Int] = [], val: [Int] = []
        for r in 0..<data.count {
            if data.weights[r] > 0 { byUser[Int(data.userIndex[r])].append(r) } else { train.append(r) }
        }
        for (u, rows) in byUser.enumerated() {
            let held: Int
            switch scheme {
            case .leaveK: held = rows.count > k && rows.count >= minItems ? k : 0
            default: held = rows.count >= minItems && fraction > 0 ? max(1, Int(Double(rows.count) * fraction + 1e-9)) : 0
            }
            guard held > 0 else { train += rows; continue }
            if let times = data.timestamps, scheme != .random {
                let byTime = rows.sorted { (times[$0], $0) < (times[$1], $1) }
                val += byTime.suffix(held)
                train += byTime.dropLast(held)
            } else {
                var g = SeededGenerator(seed: seed, stream: UInt64(u))
                let shuffled = rows.shuffled(using: &g)
                val += shuffled.prefix(held)
                train += shuffled.dropFirst(held)
            }
        }
        return (train.sorted(), val.sorted())
    }

    /// The carved split in the form fitting code uses.
    public func carve(_ data: Interactions) throws -> Validation {
        let (trainRows, valRows) = try rows(data)
        var truth: [Int32: Set<Int32>] = [:]
        for r in valRows { truth[data.userIndex[r], default: []].insert(data.itemIndex[r]) }
        return Validation(train: data.subset(trainRows), truth: truth, users: truth.keys.sorted(), heldRows: valRows)
    }
}

/// A carved split: train interactions (the same id maps as the data), each validation user's
/// held-out items, those users in order, and the held-out rows of the data.
public struct Validation {
    public var train: Interactions
    public var truth: [Int32: Set<Int32>]
    public var users: [Int32]
    public var heldRows: [Int] = []
}
