import Foundation
import CandidateStore
import Media

/// `foryou worker transcode`: takes transcode jobs from the store's queue and turns each
/// upload into its HLS ladder under `DATA/media/<video>/<digest>/`. A claimed job is leased;
/// a worker that dies leaves it to be claimed again when the lease runs out (attempts are
/// counted); a job that fails `maxAttempts` times (a poison file) ends `failed` with ffmpeg's
/// reason, and so does its video. A video becomes `ready` only after every rendition and the
/// poster are in place (written to a temporary folder, then renamed).
public final class TranscodeWorker {
    public struct Config: Sendable {
        public var dataDir: String
        public var leaseSeconds: Int64 = 600
        public var maxAttempts = 3
        /// What a file may be at most (the server's upload limits; duration is `maxSeconds`).
        public var limits = MediaLimits()
        public var maxSeconds: Double {
            get { limits.maxSeconds }
            set { limits.maxSeconds = newValue }
        }
        public var preset = "veryfast"
        public init(dataDir: String) { self.dataDir = dataDir }
    }

    public struct Outcome: Sendable, Equatable {
        public var video: String
        public var status: TranscodeJob.Status
        public var attempt: Int
        public var seconds: Double
        public var renditions: Int
        public var error: String?
    }

    public let config: Config
    let store: any UploadStore
    let dir: DataDirectory

    /// `store`: where the job queue and catalog live (default: the data directory's SQLite
    /// file); uploads and media are files under the data directory either way.
    public init(config: Config, store: (any UploadStore)? = nil) throws {
        self.config = config
        dir = DataDirectory(config.dataDir)
        self.store = try store ?? dir.openStore()
    }

    /// Claims and runs one job; nil when the queue is empty.
    public func step() throws -> Outcome? {
        guard let job = try store.claimTranscodeJob(leaseSeconds: config.leaseSeconds, now: SQLiteFeedStore.now()) else { return nil }
        let t0 = Date()
        guard let upload = try store.upload(id: job.upload) else {
            _ = try store.failTranscode(job: job.id, error: "upload \(job.upload) is gone", permanent: true, maxAttempts: config.maxAttempts)
            return Outcome(video: job.video, status: .failed, attempt: job.attempts, seconds: 0, renditions: 0, error: "upload gone")
        }
        do {
            let probe = try FFprobe.probe(upload.path, limits: config.limits)
            let out = try Transcoder.run(input: upload.path, probe: probe, mediaDir: dir.media + "/" + job.video, preset: config.preset)
            let base = "/media/\(job.video)/\(out.digest)"
            try store.completeTranscode(job: job.id, video: job.video, streamURL: base + "/master.m3u8", posterURL: base + "/poster.jpg",
                                        durationMs: out.durationMs)
            return Outcome(video: job.video, status: .done, attempt: job.attempts, seconds: Date().timeIntervalSince(t0),
                           renditions: out.renditions, error: nil)
        } catch let e as MediaError {
            let permanent: Bool
            switch e {
            case .notVideo, .noVideoStream, .tooLong, .unsupportedContainer, .overLimit: permanent = true
            case .ffmpegFailed, .missingTool: permanent = false
            }
            let s = try store.failTranscode(job: job.id, error: e.description, permanent: permanent, maxAttempts: config.maxAttempts)
            return Outcome(video: job.video, status: s, attempt: job.attempts, seconds: Date().timeIntervalSince(t0), renditions: 0,
                           error: e.description)
        }
    }
}
