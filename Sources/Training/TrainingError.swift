/// Why a training run produced no model.
public enum TrainingError: Error, CustomStringConvertible {
    case noData(String)
    case cancelled

    public var description: String {
        switch self {
        case .noData(let s): return s
        case .cancelled: return "interrupted before a model was finished"
        }
    }
}
