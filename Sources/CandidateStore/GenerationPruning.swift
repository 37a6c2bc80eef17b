import Foundation

/// Which generations `prune(keep:)` deletes, decided in one place for every store (each store
/// reads its generations and experiments in the pruning transaction, asks this, and executes the
/// deletes).
///
/// All but the newest `keep` generations (by id) go, except:
/// - the live one;
/// - one a draft or running experiment serves from, or one a stopped experiment served from
///   until `stoppedRetentionMs` after it stopped (to re-check, rerun or roll out; then nothing);
/// - one still being built by shards (its shards may be running), unless the build was started
///   `ShardProgress.abandonedAfterMs` or more before `now` and is taken for abandoned.
public enum GenerationPruning {
    /// The ids to delete, newest first. `generations` in any order; `now` in milliseconds since
    /// the Unix epoch. A negative `keep` counts as 0.
    public static func doomed(_ generations: [GenerationInfo], keep: Int, experiments: [Experiment], now: Int64) -> [Int64] {
        let serving = Set(experiments.filter { e in
            e.status != .stopped || (e.stoppedAt.map { now - $0 < stoppedRetentionMs } ?? false)
        }.flatMap { $0.variants.map(\.generation) })
        let since = now - ShardProgress.abandonedAfterMs
        return generations.sorted { $0.id > $1.id }.dropFirst(max(0, keep)).filter { g in
            !g.live && !serving.contains(g.id) && !building(g, since: since)
        }.map(\.id)
    }

    /// How long a stopped experiment's generations stay protected: seven days.
    public static let stoppedRetentionMs: Int64 = 7 * 86_400_000

    /// An incomplete sharded build started after `since`.
    static func building(_ g: GenerationInfo, since: Int64) -> Bool {
        guard let shards = g.shards, let done = g.shardsDone else { return false }
        return done < shards && g.createdAt > since
    }
}
