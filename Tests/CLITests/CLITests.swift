import XCTest
import Platform
import Foundation
import TestSupport
import LinearAlgebra
import Artifacts

final class CLITests: XCTestCase {
    var dir = ""
    override func setUp() { dir = Fixtures.tempDir("cli") }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func json(_ s: String) throws -> [String: Any] {
        let line = s.split(separator: "\n").last.map(String.init) ?? ""
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], s)
    }

    func testHelpNamesTheCommands() throws {
        let r = try CLIRunner.run(["--help"])
        XCTAssertEqual(r.status, 0)
        for c in ["train", "score-all", "evaluate", "recommend", "similar", "synth", "split"] {
            XCTAssertTrue(r.stdout.contains(c), "help lacks \(c)")
        }
        let t = try CLIRunner.run(["train", "--help"])
        for flag in ["--train", "--format", "--model", "--factors", "--reg", "--iters", "--alpha", "--confidence",
                     "--solver", "--threads", "--out"] {
            XCTAssertTrue(t.stdout.contains(flag), "train --help lacks \(flag)")
        }
    }

    func testBadInputStopsWithFileAndLine() throws {
        let bad = dir + "/bad.tsv"
        Fixtures.write("1\t2\t1\n1\t3\tlots\n", to: bad)
        let r = try CLIRunner.run(["train", "--train", bad, "--out", dir + "/m"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("\(bad):2: non-numeric weight 'lots'"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/m"))
        let flags = try CLIRunner.run(["train", "--train", bad, "--factors", "0"])
        XCTAssertNotEqual(flags.status, 0)
        XCTAssertTrue(flags.stderr.contains("--factors must be positive"), flags.stderr)
    }

    func testSynthSplitTrainEvaluateScoreAll() throws {
        XCTAssertEqual(try CLIRunner.run(["synth", "--out", dir + "/all.tsv", "--users", "400", "--items", "300",
                                          "--interactions", "12000", "--topics", "6"]).status, 0)
        XCTAssertEqual(try CLIRunner.run(["split", "--input", dir + "/all.tsv", "--strategy", "chrono",
                                          "--fraction", "0.2", "--out-dir", dir]).status, 0)
        let als = try CLIRunner.run(["train", "--train", dir + "/train.tsv", "--factors", "16", "--iters", "6",
                                     "--out", dir + "/als"])
        XCTAssertEqual(als.status, 0, als.stderr)
        XCTAssertTrue(als.stderr.contains("iteration 6/6"), als.stderr)
        XCTAssertTrue(als.stderr.contains("ETA"), als.stderr)
        XCTAssertEqual(try CLIRunner.run(["train", "--train", dir + "/train.tsv", "--model", "popularity",
                                          "--out", dir + "/pop"]).status, 0)
        let e1 = try json(CLIRunner.run(["evaluate", "--model", dir + "/als", "--test", dir + "/test.tsv", "--json"]).stdout)
        let e2 = try json(CLIRunner.run(["evaluate", "--model", dir + "/pop", "--test", dir + "/test.tsv", "--json"]).stdout)
        // The planted taste structure is learnable: ALS clearly beats popularity.
        XCTAssertGreaterThan(e1["ndcg"] as! Double, 1.3 * (e2["ndcg"] as! Double))
        let s = try CLIRunner.run(["score-all", "--model", dir + "/als", "--top", "7", "--out", dir + "/recs.tsv"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let lines = try String(contentsOfFile: dir + "/recs.tsv", encoding: .utf8).split(separator: "\n")
        let users = Set(lines.map { $0.split(separator: "\t")[0] })
        XCTAssertEqual(lines.count, 7 * users.count)
        let rec = try CLIRunner.run(["recommend", "--model", dir + "/als", "--user", "3", "--top", "4"])
        XCTAssertEqual(rec.stdout.split(separator: "\n").count, 4)
        XCTAssertEqual(try CLIRunner.run(["similar", "--model", dir + "/als", "--item", "5", "--top", "3"])
            .stdout.split(separator: "\n").count, 3)
        let unknown = try CLIRunner.run(["recommend", "--model", dir + "/als", "--user", "nobody"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("unknown user 'nobody'"), unknown.stderr)
    }

    /// `sweep --model all`: every family and the second stage on one carve, the best on
    /// validation chosen, then (and only then) the test; --test-all reports the others.
    func testSweepAllChoosesOnValidationAlone() throws {
        XCTAssertEqual(try CLIRunner.run(["synth", "--out", dir + "/all.tsv", "--users", "300", "--items", "200",
                                          "--interactions", "9000", "--topics", "6"]).status, 0)
        XCTAssertEqual(try CLIRunner.run(["split", "--input", dir + "/all.tsv", "--strategy", "random",
                                          "--fraction", "0.2", "--out-dir", dir]).status, 0)
        let r = try CLIRunner.run(["sweep", "--model", "all", "--train", dir + "/train.tsv", "--test", dir + "/test.tsv",
                                   "--validation", "random", "--validation-fraction", "0.2", "--json", "--test-all",
                                   "--out", dir + "/sweep", "--models", dir + "/models"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let out = try json(r.stdout)
        let families = try XCTUnwrap(out["families"] as? [[String: Any]])
        XCTAssertEqual(families.map { $0["family"] as! String }, ["als", "ease", "two-tower"])
        let rerank = try XCTUnwrap(out["rerank"] as? [String: Any])
        func val(_ d: [String: Any]) -> Double { (d["validation"] as! [String: Double])["ndcg@10"]! }
        let best = max(families.map(val).max()!, val(rerank))
        let chosen = try XCTUnwrap(out["chosen"] as? [String: Any])
        XCTAssertEqual(val(chosen), best, accuracy: 1e-12, "the choice is the best on validation")
        XCTAssertEqual((out["validation"] as? [String: String])?["validation"], "random")
        // The chosen run is on disk with its test evaluation; the others' test figures are reported.
        let run = try ModelStore.readRun(try XCTUnwrap(out["run"] as? String))
        XCTAssertEqual(run.model, chosen["family"] as? String)
        XCTAssertNotNil(run.evaluation)
        XCTAssertTrue(families.allSatisfy { ($0["test"] as? [String: Double])?["ndcg"] != nil }, "\(families)")
        XCTAssertNotNil((out["test"] as? [String: Double])?["ndcg"])
        XCTAssertFalse((rerank["importance"] as? [String: Double] ?? [:]).isEmpty)

        // A rerun of a finished sweep reuses the run it recorded instead of adding a duplicate.
        let args = ["sweep", "--model", "als", "--train", dir + "/train.tsv", "--test", dir + "/test.tsv", "--grid", "factors=4,8",
                    "--out", dir + "/sweep-als", "--models", dir + "/models-als"]
        let first = try CLIRunner.run(args), again = try CLIRunner.run(args)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("reusing it"), again.stderr)
        let runs = try FileManager.default.contentsOfDirectory(atPath: dir + "/models-als")
            .filter { FileManager.default.fileExists(atPath: dir + "/models-als/" + $0 + "/run.json") }
        XCTAssertEqual(runs.count, 1, "\(runs)")
        func line(_ s: String, _ prefix: String) -> String? { s.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init) }
        XCTAssertEqual(line(first.stdout, "test (chosen"), line(again.stdout, "test (chosen"))
        XCTAssertEqual(line(first.stdout, "best run:"), line(again.stdout, "best run:"))
    }

    func testCompareRunsAndReplicates() throws {
        XCTAssertEqual(try CLIRunner.run(["synth", "--out", dir + "/all.tsv", "--users", "300", "--items", "200",
                                          "--interactions", "9000", "--topics", "6"]).status, 0)
        XCTAssertEqual(try CLIRunner.run(["split", "--input", dir + "/all.tsv", "--strategy", "random",
                                          "--fraction", "0.2", "--out-dir", dir]).status, 0)
        for (name, factors, seed) in [("a1", 16, 1), ("a2", 16, 2), ("b1", 16, 3), ("b2", 16, 4), ("c1", 8, 5)] {
            let t = try CLIRunner.run(["train", "--train", dir + "/train.tsv", "--test", dir + "/test.tsv", "--factors", "\(factors)",
                                       "--iters", "5", "--seed", "\(seed)", "--out", dir + "/\(name)"])
            XCTAssertEqual(t.status, 0, t.stderr)
        }
        let one = try CLIRunner.run(["compare", dir + "/a1", dir + "/b1", "--resamples", "1000"])
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertTrue(one.stdout.contains("ndcg@10") && one.stdout.contains("overlap@10"), one.stdout)
        XCTAssertTrue(one.stdout.contains("differ only in seed"), one.stdout)
        // --json carries what the table shows: the same deltas, intervals and p-values, and the notes.
        let oneJSON = try CLIRunner.run(["compare", dir + "/a1", dir + "/b1", "--resamples", "1000", "--json"])
        XCTAssertEqual(oneJSON.status, 0, oneJSON.stderr)
        let obj = try json(oneJSON.stdout)
        let metrics = try XCTUnwrap(obj["metrics"] as? [[String: Any]])
        let ndcg = try XCTUnwrap(metrics.first { $0["name"] as? String == "ndcg@10" })
        let row = try XCTUnwrap(one.stdout.split(separator: "\n").first { $0.hasPrefix("ndcg@10") }).split(separator: " ").filter { !$0.isEmpty }
        XCTAssertEqual(String(format: "%+.4f", ndcg["delta"] as! Double), String(row[3]))
        XCTAssertEqual(String(format: "[%+.4f,", ndcg["low"] as! Double), String(row[4]))
        XCTAssertEqual(String(format: "%.4f", ndcg["p"] as! Double), String(row[6]))
        XCTAssertTrue((obj["notes"] as? [String])?.contains { $0.contains("differ only in seed") } == true, oneJSON.stdout)
        XCTAssertEqual(((obj["a"] as? [String: Any])?["runs"] as? [[String: Any]])?.first?["directory"] as? String, dir + "/a1")
        let other = try CLIRunner.run(["compare", dir + "/a1", dir + "/c1", "--resamples", "1000"])
        XCTAssertEqual(other.status, 0, other.stderr)
        XCTAssertFalse(other.stdout.contains("differ only in seed") || other.stdout.contains("replicates"), other.stdout)
        let reps = try CLIRunner.run(["compare", "\(dir)/a1,\(dir)/a2", "\(dir)/b1,\(dir)/b2", "--resamples", "1000", "--metric", "ndcg"])
        XCTAssertEqual(reps.status, 0, reps.stderr)
        XCTAssertTrue(reps.stdout.contains("A = 2 replicates of als") && reps.stdout.contains("cover training randomness"), reps.stdout)
        let mixed = try CLIRunner.run(["compare", "\(dir)/a1,\(dir)/c1", dir + "/b1"])
        XCTAssertNotEqual(mixed.status, 0)
        XCTAssertTrue(mixed.stderr.contains("not replicates") && mixed.stderr.contains("factors: 16 vs 8"), mixed.stderr)
        let badMetric = try CLIRunner.run(["compare", dir + "/a1", dir + "/b1", "--metric", "auc"])
        XCTAssertNotEqual(badMetric.status, 0)
        XCTAssertTrue(badMetric.stderr.contains("unknown metric 'auc'"), badMetric.stderr)
    }

    func testTwoTowerAndBlendTrainWithProgressEarlyStoppingAndBeatPopularity() throws {
        XCTAssertEqual(try CLIRunner.run(["synth", "--out", dir + "/all.tsv", "--users", "400", "--items", "300",
                                          "--interactions", "12000", "--topics", "6"]).status, 0)
        XCTAssertEqual(try CLIRunner.run(["split", "--input", dir + "/all.tsv", "--strategy", "random",
                                          "--fraction", "0.2", "--out-dir", dir]).status, 0)
        // Features: the item id modulo 6 is no topic, so they are noise; the model must cope.
        Fixtures.write((0..<300).map { "\($0)\tbucket\($0 % 7)" }.joined(separator: "\n") + "\n", to: dir + "/features.tsv")
        let tt = try CLIRunner.run(["train", "--model", "two-tower", "--train", dir + "/train.tsv", "--test", dir + "/test.tsv",
                                    "--features", dir + "/features.tsv", "--dim", "16", "--hidden", "16", "--batch", "256",
                                    "--epochs", "5", "--history", "10", "--temperature", "0.1", "--out", dir + "/tt"])
        XCTAssertEqual(tt.status, 0, tt.stderr)
        XCTAssertTrue(tt.stderr.contains("epoch 1/5") && tt.stderr.contains("val NDCG@10") && tt.stderr.contains("ETA"), tt.stderr)
        XCTAssertTrue(tt.stderr.contains("features: ") && tt.stderr.contains("covers"), tt.stderr)
        _ = try CLIRunner.run(["train", "--train", dir + "/train.tsv", "--model", "popularity", "--out", dir + "/pop"])
        let eTT = try json(CLIRunner.run(["evaluate", "--model", dir + "/tt", "--test", dir + "/test.tsv", "--json"]).stdout)
        let ePop = try json(CLIRunner.run(["evaluate", "--model", dir + "/pop", "--test", dir + "/test.tsv", "--json"]).stdout)
        XCTAssertGreaterThan(eTT["ndcg"] as! Double, 1.2 * (ePop["ndcg"] as! Double))
        let run = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tt/run.json"))) as? [String: Any]
        // What training measured is kept apart from what it was given.
        XCTAssertNotNil((run?["results"] as? [String: Any])?["validation_ndcg"])
        XCTAssertNotNil((run?["results"] as? [String: Any])?["examples_per_s"])
        XCTAssertNil((run?["params"] as? [String: Any])?["validation_ndcg"])
        XCTAssertNil((run?["params"] as? [String: Any])?["examples_per_s"])
        XCTAssertEqual((run?["params"] as? [String: Any])?["dim"] as? String, "16")
        // The served model was refit on all of train for the epoch count validation chose.
        let refitEpochs = Int((run?["results"] as? [String: Any])?["refit_epochs"] as? String ?? "") ?? 0
        XCTAssertTrue((1...5).contains(refitEpochs), "\(String(describing: run))")
        XCTAssertTrue(tt.stderr.contains("refit epoch \(refitEpochs)/\(refitEpochs)"), tt.stderr)
        // No validation split (the throughput benchmark's setting): one epoch, no curve, a run record.
        let plain = try CLIRunner.run(["train", "--model", "two-tower", "--train", dir + "/train.tsv", "--dim", "16", "--hidden", "16",
                                       "--batch", "256", "--epochs", "1", "--validation-fraction", "0", "--out", dir + "/tt0"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stderr.contains("epoch 1/1") && !plain.stderr.contains("refit"), plain.stderr)
        let run0 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tt0/run.json"))) as? [String: Any]
        XCTAssertEqual((run0?["results"] as? [String: Any])?["refit_epochs"] as? String, "0")

        let blend = try CLIRunner.run(["train", "--model", "blend", "--train", dir + "/train.tsv", "--dim", "16", "--hidden", "16",
                                       "--batch", "256", "--epochs", "3", "--history", "10", "--factors", "16", "--iters", "6", "--out", dir + "/blend"])
        XCTAssertEqual(blend.status, 0, blend.stderr)
        XCTAssertTrue(blend.stderr.contains("blend: lambda 0.5"), blend.stderr)
        let eBlend = try json(CLIRunner.run(["evaluate", "--model", dir + "/blend", "--test", dir + "/test.tsv", "--json"]).stdout)
        XCTAssertGreaterThan(eBlend["ndcg"] as! Double, 1.2 * (ePop["ndcg"] as! Double))
        let coldALS = try CLIRunner.run(["evaluate", "--model", dir + "/pop", "--test", dir + "/test.tsv", "--cold-items",
                                         "--features", dir + "/features.tsv"])
        XCTAssertNotEqual(coldALS.status, 0)
        XCTAssertTrue(coldALS.stderr.contains("use a two-tower model"), coldALS.stderr)
        // A test of items the model never saw, without --cold-items: an error saying what to do, not zeros.
        Fixtures.write("0\t100000\t1\n1\t100001\t1\n", to: dir + "/cold.tsv")
        let zeros = try CLIRunner.run(["evaluate", "--model", dir + "/pop", "--test", dir + "/cold.tsv"])
        XCTAssertNotEqual(zeros.status, 0)
        XCTAssertTrue(zeros.stderr.contains("none of the 2 test items") && zeros.stderr.contains("--cold-items"), zeros.stderr)
        // A run id under --models works where a model directory does, and says what it resolved to.
        let byId = try CLIRunner.run(["evaluate", "--model", "pop", "--models", dir, "--test", dir + "/test.tsv", "--json"])
        XCTAssertEqual(byId.status, 0, byId.stderr)
        XCTAssertEqual(try json(byId.stdout)["ndcg"] as? Double, ePop["ndcg"] as? Double)
        XCTAssertTrue(byId.stderr.contains("pop -> \(dir)/pop"), byId.stderr)
        let noFeatures = try CLIRunner.run(["evaluate", "--model", dir + "/tt", "--test", dir + "/test.tsv", "--cold-items"])
        XCTAssertNotEqual(noFeatures.status, 0)
        XCTAssertTrue(noFeatures.stderr.contains("--features"), noFeatures.stderr)
        Fixtures.write("12\tdrama\nno tab on this line\n", to: dir + "/bad-features.tsv")
        let bad = try CLIRunner.run(["train", "--model", "two-tower", "--train", dir + "/train.tsv", "--features",
                                     dir + "/bad-features.tsv", "--out", dir + "/x"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("bad-features.tsv:2"), bad.stderr)
    }

    /// `foryou evaluate` must agree to 1e-6 with the shared referee scoring the same lists.
    func testEvaluateAgreesWithReferee() throws {
        guard let shared = Fixtures.shared else { throw XCTSkip("../shared is not beside the repository") }
        for (split, conf) in [("movielens", "binary"), ("lastfm", "log")] {
            let model = dir + "/\(split)"
            let t = try CLIRunner.run(["train", "--train", "\(shared)/splits/\(split)_train.tsv", "--confidence", conf,
                                       "--factors", "32", "--iters", "4", "--out", model])
            XCTAssertEqual(t.status, 0, t.stderr)
            let ours = try json(CLIRunner.run(["evaluate", "--model", model, "--test",
                                               "\(shared)/splits/\(split)_test.tsv", "--json"]).stdout)
            XCTAssertEqual(try CLIRunner.run(["score-all", "--model", model, "--top", "10", "--out", dir + "/r.tsv"]).status, 0)
            let ref = try json(CLIRunner.python(["\(shared)/bench/implicit_ref.py", "score", split, dir + "/r.tsv"]))
            for key in ["precision", "recall", "ndcg", "map", "coverage"] {
                XCTAssertEqual(ours[key] as! Double, ref[key] as! Double, accuracy: 1e-6, "\(split) \(key)")
            }
            XCTAssertEqual(ours["n_test_users"] as? Int, ref["n_test_users"] as? Int)
            XCTAssertEqual(ref["train_item_recommended"] as? Int, 0)
            XCTAssertEqual(ref["duplicate"] as? Int, 0)
        }
    }

    /// EASE trained, stored, loaded and scored by foryou equals `ease_ref.py` (NumPy, float64) at
    /// the same lambda on MovieLens: the referee's NDCG to 1e-4; `similar` reads B's rows.
    func testEASEEqualsTheReferenceImplementation() throws {
        guard let shared = Fixtures.shared else { throw XCTSkip("../shared is not beside the repository") }
        let model = dir + "/ease"
        let t = try CLIRunner.run(["train", "--model", "ease", "--lambda", "200", "--confidence", "binary",
                                   "--train", "\(shared)/splits/movielens_train.tsv", "--out", model])
        XCTAssertEqual(t.status, 0, t.stderr)
        XCTAssertTrue(t.stderr.contains("ease: inverse (spotrf + spotri)"), t.stderr)
        XCTAssertEqual(try CLIRunner.run(["score-all", "--model", model, "--top", "10", "--out", dir + "/ease.tsv"]).status, 0)
        let ours = try json(CLIRunner.python(["\(shared)/bench/implicit_ref.py", "score", "movielens", dir + "/ease.tsv"]))
        let ref = try json(CLIRunner.python(["\(shared)/bench/ease_ref.py", "movielens", "--lam", "200"]))
        for key in ["ndcg", "recall", "precision", "map"] {
            XCTAssertEqual(ours[key] as! Double, ref[key] as! Double, accuracy: 1e-4, key)
        }
        XCTAssertEqual(ours["train_item_recommended"] as? Int, 0)
        let sim = try CLIRunner.run(["similar", "--model", model, "--item", "1", "--top", "3"])
        XCTAssertEqual(sim.status, 0, sim.stderr)
        XCTAssertEqual(sim.stdout.split(separator: "\n").count, 3)
        let refused = try CLIRunner.run(["train", "--model", "ease", "--ease-max-memory", "0.01",
                                         "--train", "\(shared)/splits/movielens_train.tsv", "--out", dir + "/too-big"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("5316 items"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/too-big"))
    }

    /// `scripts/make-features` leaves out tag rows whose (user, item) pair is a test pair.
    func testMakeFeaturesDropsTagsOfTestPairs() throws {
        let data = dir + "/data", splits = dir + "/splits", out = dir + "/features"
        try FileManager.default.createDirectory(atPath: data + "/movielens-latest-small", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: data + "/lastfm-hetrec2011-2k", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: splits, withIntermediateDirectories: true)
        Fixtures.write("movieId,title,genres\n10,Heat (1995),Action|Crime\n20,Up (2009),Animation\n", to: data + "/movielens-latest-small/movies.csv")
        Fixtures.write("userId,movieId,tag,timestamp\n1,10,leaked-tag,5\n2,10,kept-tag,6\n", to: data + "/movielens-latest-small/tags.csv")
        Fixtures.write("tagID\ttagValue\n7\tshoegaze\n8\tdream pop\n", to: data + "/lastfm-hetrec2011-2k/tags.dat")
        Fixtures.write("userID\tartistID\ttagID\tday\tmonth\tyear\n1\t50\t7\t1\t1\t2008\n2\t50\t8\t1\t1\t2008\n",
                       to: data + "/lastfm-hetrec2011-2k/user_taggedartists.dat")
        Fixtures.write("1\t10\t1\n", to: splits + "/movielens_test.tsv")
        Fixtures.write("1\t50\t1\n", to: splits + "/lastfm_test.tsv")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let r = CLIRunner.shell("python3 \(root)/scripts/make-features \(out) --data \(data) --splits \(splits) 2>&1")
        XCTAssertEqual(r.status, 0, r.stdout)
        let ml = try String(contentsOfFile: out + "/movielens.tsv", encoding: .utf8)
        XCTAssertTrue(ml.contains("kept-tag"), ml)
        XCTAssertFalse(ml.contains("leaked-tag"), ml)
        let lf = try String(contentsOfFile: out + "/lastfm.tsv", encoding: .utf8)
        XCTAssertTrue(lf.contains("dream pop"), lf)
        XCTAssertFalse(lf.contains("shoegaze"), lf)
        XCTAssertTrue(r.stdout.contains("1 tags.csv rows left out"), r.stdout)
    }

    func testWastefulKernelsAreReplacedByReexec() throws {
        let cpu = KernelSelection.level(ofFlags: KernelSelection.readCPUFlags())
        guard cpu > .sse else { throw XCTSkip("this CPU has no AVX: nothing better than SSE kernels") }
        // Make OpenBLAS load its Prescott (SSE3) kernels, as Debian's 0.3.21 does on some new Intel CPUs.
        let r = try CLIRunner.run(["blas-info", "--json", "--verbose"], env: ["OPENBLAS_CORETYPE": "Prescott"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let info = try json(r.stdout)
        let core = try XCTUnwrap(info["core"] as? String)
        XCTAssertEqual(KernelSelection.level(ofCore: core), cpu, "still on \(core): \(info)")
        XCTAssertTrue((info["note"] as? String ?? "").contains("re-executed"), "\(info)")
        // The escape hatch keeps whatever OpenBLAS chose.
        let kept = try json(CLIRunner.run(["blas-info", "--json"],
                                          env: ["OPENBLAS_CORETYPE": "Prescott", "FORYOU_BLAS_CORETYPE": "keep"]).stdout)
        XCTAssertEqual(kept["core"] as? String, "Prescott")
    }

    func testCtrlCStopsTrainingCleanlyAndKeepsTheModel() throws {
        XCTAssertEqual(try CLIRunner.run(["synth", "--out", dir + "/big.tsv", "--users", "20000", "--items", "4000",
                                          "--interactions", "400000"]).status, 0)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLIRunner.binary)
        p.arguments = ["train", "--train", dir + "/big.tsv", "--factors", "32", "--iters", "500", "--out", dir + "/m"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var seen = ""
        let deadline = Date().addingTimeInterval(120)
        while !seen.contains("iteration 1/500") && Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        XCTAssertTrue(seen.contains("iteration 1/500"), seen)
        kill(p.processIdentifier, SIGINT)
        let rest = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        seen += String(decoding: rest, as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, seen)
        XCTAssertTrue(seen.contains("interrupt"), seen)
        let run = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/m/run.json"))) as! [String: Any]
        XCTAssertTrue((run["outcome"] as! String).hasPrefix("interrupted after"), "\(run["outcome"]!)")
    }
}
