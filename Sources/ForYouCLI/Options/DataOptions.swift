import ArgumentParser
import ForYou

extension Importer.Format: ExpressibleByArgument {}
extension Confidence.Scheme: ExpressibleByArgument {}
extension Importer.NegativeWeights: ExpressibleByArgument {}
extension ALSConfig.Solver: ExpressibleByArgument {}
extension RescoreConfig.Model: ExpressibleByArgument {}
extension ValidationCarve.Scheme: ExpressibleByArgument {}

/// How to read an interaction file.
struct FormatOptions: ParsableArguments {
    @Option(help: "Input format: split (user<TAB>item<TAB>weight[<TAB>time]), movielens (ratings.csv), lastfm (user_artists.dat), csv (header + named columns).")
    var format: Importer.Format = .split

    @Option(name: .customLong("user-col"), help: "csv: name of the user id column.")
    var userCol = "user"
    @Option(name: .customLong("item-col"), help: "csv: name of the item id column.")
    var itemCol = "item"
    @Option(name: .customLong("weight-col"), help: "csv: name of the weight column ('' = every row weighs 1).")
    var weightCol = "weight"
    @Option(name: .customLong("time-col"), help: "csv: name of the time column (optional).")
    var timeCol: String?
    @Option(help: "csv: field delimiter (default: tab for .tsv/.dat, comma otherwise).")
    var delimiter: String?
    @Option(name: .customLong("min-weight"), help: "Skip rows whose weight is below this (e.g. 4 for MovieLens positives).")
    var minWeight: Float?
    @Option(name: .customLong("negative-weights"),
            help: "A negative weight in a file: refuse (an error naming the line) or explicit (explicit negative evidence: preference 0, confidence 1 + alpha f(|w|)).")
    var negativeWeights: Importer.NegativeWeights = .refuse

    func validate() throws {
        if let d = delimiter, d != "\\t", d.utf8.count != 1 { throw ValidationError("--delimiter must be one character (or \\t)") }
    }

    var importer: Importer {
        var d: UInt8?
        if let s = delimiter { d = s == "\\t" ? 9 : s.utf8.first }
        return Importer(format: format,
                        columns: .init(user: userCol, item: itemCol, weight: weightCol.isEmpty ? nil : weightCol, time: timeCol),
                        delimiter: d, minWeight: minWeight, negativeWeights: negativeWeights)
    }

    func read(_ path: String, verbose: Bool) throws -> (Interactions, Double) {
        let t0 = Date()
        do {
            let data = try importer.read(path: path)
            let s = Date().timeIntervalSince(t0)
            if verbose {
                Console.err(String(format: "import: %@: %d rows, %d users, %d items in %.2fs (%.2fM rows/s)",
                                   path, data.count, data.users.count, data.items.count, s, Double(data.count) / max(s, 1e-9) / 1e6))
            }
            return (data, s)
        } catch let e as ImportError {
            throw CLIError("import failed: \(e)")
        }
    }
}

import Foundation

extension EventMapping.Negatives: ExpressibleByArgument {}

/// How events become interactions (`train --events`, `rescore`, `worker rank`).
struct MappingOptions: ParsableArguments {
    @Option(help: "Skips and hides: penalize (explicit negatives), drop (left out of the positives) or ignore (skip = short view).")
    var negatives: EventMapping.Negatives = .penalize
    @Option(name: .customLong("half-life-days"), help: "Decay each event's weight with this half-life in days (default: no decay).")
    var halfLifeDays: Double?
    @Option(name: .customLong("event-weights"),
            help: "Per event type, e.g. like=2,share=3 (view = per watched fraction; skip/hide = strength under penalize). Defaults: view=1,complete=1,like=2,share=3,skip=1,hide=4.")
    var eventWeights: String?

    func validate() throws {
        if let h = halfLifeDays, !(h > 0) { throw ValidationError("--half-life-days must be positive") }
        _ = try parsedWeights()
    }

    func parsedWeights() throws -> [String: Float] {
        guard let text = eventWeights else { return [:] }
        var out: [String: Float] = [:]
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, EventType(name: kv[0]) != nil, let w = Float(kv[1]), w >= 0, w.isFinite else {
                throw ValidationError("--event-weights: '\(part)' is not TYPE=WEIGHT with a type of view, complete, like, share, skip, hide and a weight >= 0")
            }
            out[kv[0]] = w
        }
        return out
    }

    var mapping: EventMapping {
        var m = EventMapping()
        m.negatives = negatives
        m.halfLifeDays = halfLifeDays
        for (k, w) in (try? parsedWeights()) ?? [:] {
            switch k {
            case "view": m.view = w
            case "complete": m.complete = w
            case "like": m.like = w
            case "share": m.share = w
            case "skip": m.skip = w
            default: m.hide = w
            }
        }
        return m
    }
}
