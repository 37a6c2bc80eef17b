import ArgumentParser
import ForYou
import Foundation

struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Online tests: A/B splits (users split by a salted hash, each variant served from its own generation) and interleaving.",
        discussion: """
        While an A/B experiment runs, `foryou serve` starts each new feed session on the user's \
        variant's generation, every served video carries "experiment" and "variant", every \
        accepted event records them in the log, and every served page is an exposure in the \
        exposure log (DATA/exposures, or the topic <topic>.exposures on Kafka). `report` reads \
        both: per variant users, impressions (videos the server served), like rate, completion \
        rate and watch time per impression with 95 % intervals; each variant against the first \
        with the difference, relative lift, a CUPED-adjusted difference (covariate: the user's same \
        metric before the start), fixed-horizon and always-valid (mSPRT) p-values and intervals, \
        Holm correction of all but the primary metric, the users needed at 80 % power; guardrails \
        (skip, hide, trending-fallback share, error rate, latency p99); a sample-ratio check. \
        An interleaving test (`create --interleave A B`) serves everyone pages team-drafted from \
        two generations and reports which side users' completions and likes preferred. The \
        server picks up start and stop within its refresh period.
        """,
        subcommands: [Create.self, Start.self, Stop.self, Delete.self, List.self, ReportSub.self])

    static func store(_ d: DataDirOption, _ backend: StoreOption) throws -> any FeedStore { try backend.open(dataDir: d.dataDir) }

    static func run<T>(_ f: () throws -> T) throws -> T {
        do { return try f() } catch let e as ExperimentError { throw CLIError("experiment: \(e)") }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a draft experiment.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @Argument(help: "Experiment name.") var name: String
        @Option(name: .customLong("variant"), help: "NAME=GENERATION_OR_RUN:WEIGHT (repeatable; the first is the control). Weights are relative: 1 and 1, or 50 and 50, split users evenly.")
        var variants: [String] = []
        @Option(parsing: .upToNextOption, help: ArgumentHelp(
            "An interleaving test of two generations instead of an A/B split: [NAME=]GENERATION_OR_RUN twice (the first is A).",
            valueName: "A B"))
        var interleave: [String] = []
        @Option(help: "The primary metric (\(ExperimentReport.metrics.joined(separator: ", "))), declared now, before any result is read (default \(ExperimentReport.defaultPrimary)).")
        var primary: String?

        func validate() throws {
            if let p = primary, !ExperimentReport.metrics.contains(p) {
                throw ValidationError("--primary: one of \(ExperimentReport.metrics.joined(separator: ", "))")
            }
            if !interleave.isEmpty {
                guard interleave.count == 2 else { throw ValidationError("--interleave takes two generations (or runs): A B") }
                guard variants.isEmpty else { throw ValidationError("--interleave and --variant do not mix: an interleaving test has no split") }
            }
        }

        func run() throws {
            let store = try ExperimentCommand.store(data, backend)
            let gens = try store.generations()
            func generation(_ source: String) throws -> Int64 {
                if let id = Int64(source) { return id }
                if let g = gens.filter({ $0.runId == source }).map(\.id).max() { return g }
                throw CLIError("experiment: '\(source)' is neither a generation id nor the run of a stored generation")
            }
            var parsed: [Experiment.Variant] = []
            for v in variants {
                guard let eq = v.firstIndex(of: "="), let colon = v.lastIndex(of: ":"), eq < colon else {
                    throw CLIError("experiment: --variant '\(v)' is not NAME=GENERATION_OR_RUN:WEIGHT")
                }
                let name = String(v[..<eq]), source = String(v[v.index(after: eq)..<colon])
                guard let weight = Double(v[v.index(after: colon)...]) else { throw CLIError("experiment: bad weight in '\(v)'") }
                parsed.append(.init(name: name, generation: try generation(source), weight: weight))
            }
            for v in interleave {
                let (name, source) = v.firstIndex(of: "=").map { (String(v[..<$0]), String(v[v.index(after: $0)...])) }
                    ?? (Int64(v) != nil ? "gen" + v : v, v)
                parsed.append(.init(name: name, generation: try generation(source), weight: 1))
            }
            let kind: Experiment.Kind = interleave.isEmpty ? .ab : .interleave
            let e = try ExperimentCommand.run { try store.createExperiment(name: name, variants: parsed, kind: kind, primary: primary) }
            if kind == .interleave {
                print("experiment \(e.name) created (draft, interleaving): A = \(e.variants[0].name) (generation \(e.variants[0].generation)), "
                      + "B = \(e.variants[1].name) (generation \(e.variants[1].generation))")
            } else {
                print("experiment \(e.name) created (draft): " + e.variants.map { "\($0.name) = generation \($0.generation), weight \($0.weight)" }
                    .joined(separator: "; ") + "; primary metric: \(e.primary ?? ExperimentReport.defaultPrimary)")
            }
        }
    }

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a draft experiment (at most one runs at a time).")
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @Argument var name: String
        func run() throws {
            let store = try ExperimentCommand.store(data, backend)
            let e = try ExperimentCommand.run { try store.startExperiment(name, at: SQLiteFeedStore.now()) }
            print("experiment \(e.name) running since \(e.startedAt!)")
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop a running experiment (the live generation serves everyone again).")
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @Argument var name: String
        func run() throws {
            let store = try ExperimentCommand.store(data, backend)
            let e = try ExperimentCommand.run { try store.stopExperiment(name, at: SQLiteFeedStore.now()) }
            print("experiment \(e.name) stopped at \(e.stoppedAt!)")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a draft experiment (one that never started).")
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @Argument var name: String
        func run() throws {
            let store = try ExperimentCommand.store(data, backend)
            try ExperimentCommand.run { try store.deleteExperiment(name) }
            print("experiment \(name) deleted")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Experiments and their variants.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        func run() throws {
            var rows = [["name", "kind", "status", "variants", "primary", "started", "stopped"]]
            for e in try ExperimentCommand.store(data, backend).experiments() {
                rows.append([e.name, e.kind.rawValue, e.status.rawValue,
                             e.variants.map { "\($0.name)=gen\($0.generation)" + (e.kind == .ab ? ":\($0.weight)" : "") }.joined(separator: " "),
                             e.kind == .ab ? e.primary ?? ExperimentReport.defaultPrimary : "-",
                             e.startedAt.map(iso) ?? "-", e.stoppedAt.map(iso) ?? "-"])
            }
            print(Table.render(rows))
        }
    }

    struct ReportSub: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "report", abstract: "Per-variant metrics, lifts, CUPED and the sample-ratio check.")
        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @OptionGroup var events: EventsOption
        @Argument var name: String
        @Flag(help: "One JSON object instead of tables.") var json = false
        @Option(help: "Override the primary metric declared at create (\(ExperimentReport.metrics.joined(separator: ", "))): its p stands, the other metrics' p are Holm-adjusted. Overriding after reading invalidates the correction; the report says so.")
        var primary: String?
        @Option(help: "Also write the report as an HTML page with over-time panels.") var html: String?
        @Option(name: .customLong("guardrail-margin"), help: "Guardrails (skip rate, hide rate) fail past this relative worsening of the control's value.")
        var guardrailMargin = ExperimentReport.defaultGuardrailMargin

        func validate() throws {
            if let p = primary, !ExperimentReport.metrics.contains(p) {
                throw ValidationError("--primary: one of \(ExperimentReport.metrics.joined(separator: ", "))")
            }
        }

        func run() throws {
            let store = try ExperimentCommand.store(data, backend)
            guard let e = try store.experiment(named: name) else { throw CLIError("experiment: no experiment '\(name)'") }
            let declared = e.primary ?? ExperimentReport.defaultPrimary
            let primary = self.primary ?? declared
            var notes: [String] = []
            if primary != declared {
                notes.append("the primary metric was declared as \(declared) and is overridden here (\(primary)): choosing it after reading "
                             + "results voids the protection Holm's correction gives")
            }
            let r: ExperimentReport
            switch try events.location(dataDir: data.dataDir) {
            case .file(let dir):
                let log = try EventLog(directory: dir)
                defer { log.close() }
                var exposures: [Exposure] = []
                let d = DataDirectory(data.dataDir)
                let xdir = d.exposureLog(ofLog: dir)
                if FileManager.default.fileExists(atPath: xdir) {
                    let x = try EventLog(directory: xdir)
                    defer { x.close() }
                    exposures = try Exposure.read(x, experiment: e.name)
                }
                r = try ExperimentReport.analyse(e, log: log, exposures: exposures, primary: primary, guardrailMargin: guardrailMargin)
            case .kafka(let k):
                var exposures: [Exposure] = []
                do {
                    exposures = try Exposure.read(KafkaTopicSource(location: KafkaLocation(brokers: k.brokers, topic: k.topic + ".exposures",
                                                                                          properties: k.properties)), experiment: e.name)
                } catch {
                    notes.append("exposures could not be read from \(k.topic).exposures (\(error)); denominators from client events")
                }
                r = try ExperimentReport.analyse(e, log: KafkaTopicSource(location: k), exposures: exposures, primary: primary,
                                                 guardrailMargin: guardrailMargin)
            }
            if let html { try ExperimentPage.render(r).write(toFile: html, atomically: true, encoding: .utf8) }
            if json { print(try ExperimentCommand.json(r, notes: notes)); return }
            if let il = r.interleaving { return ExperimentCommand.printInterleaving(e, il, r) }
            print("experiment \(e.name) (\(e.status.rawValue)); control: \(e.variants[0].name)\n")
            guard r.arms.contains(where: { $0.users > 0 }) else {
                print(e.status == .draft ? "no data: the experiment has not started"
                                         : "no data: no user of this experiment has an event in the log yet")
                return
            }
            let empty = Set(r.arms.filter { $0.users == 0 }.map(\.name))
            var rows = [["variant", "users", "impressions", "pages", "latency p99"] + ExperimentReport.metrics.map { $0 + " [95 %]" }]
            for a in r.arms {
                rows.append([a.name, String(a.users), String(a.impressions), r.fromExposures ? String(a.pages) : "-",
                             a.latencyP99Ms.isFinite ? String(format: "%.1f ms", a.latencyP99Ms) : "-"] + ExperimentReport.metrics.map {
                    a.users == 0 ? "no data" : String(format: "%.4f ± %.4f", a.means[$0] ?? .nan, a.halfWidths[$0] ?? .nan)
                })
            }
            print(Table.render(rows))
            print(r.fromExposures ? "impressions: the videos the server served (exposure log)"
                                  : "impressions: videos with a client event (no exposures recorded for this experiment)")
            print("")
            var eff = [["variant", "metric", "difference [95 %]", "lift [95 %]", "CUPED difference [95 %]", "variance cut", "MDE (80 %)", "p",
                        "decision p", ""]]
            for x in r.effects {
                if empty.contains(x.variant) || empty.contains(e.variants[0].name) {
                    eff.append([x.variant, x.metric, "no data", "no data", "no data", "-", "-", "-", "-", ""])
                    continue
                }
                eff.append([x.variant, x.metric, String(format: "%+.4f [%+.4f, %+.4f]", x.difference, x.low, x.high),
                            String(format: "%+.1f%% [%+.1f%%, %+.1f%%]", 100 * x.lift, 100 * x.liftLow, 100 * x.liftHigh),
                            String(format: "%+.4f [%+.4f, %+.4f]", x.cupedDifference, x.cupedLow, x.cupedHigh),
                            String(format: "%.0f%%", 100 * x.varianceReduction), String(format: "%.4f", x.minimumDetectable),
                            String(format: "%.4f", x.cupedP),
                            String(format: "%.4f", x.decisionP) + (x.primary ? " (primary)" : " (Holm)"), x.significant ? "significant" : ""])
            }
            print(Table.render(eff))
            var seq = [["variant", "metric", "always-valid difference [95 %]", "always-valid p", "users needed (80 % power)"]]
            for x in r.effects where !empty.contains(x.variant) && !empty.contains(e.variants[0].name) {
                seq.append([x.variant, x.metric, String(format: "%+.4f [%+.4f, %+.4f]", x.cupedDifference, x.sequentialLow, x.sequentialHigh),
                            x.sequentialP.isFinite ? String(format: "%.4f", x.sequentialP) : "-",
                            x.usersNeeded.isFinite ? String(format: "%.0f", x.usersNeeded) : "-"])
            }
            print("\nsequential (mSPRT; valid at every look, so a running test may be read and stopped at any time):")
            print(Table.render(seq))
            for x in r.effects where x.cupedNote != nil && !empty.contains(x.variant) {
                print("CUPED on \(x.metric) (\(x.variant)) cut little: \(x.cupedNote!)")
            }
            if !r.guardrails.isEmpty {
                var g = [["guardrail", "variant", "control", "variant value", "difference [95 %]", "margin", "status"]]
                for x in r.guardrails {
                    g.append([x.metric, x.variant, String(format: "%.4f", x.control), String(format: "%.4f", x.treatment),
                              String(format: "%+.4f [%+.4f, %+.4f]", x.difference, x.low, x.high), String(format: "+%.4f", x.margin),
                              x.status == "ok" ? "ok" : x.status.uppercased()])
                }
                print("")
                print(Table.render(g))
            }
            if r.timeline.contains(where: { $0.day > 0 }) {
                var t = [["day", "", "users"] + r.effects.map { "\($0.metric) (\($0.variant))" }]
                for p in r.timeline {
                    t.append(["\(p.day + 1)", p.cumulative ? "through" : "alone", "\(p.users)"] + p.effects.map {
                        String(format: "%+.4f [%+.4f, %+.4f]", $0.cupedDifference, $0.cupedLow, $0.cupedHigh)
                    })
                }
                print("\nover time (CUPED difference per day alone, and from the start through the day):")
                print(Table.render(t))
            }
            print("primary metric: \(r.primary) (p as is); the other metrics' p are Holm-adjusted together")
            for n in notes { print("note: \(n)") }
            if e.status == .running {
                print("warning: the experiment is still running. The fixed-horizon figures (p, decision p) assume one read at the "
                      + "planned end: read repeatedly before it, some metric will cross p < 0.05 by chance. Either plan the end as the "
                      + "point where the MDE column falls below the effect that matters and decide then, or decide now on the "
                      + "always-valid columns, which allow reading at any time.")
            }
            let s = r.sampleRatio
            print(String(format: "\nsample ratio: chi-square %.2f, p = %.4g: %@", s.chiSquare, s.p,
                         s.mismatch ? "MISMATCH (users per variant do not follow the weights; the split or the logging is broken)"
                                    : "consistent with the weights"))
        }
    }

    static func printInterleaving(_ e: Experiment, _ il: ExperimentReport.Interleaving, _ r: ExperimentReport) {
        let (a, b) = (e.variants[0], e.variants[1])
        print("experiment \(e.name) (\(e.status.rawValue), interleaving): A = \(a.name) (generation \(a.generation)), "
              + "B = \(b.name) (generation \(b.generation))\n")
        guard il.users > 0 else {
            print(e.status == .draft ? "no data: the experiment has not started" : "no data: no interleaved page was served yet")
            return
        }
        print(Table.render([
            ["users served drafted videos", "users with credit", "credit A", "credit B", "A wins", "B wins", "ties"],
            [String(il.users), String(il.credited), String(il.creditA), String(il.creditB), String(il.winsA), String(il.winsB), String(il.ties)],
        ]))
        print(String(format: "\npreference for B over A: %+.4f [%+.4f, %+.4f], p = %.4g%@", il.preference, il.low, il.high, il.p,
                     il.p < 0.05 ? (il.preference > 0 ? " (B preferred)" : " (A preferred)") : ""))
        if il.usersNeeded.isFinite { print(String(format: "users needed to detect this preference at 80 %% power: %.0f", il.usersNeeded)) }
        print("credit: completions + likes on the videos each side drafted; preference per user with any credit: "
              + "(credit B - credit A) / (credit A + credit B), averaged over users")
    }

    /// Milliseconds since the epoch as ISO-8601.
    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// JSON cannot hold NaN: a figure without data is null.
    static func num(_ x: Double) -> Any { x.isFinite ? x : NSNull() }

    static func json(_ r: ExperimentReport, notes: [String] = []) throws -> String {
        let hasData = r.arms.contains { $0.users > 0 } || (r.interleaving?.users ?? 0) > 0
        var obj: [String: Any] = [
            "kind": r.experiment.kind.rawValue, "notes": notes, "from_exposures": r.fromExposures,
            "experiment": r.experiment.name,
            "status": hasData ? "ok" : "no data",
            "arms": r.arms.map { ["name": $0.name, "users": $0.users, "impressions": $0.impressions, "pages": $0.pages,
                                  "latency_p99_ms": num($0.latencyP99Ms),
                                  "means": $0.means.mapValues(num), "half_widths": $0.halfWidths.mapValues(num)] as [String: Any] },
            "effects": r.effects.map { ["variant": $0.variant, "metric": $0.metric, "difference": num($0.difference), "low": num($0.low),
                                        "high": num($0.high), "lift": num($0.lift), "cuped_difference": num($0.cupedDifference),
                                        "cuped_low": num($0.cupedLow), "cuped_high": num($0.cupedHigh),
                                        "variance_reduction": num($0.varianceReduction), "p": num($0.p), "cuped_p": num($0.cupedP),
                                        "decision_p": num($0.decisionP), "primary": $0.primary, "significant": $0.significant,
                                        "mde_80": num($0.minimumDetectable), "sequential_low": num($0.sequentialLow),
                                        "sequential_high": num($0.sequentialHigh), "sequential_p": num($0.sequentialP),
                                        "users_needed": num($0.usersNeeded),
                                        "pre_coverage": num($0.preCoverage), "cuped_note": $0.cupedNote ?? NSNull()] as [String: Any] },
            "primary": r.primary,
            "guardrails": r.guardrails.map { ["variant": $0.variant, "metric": $0.metric, "control": num($0.control),
                                              "treatment": num($0.treatment), "difference": num($0.difference), "low": num($0.low),
                                              "high": num($0.high), "margin": num($0.margin), "status": $0.status] as [String: Any] },
            "status_of_experiment": r.experiment.status.rawValue,
            "timeline": r.timeline.map { p in
                ["day": p.day + 1, "cumulative": p.cumulative, "users": p.users,
                 "effects": p.effects.map { ["variant": $0.variant, "metric": $0.metric, "cuped_difference": num($0.cupedDifference),
                                             "cuped_low": num($0.cupedLow), "cuped_high": num($0.cupedHigh),
                                             "decision_p": num($0.decisionP)] as [String: Any] }] as [String: Any]
            },
            "started_at": r.experiment.startedAt.map(iso) ?? NSNull(), "stopped_at": r.experiment.stoppedAt.map(iso) ?? NSNull(),
            "srm_chi_square": hasData ? num(r.sampleRatio.chiSquare) : NSNull(), "srm_p": hasData ? num(r.sampleRatio.p) : NSNull(),
            "srm_mismatch": hasData && r.sampleRatio.mismatch && r.interleaving == nil,
        ]
        if let il = r.interleaving {
            obj["interleaving"] = ["users": il.users, "credited": il.credited, "credit_a": il.creditA, "credit_b": il.creditB,
                                   "wins_a": il.winsA, "wins_b": il.winsB, "ties": il.ties, "preference": num(il.preference),
                                   "low": num(il.low), "high": num(il.high), "p": num(il.p), "users_needed": num(il.usersNeeded)] as [String: Any]
        }
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
    }
}
