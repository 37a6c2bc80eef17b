/// Team-draft interleaving (Radlinski, Kurup & Joachims, "How does clickthrough data reflect
/// retrieval quality?", CIKM 2008): two rankers take turns picking their best item not yet on the
/// page; whichever has picked fewer goes next, and a coin decides who goes first whenever they are
/// level. Each item remembers the team that picked it, so a completion or like on it credits that
/// ranker. Both rankers get the same number of slots (within one) and the same chance of every
/// position, so the side whose picks earn more is the one users prefer.
///
/// The coin is a SplitMix64 stream from a seed (the feed uses the session and page), so a page
/// retried with the same cursor is drafted the same way.
struct TeamDraft {
    private(set) var picks = [0, 0]
    private var state: UInt64
    private var bits: UInt64 = 0
    private var bitsLeft = 0

    init(seed: UInt64) { state = seed }

    private mutating func coin() -> Int {
        if bitsLeft == 0 {
            state &+= 0x9E37_79B9_7F4A_7C15
            bits = SessionIds.mix(state)
            bitsLeft = 64
        }
        defer { bits >>= 1; bitsLeft -= 1 }
        return Int(bits & 1)
    }

    /// The team whose turn it is: the one with fewer picks, a coin when level.
    mutating func turn() -> Int {
        picks[0] < picks[1] ? 0 : picks[1] < picks[0] ? 1 : coin()
    }

    /// Drafts one item: `next(team)` gives that team's best remaining eligible item (nil once its
    /// list is exhausted); when the team on turn has none left, the other picks. Nil when both
    /// are exhausted.
    mutating func draft<T>(_ next: (Int) -> T?) -> (item: T, team: Int)? {
        let t = turn()
        for team in [t, 1 - t] {
            if let item = next(team) {
                picks[team] += 1
                return (item, team)
            }
        }
        return nil
    }

    /// Interleaves two ranked lists into at most `count` distinct items.
    static func merge<T: Hashable>(_ a: [T], _ b: [T], count: Int, seed: UInt64) -> [(item: T, team: Int)] {
        var d = TeamDraft(seed: seed)
        var taken = Set<T>()
        var pos = [0, 0]
        let lists = [a, b]
        var out: [(item: T, team: Int)] = []
        while out.count < count, let x = d.draft({ (team: Int) -> T? in
            while pos[team] < lists[team].count {
                let item = lists[team][pos[team]]
                pos[team] += 1
                if !taken.contains(item) { return item }
            }
            return nil
        }) {
            taken.insert(x.item)
            out.append(x)
        }
        return out
    }
}
