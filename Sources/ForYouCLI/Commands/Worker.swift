import ArgumentParser
import ForYou
import Foundation


struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Long-running workers.", subcommands: [Rank.self, Transcode.self])

    struct Transcode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn uploads into HLS ladders (ffmpeg): claims jobs from the store's queue; crash-safe, retried.",
            discussion: """
            Each job: ffprobe, one ffmpeg run for every rendition of the ladder (240p 300k to 1080p \
            5M, never above the source), fMP4 segments of ~2 s with keyframes on their boundaries, \
            a master playlist and a poster, written to a temporary folder and renamed to \
            DATA/media/<video>/<digest>/; then the video is ready. A claimed job is leased for \
            --lease seconds: if this worker dies, another claims it when the lease runs out. After \
            --max-attempts failures (or at once for a file that is not a usable video) the video \
            ends failed with the reason. Ctrl-C stops after the current job.
            """)
        @OptionGroup var data: DataDirOption
        @OptionGroup var store: StoreOption
        @Option(help: "Seconds a claimed job stays leased to this worker.") var lease: Int64 = 600
        @Option(name: .customLong("max-attempts"), help: "Attempts before a job fails for good.") var maxAttempts = 3
        @Option(help: "x264 preset.") var preset = "veryfast"
        @OptionGroup var uploadLimits: UploadLimitsOption
        @Option(help: "Seconds to wait when the queue is empty.") var idle = 1.0
        @Flag(name: .customLong("until-empty"), help: "Exit when the queue is empty (batch use and tests).") var untilEmpty = false

        func run() throws {
            var c = TranscodeWorker.Config(dataDir: data.dataDir)
            c.leaseSeconds = lease
            c.maxAttempts = maxAttempts
            c.preset = preset
            c.limits = uploadLimits.limits
            let w = try TranscodeWorker(config: c, store: try store.open(dataDir: data.dataDir))
            Console.err("worker transcode: waiting for jobs in \(data.dataDir)")
            while !CLIContext.cancel.isCancelled {
                guard let o = try w.step() else {
                    if untilEmpty { break }
                    usleep(useconds_t(idle * 1e6))
                    continue
                }
                if o.status == .done {
                    Console.err(String(format: "worker transcode: %@ ready: %d renditions in %.1fs (attempt %d)", o.video, o.renditions,
                                       o.seconds, o.attempt))
                } else {
                    Console.err("worker transcode: \(o.video) attempt \(o.attempt) failed (\(o.status.rawValue)): \(o.error ?? "")")
                }
            }
        }
    }

    struct Rank: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Keep the live generation fresh: fold users with new events in and replace their lists.",
            discussion: """
            Reads the event log from its committed cursor in micro-batches; for each user with new \
            events, recomputes the user's vector from the whole history (ALS: an exact solve \
            against the live model's item factors; two-tower: the user tower over their recent \
            positives), rescores the full catalog and replaces the user's list; the lists and the \
            cursor commit in one transaction, so a crash loses and repeats nothing. Videos the live \
            model has no vector for are placed from their first interactions (ALS) or embedded from \
            their caption and tags as soon as they are in the catalog (two-tower). Needs a live \
            generation with a recorded model (foryou rescore, or score-all --into). Ctrl-C stops.
            """)

        @OptionGroup var data: DataDirOption
        @OptionGroup var backend: StoreOption
        @OptionGroup var events: EventsOption
        @Option(help: "Consumer name: the store cursor's name, and the Kafka consumer group (workers of one group share a topic's partitions).")
        var consumer = "ranker"
        @Option(help: "List length per user.") var top = 200
        @Option(help: "Events per micro-batch.") var batch = 2_000
        @Option(help: "Seconds to wait when there is nothing new.") var idle = 0.2
        @Option(help: "Stop after this many seconds (0 = run until Ctrl-C).") var seconds = 0.0
        @Option(name: .customLong("retrain-every"), help: "Full retrain + rescore on this period (e.g. 10m, 1h; off by default).")
        var retrainEvery: String?
        @Option(name: .customLong("retrain-after-events"), help: "Full retrain + rescore after this many new events.")
        var retrainAfterEvents: Int?
        @Option(help: "Where retrained models go.") var models = "models"
        @Option(help: "Generations kept after a retrain.") var keep = 3
        @Option(name: .customLong("retrain-model"), help: "Model of retrains: als, ease or two-tower (default settings).")
        var retrainModel: RescoreConfig.Model = .als
        @Option(help: "Factors of retrained models.") var factors = 64
        @Option(help: "Iterations of retrained models.") var iters = 15
        @Option(name: .customLong("metrics-port"), help: "Serve GET /metrics on 127.0.0.1 at this port (0 = off).")
        var metricsPort = 0
        @Flag(name: .customLong("until-caught-up"), help: "Exit once every event in the log has been applied (for batch use and tests).")
        var untilCaughtUp = false
        @OptionGroup var mapping: MappingOptions

        func validate() throws {
            guard top > 0, batch > 0, idle > 0, seconds >= 0 else { throw ValidationError("--top, --batch, --idle must be positive") }
            if let r = retrainEvery { _ = try Token.seconds(r, option: "--retrain-every") }
            if let n = retrainAfterEvents, n < 1 { throw ValidationError("--retrain-after-events must be >= 1") }
            guard keep >= 1 else { throw ValidationError("--keep must be >= 1") }
        }

        func run() throws {
            var c = RankingWorker.Config(dataDir: data.dataDir)
            c.top = top
            c.batch = batch
            c.consumer = consumer
            switch try events.location(dataDir: data.dataDir) {
            case .file(let dir): c.eventsDir = dir
            case .kafka(let k): c.kafka = k
            }
            let worker: RankingWorker
            let candidates = try backend.open(dataDir: data.dataDir)
            do { worker = try RankingWorker(config: c, store: candidates) } catch let e as EventLogError {
                throw CLIError("\(e)")
            } catch let e as KafkaError { throw CLIError("worker rank: \(e)") }
            Console.err("worker rank: starting at event \(worker.nextEvent)")
            var loop = WorkerLoop()
            loop.seconds = seconds
            loop.idle = idle
            loop.untilCaughtUp = untilCaughtUp
            loop.metricsPort = metricsPort
            loop.schedule = RetrainSchedule(period: try retrainEvery.map { Double(try Token.seconds($0, option: "--retrain-every")) },
                                            afterEvents: retrainAfterEvents)
            if loop.schedule.period != nil || loop.schedule.afterEvents != nil {
                var job = RescoreConfig(dataDir: data.dataDir)
                job.kafka = c.kafka
                job.eventsDir = c.eventsDir
                job.store = candidates
                job.modelsDir = models
                job.keep = keep
                job.top = top
                job.mapping = mapping.mapping
                job.als = ALSConfig(factors: factors, regularization: 0.05, iterations: iters, solver: .cg)
                job.model = retrainModel
                loop.retrain = job
            }
            let summary = try loop.run(worker, cancel: CLIContext.cancel) { Console.err("worker rank: " + $0) }
            let events = summary.events, users = summary.lists
            Console.err("worker rank: stopped at event \(worker.nextEvent) (\(events) events, \(users) lists this run"
                        + (worker.fenced > 0 ? "; \(worker.fenced) batches dropped: another worker had moved the cursor)" : ")"))
        }
    }
}
