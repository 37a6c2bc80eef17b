import ArgumentParser
import ForYou
import Foundation

struct ExperimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiment",
        abstract: "Online A/B tests: users split by a salted hash between variants, each served from its own generation.",
        discussion: """
        While an experiment runs, `foryou serve` starts each new feed session on the user's \
        variant's generation, every served video carries "experiment" and "variant", and every \
        accepted event records them in the log. `report` reads the log: per variant users, \
        impressions, like rate, completion rate and watch time per impression with 95 % \
        intervals; each variant against the first with the difference, relative lift and a \
        CUPED-adjusted difference (covariate: the user's same metric before the start); and a \
        sample-ratio-mismatch chi-square check. The server picks up start and stop within its \
        refresh period.
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

        func run() throws {
            let store = try ExperimentCommand.store(data, backend)
            var parsed: [Experiment.Variant] = []
            for v in variants {
                guard let eq = v.firstIndex(of: "="), let colon = v.lastIndex(of: ":"), eq < colon else {
                    throw CLIError("experiment: --variant '\(v)' is not NAME=GENERATION_OR_RUN:WEIGHT")
                }
                let name = String(v[..<eq]), source = String(v[v.index(after: eq)..<colon])
                guard let weight = Double(v[v.index(after: colon)...]) else { throw CLIError("experiment: bad weight in '\(v)'") }
                let gens = try store.generations()
                let gen: Int64
                if let id = Int64(source) {
                    gen = id
                } else if let g = gens.filter({ $0.runId == source }).map(\.id).max() {
                    gen = g
                } else {
                    throw CLIError("experiment: '\(source)' is neither a generation id nor the run of a stored generation")
                }
                parsed.append(.init(name: name, generation: gen, weight: weight))
            }
            let e = try ExperimentCommand.run { try store.createExperiment(name: name, variants: parsed) }
            print("experiment \(e.name) created (draft): " + e.variants.map { "\($0.name) = generation \($0.generation), weight \($0.weight)" }
                .joined(separator: "; "))
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
            var rows = [["name", "status", "variants", "started", "stopped"]]
            for e in try ExperimentCommand.store(data, backend).experiments() {
                rows.append([e.name, e.status.rawValue, e.variants.map { "\($0.name)=gen\($0.generation):\($0.weight)" }.joined(separator: " "),
                             e.startedAt.map(String.init) ?? "-", e.stoppedAt.map(String.init) ?? "-"])
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
        @Option(help: "The primary metric (\(ExperimentReport.metrics.joined(separator: ", "))), declared before reading: its p stands, the other metrics' p are Holm-adjusted.")
        var primary = ExperimentReport.defaultPrimary
        @Option(name: .customLong("guardrail-margin"), help: "Guardrails (skip rate, hide rate) fail past this relative worsening of the control's value.")
        var guardrailMargin = ExperimentReport.defaultGuardrailMargin

        func validate() throws {
            guard ExperimentReport.metrics.contains(primary) else {
                throw ValidationError("--primary: one of \(ExperimentReport.metrics.joined(separator: ", "))")
            }
        }

        func run() throws {
            let store = try ExperimentCommand.store(data, backend)
            guard let e = try store.experiment(named: name) else { throw CLIError("experiment: no experiment '\(name)'") }
            let r: ExperimentReport
            switch try events.location(dataDir: data.dataDir) {
            case .file(let dir):
                let log = try EventLog(directory: dir)
                defer { log.close() }
                r = try ExperimentReport.analyse(e, log: log, primary: primary, guardrailMargin: guardrailMargin)
            case .kafka(let k):
                r = try ExperimentReport.analyse(e, log: KafkaTopicSource(location: k), primary: primary, guardrailMargin: guardrailMargin)
            }
            if json { print(try ExperimentCommand.json(r)); return }
            print("experiment \(e.name) (\(e.status.rawValue)); control: \(e.variants[0].name)\n")
            guard r.arms.contains(where: { $0.users > 0 }) else {
                print(e.status == .draft ? "no data: the experiment has not started"
                                         : "no data: no user of this experiment has an event in the log yet")
                return
            }
            let empty = Set(r.arms.filter { $0.users == 0 }.map(\.name))
            var rows = [["variant", "users", "impressions"] + ExperimentReport.metrics.map { $0 + " [95 %]" }]
            for a in r.arms {
                rows.append([a.name, String(a.users), String(a.impressions)] + ExperimentReport.metrics.map {
                    a.users == 0 ? "no data" : String(format: "%.4f ± %.4f", a.means[$0] ?? .nan, a.halfWidths[$0] ?? .nan)
                })
            }
            print(Table.render(rows))
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
            if e.status == .running {
                print("warning: the experiment is still running. These are fixed-horizon figures: read repeatedly before the planned "
                      + "end, some metric will cross p < 0.05 by chance. Plan the end as the point where the MDE column falls below "
                      + "the effect that matters, and decide then.")
            }
            let s = r.sampleRatio
            print(String(format: "\nsample ratio: chi-square %.2f, p = %.4g: %@", s.chiSquare, s.p,
                         s.mismatch ? "MISMATCH (users per variant do not follow the weights; the split or the logging is broken)"
                                    : "consistent with the weights"))
        }
    }

    /// Milliseconds since the epoch as ISO-8601.
    static func iso(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    /// JSON cannot hold NaN: a figure without data is null.
    static func num(_ x: Double) -> Any { x.isFinite ? x : NSNull() }

    static func json(_ r: ExperimentReport) throws -> String {
        let hasData = r.arms.contains { $0.users > 0 }
        let obj: [String: Any] = [
            "experiment": r.experiment.name,
            "status": hasData ? "ok" : "no data",
            "arms": r.arms.map { ["name": $0.name, "users": $0.users, "impressions": $0.impressions,
                                  "means": $0.means.mapValues(num), "half_widths": $0.halfWidths.mapValues(num)] as [String: Any] },
            "effects": r.effects.map { ["variant": $0.variant, "metric": $0.metric, "difference": num($0.difference), "low": num($0.low),
                                        "high": num($0.high), "lift": num($0.lift), "cuped_difference": num($0.cupedDifference),
                                        "cuped_low": num($0.cupedLow), "cuped_high": num($0.cupedHigh),
                                        "variance_reduction": num($0.varianceReduction), "p": num($0.p), "cuped_p": num($0.cupedP),
                                        "decision_p": num($0.decisionP), "primary": $0.primary, "significant": $0.significant,
                                        "mde_80": num($0.minimumDetectable),
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
            "srm_mismatch": hasData && r.sampleRatio.mismatch,
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
    }
}
