import ForYouEngine
#if canImport(Glibc)
import Glibc
#endif

// Two taste groups on a toy catalog: users 0-9 watch items a0-a5, users 10-19 items b0-b5, and
// each user has not yet seen one item of their own group. Trained and scored through the engine
// product alone, every user's first recommendation must be that missing item.
var users = IdMap(), items = IdMap()
var userIndex: [Int32] = [], itemIndex: [Int32] = [], weights: [Float] = []
var missing: [String: String] = [:]
for u in 0..<20 {
    let group = u < 10 ? "a" : "b"
    let user = "user\(u)"
    let skip = u % 6
    missing[user] = "\(group)\(skip)"
    for i in 0..<6 where i != skip {
        userIndex.append(users.index(inserting: user))
        itemIndex.append(items.index(inserting: "\(group)\(i)"))
        weights.append(1)
    }
}
let data = Interactions(users: users, items: items, userIndex: userIndex, itemIndex: itemIndex, weights: weights)

var spec = TrainingSpec(model: .als,
                        als: ALSConfig(factors: 4, regularization: 0.01, iterations: 10, solver: .exact, threads: 1, seed: 7),
                        confidence: Confidence(scheme: .linear, alpha: 20))
let trained = try TrainingPipeline.fit(data, spec)
let seen = data.matrix()
let recs = BatchScorer(top: 3, threads: 1).recommend(trained.ranker, exclude: seen)

var hits = 0
for row in 0..<recs.users.count {
    let user = data.users.rawId(Int(recs.users[row]))
    let first = recs.list(row).first.map { data.items.rawId(Int($0)) }
    if first == missing[user] { hits += 1 } else { print("engine-consumer: \(user) got \(first ?? "nothing"), expected \(missing[user]!)") }
}
print("engine-consumer: ALS \(trained.params["factors"]!) factors, \(trained.outcome); \(hits) of \(recs.users.count) users get their missing item first")
exit(hits == recs.users.count ? 0 : 1)
