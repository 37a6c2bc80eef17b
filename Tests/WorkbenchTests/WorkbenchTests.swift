import XCTest
import Foundation
import LinearAlgebra
import Interactions
import Rankers
import Evaluation
import Artifacts
@testable import Workbench
import TestSupport

/// Runs recorded with their evaluations, the registry over them, and paired comparisons.
final class WorkbenchTests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("workbench") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    struct Split { var train: Interactions; var test: Interactions; var trainPath: String; var testPath: String }

    func split(seed: UInt64 = 42, name: String = "split") throws -> Split {
        var c = SynthConfig()
        c.users = 400; c.items = 200; c.interactions = 12_000; c.seed = seed
        let r = try Splitter(.random(fraction: 0.2, seed: 1)).split(Synth.generate(c).data)
        let trainPath = dir + "/\(name)-train.tsv", testPath = dir + "/\(name)-test.tsv"
        try InteractionWriter.write(r.train, to: trainPath)
        try InteractionWriter.write(r.test, to: testPath)
        return Split(train: r.train, test: r.test, trainPath: trainPath, testPath: testPath)
    }

    /// Trains (ALS, or popularity when factors is 0), stores, evaluates and records, like `foryou train --test`.
    @discardableResult
    func run(_ id: String, _ s: Split, factors: Int = 16, seed: UInt64 = 1) throws -> RunEntry {
        let cui = s.train.confidenceMatrix(Confidence(scheme: .linear, alpha: 1))
        let ranker: Ranker
        if factors > 0 {
            ranker = try ALSModel.fit(cui, config: ALSConfig(factors: factors, regularization: 0.05, iterations: 8, solver: .cg,
                                                             threads: 2, seed: seed, computeLoss: true)).0
        } else {
            ranker = PopularityModel(fit: cui)
        }
        let record = RunRecord(id: id, model: factors > 0 ? "als" : "popularity", createdAt: "2026-11-26T10:00:0\(id.count % 10)Z",
                               codeVersion: "test", params: ["factors": "\(factors)", "seed": "\(seed)"],
                               data: .init(paths: [s.trainPath], format: "split", fingerprint: try ModelStore.fingerprint(paths: [s.trainPath]),
                                           rows: s.train.count, users: s.train.users.count, items: s.train.items.count, nnz: cui.nnz),
                               losses: (ranker as? ALSModel)?.losses ?? [],
                               timings: .init(importSeconds: 0, fitSeconds: 0, iterationSeconds: [], lossSeconds: nil),
                               outcome: "completed", environment: [:], metrics: [:], files: [:])
        let path = dir + "/models/" + id
        try ModelStore.save(ranker, users: s.train.users, items: s.train.items, seen: cui, run: record, to: path)
        let report = Evaluator(k: 10, threads: 2).evaluate(ranker, users: s.train.users, items: s.train.items, seen: cui, test: s.test)
        try EvaluationRecord.attach(report, test: [s.testPath], to: path)
        return try RunsRegistry(root: dir + "/models").resolve(id)
    }

    func testARecordedEvaluationRoundTripsAndIsCheckedOnLoad() throws {
        let s = try split()
        let e = try run("als-a", s)
        let info = try XCTUnwrap(e.run.evaluation)
        XCTAssertEqual(info.k, 10)
        XCTAssertEqual(info.testFingerprint, try ModelStore.fingerprint(paths: [s.testPath]))
        let rec = try EvaluationRecord.read(e.directory + "/" + info.perUserFile)
        XCTAssertEqual(rec.users.count, info.users)
        let mean = rec.metrics["ndcg"]!.reduce(0, +) / Double(rec.users.count)
        XCTAssertEqual(mean, try XCTUnwrap(e.run.metrics["ndcg@10"]), accuracy: 1e-9)
        XCTAssertTrue(rec.lists.allSatisfy { $0.count == 10 })
        XCTAssertNoThrow(try ModelStore.load(e.directory))
        // An edited per-user file no longer matches its recorded digest.
        let path = e.directory + "/" + info.perUserFile
        try (String(contentsOfFile: path, encoding: .utf8) + "x\t0\t0\t0\t0\t\n").write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelStore.load(e.directory))
    }

    func testTheRegistryListsFiltersSortsDiffsAndRemoves() throws {
        let s = try split()
        try run("als-8", s, factors: 8)
        try run("als-16", s, factors: 16)
        try run("pop", s, factors: 0)
        let reg = RunsRegistry(root: dir + "/models")
        XCTAssertEqual(reg.all().count, 3)
        XCTAssertEqual(try reg.list(filters: [try .init("model=als")]).map(\.id).sorted(), ["als-16", "als-8"])
        XCTAssertEqual(try reg.list(filters: [try .init("factors>10")]).map(\.id), ["als-16"])
        let byNDCG = try reg.list(sort: "ndcg@10", descending: true)
        // A field no run records is an error naming the known ones, for sorting and filtering alike.
        XCTAssertThrowsError(try reg.list(sort: "bogus")) { e in
            guard case .unknownField("bogus", let known)? = e as? RegistryError else { return XCTFail("\(e)") }
            XCTAssertTrue(known.contains("ndcg@10") && known.contains("factors") && known.contains("model"))
        }
        XCTAssertThrowsError(try reg.list(filters: [try .init("alpah=1")]))
        let values = byNDCG.map { $0.run.metrics["ndcg@10"]! }
        XCTAssertEqual(values, values.sorted(by: >))
        XCTAssertThrowsError(try RunsRegistry.Filter("factors")) { XCTAssertEqual($0 as? RegistryError, .badFilter("factors")) }
        XCTAssertThrowsError(try reg.resolve("als")) { XCTAssertEqual($0 as? RegistryError, .ambiguous("als", ["als-8", "als-16"])) }
        XCTAssertEqual(try reg.resolve("po").id, "pop")
        let d = RunsRegistry.diff(try reg.resolve("als-8").run, try reg.resolve("pop").run)
        XCTAssertTrue(d.contains { $0.field == "param factors" && $0.a == "8" && $0.b == "0" })
        XCTAssertTrue(d.contains { $0.field == "model" })
        XCTAssertFalse(d.contains { $0.field == "data" }, "same training data")
        _ = try reg.remove("pop")
        XCTAssertEqual(reg.all().map(\.id).sorted(), ["als-16", "als-8"])
        XCTAssertThrowsError(try reg.resolve("pop"))
        // A corrupt run.json is reported, not skipped; a directory without one is not a run.
        try FileManager.default.createDirectory(atPath: dir + "/models/broken", withIntermediateDirectories: true)
        try "{\"id\": ".write(toFile: dir + "/models/broken/run.json", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/models/notes", withIntermediateDirectories: true)
        let scan = reg.scan()
        XCTAssertEqual(scan.runs.map(\.id).sorted(), ["als-16", "als-8"])
        XCTAssertEqual(scan.unreadable.map(\.directory), [dir + "/models/broken"])
    }

    /// Parameters have one normal form: "1.0" and "1" are one value in run.json, filters and diffs.
    func testParametersAreStoredInOneNormalForm() throws {
        for (raw, norm) in [("1.0", "1"), ("10.00", "10"), ("-3.0", "-3"), ("0.05", "0.05"), ("1", "1"), ("1.", "1."), (".0", ".0"),
                            ("log", "log"), ("0.3.0", "0.3.0"), ("1.0e5", "1.0e5"), ("als,ease", "als,ease")] {
            XCTAssertEqual(RunRecord.normalized(raw), norm, raw)
        }
        let s = try split()
        let a = try run("alpha-float", s, factors: 8)
        var rec = a.run
        rec.params["alpha"] = "1.0"
        try ModelStore.writeRun(rec, to: a.directory + "/run.json")
        let text = try String(contentsOfFile: a.directory + "/run.json", encoding: .utf8)
        XCTAssertTrue(text.contains("\"alpha\" : \"1\""), text)
        let reg = RunsRegistry(root: dir + "/models")
        XCTAssertEqual(try reg.list(filters: [try .init("alpha=1.0")]).map(\.id), ["alpha-float"])
        XCTAssertEqual(try reg.list(filters: [try .init("alpha=1")]).map(\.id), ["alpha-float"])
        var other = rec
        other.params["alpha"] = "1"
        XCTAssertFalse(RunsRegistry.diff(try reg.resolve("alpha-float").run, other.normalized).contains { $0.field == "param alpha" })
        // Training results are not parameters: diffed, filtered and sorted on, but apart.
        var measured = other
        measured.results = ["examples_per_s": "1200"]
        var faster = measured
        faster.results = ["examples_per_s": "1500"]
        XCTAssertEqual(RunsRegistry.diff(measured, faster).map(\.field), ["result examples_per_s"])
        XCTAssertEqual(RunsRegistry.value(faster, "examples_per_s"), "1500")
        try ModelStore.writeRun(faster, to: a.directory + "/run.json")
        XCTAssertEqual(try reg.list(filters: [try .init("examples_per_s>1300")]).map(\.id), ["alpha-float"])
    }

    /// A bare name is a run id first: a same-named folder elsewhere (the working directory) does
    /// not shadow it, and the clash is noted; a path with a "/" is the directory.
    func testARunIdIsResolvedBeforeASameNamedFolder() throws {
        let s = try split()
        try run("ml-als", s, factors: 8)
        try run("other", s, factors: 16)
        let cwd = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(dir)
        defer { FileManager.default.changeCurrentDirectoryPath(cwd) }
        // ./ml-als in the working directory holds a copy of the other run.
        try FileManager.default.copyItem(atPath: dir + "/models/other", toPath: dir + "/ml-als")
        let reg = RunsRegistry(root: dir + "/models")
        let (e, note) = try reg.resolveNoting("ml-als")
        XCTAssertEqual(e.id, "ml-als")
        XCTAssertEqual(e.directory, dir + "/models/ml-als")
        XCTAssertTrue(note?.contains("both run ml-als") == true, note ?? "no note")
        let (p, pathNote) = try reg.resolveNoting("./ml-als")
        XCTAssertEqual(p.id, "other")
        XCTAssertNil(pathNote)
        XCTAssertNil(try reg.resolveNoting("other").note)
    }

    func testComparingSeedsFindsNothingAndABetterModelIsFound() throws {
        let s = try split()
        let a = try run("seed-1", s, seed: 1), b = try run("seed-2", s, seed: 2)
        let same = try RunComparison.compare(a, b, resamples: 2_000)
        XCTAssertEqual(same.users, a.run.evaluation!.users)
        for m in same.metrics {
            XCTAssertLessThanOrEqual(m.interval.low, 0, "\(m.name)")
            XCTAssertGreaterThanOrEqual(m.interval.high, 0, "\(m.name)")
        }
        XCTAssertGreaterThan(same.overlap, 0.3)
        XCTAssertLessThan(same.overlap, 1)
        // ALS against popularity on data with planted tastes: a difference the interval sees.
        let pop = try run("pop", s, factors: 0)
        let c = try RunComparison.compare(pop, a, resamples: 2_000)
        let ndcg = try XCTUnwrap(c.metrics.first { $0.name == "ndcg@10" })
        XCTAssertGreaterThan(ndcg.interval.low, 0, "ALS - popularity NDCG@10: \(ndcg.interval)")
        XCTAssertLessThan(ndcg.p, 0.01)
        XCTAssertGreaterThan(c.sideB.coverage, c.sideA.coverage)
        XCTAssertGreaterThan(c.sideA.gini, c.sideB.gini)
        XCTAssertGreaterThan(c.sideB.novelty, c.sideA.novelty)
    }

    func testReplicatesCoverTrainingRandomnessAndMustShareTheirConfiguration() throws {
        let s = try split()
        let a = try (1...3).map { try run("als-s\($0)", s, seed: UInt64($0)) }
        let b = try (4...6).map { try run("als-s\($0)", s, seed: UInt64($0)) }
        let same = try RunComparison.compare(replicates: a, b, resamples: 2_000)
        XCTAssertTrue(same.replicated)
        for m in same.metrics {
            XCTAssertLessThanOrEqual(m.interval.low, 0, "\(m.name)")
            XCTAssertGreaterThanOrEqual(m.interval.high, 0, "\(m.name)")
            XCTAssertGreaterThan(m.p, 0.05, "\(m.name)")
        }
        // Side means are the means over replicates.
        let ndcg = try a.map { try XCTUnwrap($0.run.metrics["ndcg@10"]) }
        XCTAssertEqual(try XCTUnwrap(same.metrics.first { $0.name == "ndcg@10" }).a, ndcg.reduce(0, +) / 3, accuracy: 1e-9)
        // A real difference survives resampling the replicates: popularity is one model (no seed).
        let pop = try run("pop", s, factors: 0)
        let better = try RunComparison.compare(replicates: [pop], a, metrics: ["ndcg"], resamples: 2_000)
        XCTAssertGreaterThan(better.metrics[0].interval.low, 0)
        XCTAssertLessThan(better.metrics[0].p, 0.01)
        // Replicates differ only in seed.
        let wide = try run("als-wide", s, factors: 8, seed: 7)
        XCTAssertThrowsError(try RunComparison.compare(replicates: [a[0], wide], b)) { e in
            XCTAssertEqual(e as? CompareError, .notReplicates("als-s1", "als-wide", "factors: 16 vs 8"))
            XCTAssertTrue("\(e)".contains("differ only in seed"))
        }
        XCTAssertThrowsError(try RunComparison.compare(replicates: a, [pop, b[0]])) { e in
            guard case .notReplicates? = e as? CompareError else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try RunComparison.compare(replicates: [a[0], a[0]], b)) {
            XCTAssertEqual($0 as? CompareError, .repeatedRun("als-s1"))
        }
    }

    func testComparingRunsOnOtherDataIsRefused() throws {
        let a = try run("a", try split())
        let b = try run("b", try split(seed: 7, name: "other"))
        XCTAssertThrowsError(try RunComparison.compare(a, b)) { e in
            guard case .differentData? = e as? CompareError else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("different data"))
        }
        // No recorded evaluation.
        var bare = a
        bare.run.evaluation = nil
        XCTAssertThrowsError(try RunComparison.compare(bare, a)) { XCTAssertEqual($0 as? CompareError, .noEvaluation("a")) }
    }

    func testSweepGridsRandomDrawsAndBadKeys() throws {
        let spec = SweepSpec(keys: ["factors", "reg", "alpha"], values: [["8", "16", "32"], ["0.01", "0.1", "1"], ["1", "10", "40"]],
                             base: ["iters": "3"])
        let all = try Sweep.configurations(spec)
        XCTAssertEqual(all.count, 27)
        func key(_ c: [String: String]) -> String { c.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        XCTAssertEqual(Set(all.map(key)).count, 27)
        XCTAssertTrue(all.allSatisfy { $0["iters"] == "3" })
        var r = spec
        r.random = 5
        let drawn = try Sweep.configurations(r)
        XCTAssertEqual(drawn.count, 5)
        XCTAssertEqual(Set(drawn.map(key)).count, 5)
        XCTAssertEqual(try Sweep.configurations(r), drawn, "seeded")
        XCTAssertThrowsError(try Sweep.configurations(SweepSpec(keys: ["rank"], values: [["4"]], base: [:]))) {
            XCTAssertEqual($0 as? SweepError, .unknownParameter("rank", .als))
        }
        XCTAssertThrowsError(try Sweep.configurations(SweepSpec(keys: ["reg"], values: [["-1"]], base: [:]))) {
            XCTAssertEqual($0 as? SweepError, .badValue("reg", "-1"))
        }
    }

    func testAnInterruptedSweepResumesWithoutRedoingTrials() throws {
        let s = try split()
        let spec = SweepSpec(keys: ["factors", "alpha"], values: [["4", "16"], ["1", "20"]], base: ["iters": "4"])
        let fp = try ModelStore.fingerprint(paths: [s.trainPath])
        let sweepDir = dir + "/sweep"
        let token = CancellationToken()
        var lines: [String] = []
        let (first, o1) = try Sweep.run(spec, data: s.train, dataPaths: [s.trainPath], fingerprint: fp, directory: sweepDir, threads: 2,
                                        cancel: token) { line in
            lines.append(line)
            if lines.count == 2 { token.cancel() }  // Ctrl-C after the second trial
        }
        XCTAssertEqual(o1, .cancelled)
        XCTAssertEqual(first.trials.count, 2)
        let stored = try JSONDecoder().decode(SweepRecord.self, from: Data(contentsOf: URL(fileURLWithPath: sweepDir + "/sweep.json")))
        XCTAssertEqual(stored.trials, first.trials)
        var resumed: [String] = []
        let (done, o2) = try Sweep.run(spec, data: s.train, dataPaths: [s.trainPath], fingerprint: fp, directory: sweepDir, threads: 2) {
            resumed.append($0)
        }
        XCTAssertEqual(o2, .completed)
        XCTAssertEqual(done.trials.count, 4)
        XCTAssertEqual(Array(done.trials.prefix(2)), first.trials, "finished trials are kept, not rerun")
        // Each trial keeps its validation users' metrics; their mean is the trial's figure.
        for t in done.trials {
            let lines = try String(contentsOfFile: sweepDir + "/" + XCTUnwrap(t.perUserFile), encoding: .utf8)
                .split(separator: "\n").dropFirst()
            let ndcg = lines.map { Double($0.split(separator: "\t")[1])! }
            XCTAssertEqual(ndcg.reduce(0, +) / Double(ndcg.count), t.metrics["ndcg@10"]!, accuracy: 1e-9)
        }
        XCTAssertTrue(resumed.first?.contains("2 of 4 trials already done") == true, "\(resumed)")
        XCTAssertEqual(resumed.count, 3)  // the resume line and two new trials
        // With planted tastes 16 factors beat 4 on validation.
        let best = try XCTUnwrap(done.best(by: "ndcg@10"))
        XCTAssertEqual(best.params["factors"], "16")
        // A different sweep in the same directory is refused.
        var other = spec
        other.values[0] = ["8"]
        XCTAssertThrowsError(try Sweep.run(other, data: s.train, dataPaths: [s.trainPath], fingerprint: fp, directory: sweepDir)) {
            XCTAssertEqual($0 as? SweepError, .otherSweepStored(sweepDir))
        }
    }

    func testExportsLoadInNumpyWithTheirIdMaps() throws {
        let s = try split()
        let e = try run("als-x", s, factors: 6)
        let out = dir + "/notebooks"
        let files = try Export.run(e, to: out)
        XCTAssertEqual(Set(files), ["users.csv", "items.csv", "user_factors.npy", "item_factors.npy", "per_user_metrics.csv"])
        let m = try ModelStore.load(e.directory)
        let f = try XCTUnwrap(m.ranker as? FactorRanker)
        // numpy reads the same numbers, and the id maps line up with the rows.
        let script = """
        import sys, csv, json, numpy as np
        d = sys.argv[1]
        u = np.load(d + "/user_factors.npy"); v = np.load(d + "/item_factors.npy")
        users = list(csv.DictReader(open(d + "/users.csv"))); items = list(csv.DictReader(open(d + "/items.csv")))
        per = list(csv.DictReader(open(d + "/per_user_metrics.csv")))
        print(json.dumps({"u": list(u.shape), "v": list(v.shape), "dtype": str(u.dtype), "u00": float(u[0, 0]),
                          "v_last": float(v[-1, -1]), "user0": users[0]["id"], "items": len(items),
                          "ndcg": sum(float(r["ndcg"]) for r in per) / len(per)}))
        """
        let got = try JSONSerialization.jsonObject(with: Data(try CLIRunner.python(["-c", script, out]).utf8)) as! [String: Any]
        XCTAssertEqual(got["u"] as? [Int], [f.userFactors.rows, 6])
        XCTAssertEqual(got["v"] as? [Int], [f.itemFactors.rows, 6])
        XCTAssertEqual(got["dtype"] as? String, "float32")
        // float32 -> Python float -> JSON -> Double: the same float32 again.
        XCTAssertEqual(Float(try XCTUnwrap(got["u00"] as? Double)), f.userFactors.storage[0])
        XCTAssertEqual(Float(try XCTUnwrap(got["v_last"] as? Double)), f.itemFactors.storage[f.itemFactors.count - 1])
        XCTAssertEqual(got["user0"] as? String, m.users.raw[0])
        XCTAssertEqual(got["items"] as? Int, m.items.count)
        XCTAssertEqual(try XCTUnwrap(got["ndcg"] as? Double), try XCTUnwrap(e.run.metrics["ndcg@10"]), accuracy: 1e-9)
    }

    /// Renders `html` in headless Chromium: the console messages it logged and the screenshot's
    /// share of non-white pixels and number of distinct colours (decoded with zlib in Python).
    func render(_ html: String, name: String, size: String = "1100,2200") throws -> (console: [String], inked: Double, colours: Int) {
        try Self.render(html, dir: dir, name: name, size: size)
    }

    static func render(_ html: String, dir: String, name: String, size: String = "1100,2200") throws
        -> (console: [String], inked: Double, colours: Int) {
        let page = dir + "/\(name).html", shot = dir + "/\(name).png"
        try html.write(toFile: page, atomically: true, encoding: .utf8)
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "chromium is not installed; scripts/test installs it"]) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium)
        p.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
                       "--user-data-dir=" + dir + "/chromium-profile", "--window-size=" + size, "--screenshot=" + shot,
                       "file://" + page]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, log)
        let console = log.split(separator: "\n").filter { $0.contains(":CONSOLE") }.map(String.init)
        let script = """
        import sys, zlib, struct, json
        b = open(sys.argv[1], "rb").read()
        assert b[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        pos, idat, w = 8, b"", 0
        while pos < len(b):
            n, t = struct.unpack(">I4s", b[pos:pos + 8]); d = b[pos + 8:pos + 8 + n]; pos += 12 + n
            if t == b"IHDR": w, h, depth, ctype = struct.unpack(">IIBB", d[:10])
            if t == b"IDAT": idat += d
        bpp = {2: 3, 6: 4}[ctype]
        raw = zlib.decompress(idat); stride = w * bpp; prev = bytearray(stride); rows = []; i = 0
        for _ in range(h):
            f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0; up = prev[x]; c = prev[x - bpp] if x >= bpp else 0
                if f == 1: line[x] = (line[x] + a) & 255
                elif f == 2: line[x] = (line[x] + up) & 255
                elif f == 3: line[x] = (line[x] + (a + up) // 2) & 255
                elif f == 4:
                    p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                    line[x] = (line[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
            rows.append(bytes(line)); prev = line
        px = [r[x:x + 3] for r in rows[::4] for x in range(0, stride, bpp * 4)]
        inked = sum(1 for q in px if q != b"\\xff\\xff\\xff") / len(px)
        print(json.dumps({"inked": inked, "colours": len(set(px))}))
        """
        let out = try JSONSerialization.jsonObject(with: Data(try CLIRunner.python(["-c", script, shot]).utf8)) as! [String: Any]
        return (console, out["inked"] as! Double, out["colours"] as! Int)
    }

    func testTheReportRendersInChromiumWithoutConsoleErrors() throws {
        let s = try split()
        var a = try run("als-r", s, factors: 8)
        let b = try run("pop-r", s, factors: 0)
        // A second stage's run record carries its importances; the report shows them as shares.
        a.run.featureImportance = ["ease_rank": 300, "als_z": 100]
        let spec = SweepSpec(keys: ["factors", "reg"], values: [["4", "8"], ["0.01", "0.1"]], base: ["iters": "3"])
        let (sweep, _) = try Sweep.run(spec, data: s.train, dataPaths: [s.trainPath], fingerprint: try ModelStore.fingerprint(paths: [s.trainPath]),
                                       directory: dir + "/sweep", threads: 2)
        // A two-tower's losses (cross-entropy, ~5) get their own panel, counted in epochs.
        var tt = b
        tt.run.id = "tt-r"; tt.run.model = "two-tower"; tt.run.losses = [5.2, 4.8, 4.7]
        let html = try Report.html(runs: [a, b, tt], sweeps: [sweep], title: "test <report>")
        XCTAssertTrue(html.contains("two-tower: training loss by epoch"))
        // Self-contained: no script, nothing fetched.
        XCTAssertFalse(html.contains("<script"))
        XCTAssertFalse(html.contains("src="))
        XCTAssertFalse(html.contains("href="))
        XCTAssertTrue(html.contains("test &lt;report&gt;"), "titles are escaped")
        for needle in ["Metrics on the test set", "training loss by iteration", "Sweep sweep", "popularity decile", "als-r", "pop-r",
                       "Second-stage feature importance", "<td>ease_rank</td><td>75.0 %</td>",
                       "10000 resamples, seed 42 (the same as <code>foryou compare</code>",
                       "als: training loss by iteration", "share to the top 1 %", ">0.01%</text>"] {
            XCTAssertTrue(html.contains(needle), needle)
        }
        XCTAssertEqual(html.components(separatedBy: "<svg").count - 1, 4, "ALS and two-tower loss panels, heat map, decile bars")
        let r = try render(html, name: "report")
        XCTAssertEqual(r.console, [], "console messages")
        XCTAssertGreaterThan(r.inked, 0.02, "the screenshot is blank")
        XCTAssertGreaterThan(r.colours, 20)
        // The checks can fail: a page with a script error is caught, a blank page is blank.
        let broken = try render("<html><body><p>x</p><script>undefinedFunction()</script></body></html>", name: "broken", size: "400,300")
        XCTAssertFalse(broken.console.isEmpty)
        let blank = try render("<html><body></body></html>", name: "blank", size: "400,300")
        XCTAssertLessThan(blank.inked, 0.001)
    }
}
