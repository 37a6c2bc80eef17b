import Foundation
import Checksum

public enum MediaError: Error, CustomStringConvertible, Equatable {
    case notVideo(String)
    case noVideoStream
    case tooLong(seconds: Double, limit: Double)
    case ffmpegFailed(String)
    case missingTool(String)
    /// Not one of the containers accepted (MP4/QuickTime, Matroska/WebM, MPEG-TS), by its bytes.
    case unsupportedContainer(String)
    /// Over a configured limit: which one, the file's value, the limit.
    case overLimit(name: String, value: Double, limit: Double)

    public var description: String {
        switch self {
        case .notVideo(let why): return "not a readable video file (\(why))"
        case .noVideoStream: return "the file has no video stream"
        case .tooLong(let s, let l): return String(format: "the video is %.1f s long; the limit is %.0f s", s, l)
        case .ffmpegFailed(let s): return "ffmpeg failed: \(s)"
        case .missingTool(let t): return "\(t) is not installed (Debian package ffmpeg)"
        case .unsupportedContainer(let why):
            return "not an accepted video container (MP4/QuickTime, Matroska/WebM or MPEG-TS): \(why)"
        case .overLimit(let name, let value, let limit):
            return String(format: "the video's %@ is %g; the limit is %g", name, value, limit)
        }
    }
}

/// What ffprobe says about an upload.
public struct Probe: Sendable, Equatable {
    public var durationMs: Int
    public var width: Int
    public var height: Int
    public var hasAudio: Bool
    /// The ffmpeg demuxer the bytes were recognised as (`Container.demuxer`).
    public var demuxer: String = Container.mp4.demuxer
    public var frameRate: Double = 0

    public init(durationMs: Int, width: Int, height: Int, hasAudio: Bool, demuxer: String = Container.mp4.demuxer,
                frameRate: Double = 0) {
        self.durationMs = durationMs
        self.width = width
        self.height = height
        self.hasAudio = hasAudio
        self.demuxer = demuxer
        self.frameRate = frameRate
    }
}

/// The containers an upload may be, recognised from its first bytes before any tool reads it.
/// ffprobe and ffmpeg are then run with that one demuxer forced and only the `file` protocol
/// allowed, so no playlist, concat list, image sequence or reference to another file or URL is
/// ever followed, whatever the bytes claim.
public enum Container: String, Sendable, CaseIterable {
    case mp4, matroska, mpegts

    /// The ffmpeg demuxer that reads it (`-f`).
    public var demuxer: String {
        switch self {
        case .mp4: return "mov"
        case .matroska: return "matroska"
        case .mpegts: return "mpegts"
        }
    }

    /// What `prefix` (the file's first bytes, 1 KiB is plenty) is, or nil.
    public static func sniff(_ prefix: [UInt8]) -> Container? {
        // ISO BMFF / QuickTime: a box size, then a top-level box type.
        if prefix.count >= 12 {
            let type = String(decoding: prefix[4..<8], as: UTF8.self)
            if ["ftyp", "moov", "mdat", "wide", "free", "skip"].contains(type) { return .mp4 }
        }
        // Matroska / WebM: the EBML magic.
        if prefix.count >= 4, prefix[0] == 0x1A, prefix[1] == 0x45, prefix[2] == 0xDF, prefix[3] == 0xA3 { return .matroska }
        // MPEG-TS: sync bytes every 188 bytes.
        if prefix.count >= 377, prefix[0] == 0x47, prefix[188] == 0x47, prefix[376] == 0x47 { return .mpegts }
        return nil
    }

    public static func sniff(path: String) throws -> Container {
        guard let h = FileHandle(forReadingAtPath: path) else { throw MediaError.notVideo("cannot read the file") }
        defer { try? h.close() }
        let prefix = [UInt8]((try? h.read(upToCount: 1024)) ?? Data())
        guard let c = sniff(prefix) else {
            let shown = prefix.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw MediaError.unsupportedContainer("its first bytes are \(shown.isEmpty ? "none" : shown)")
        }
        return c
    }

    /// Arguments placed before an input: the demuxer forced, only plain files readable.
    public func inputArguments(_ path: String) -> [String] {
        ["-protocol_whitelist", "file", "-f", demuxer, "-i", "file:" + path]
    }
}

/// What an upload may be at most (checked by the probe, before any decoding).
public struct MediaLimits: Sendable, Equatable {
    public var maxSeconds: Double = 180
    public var maxWidth = 4_096
    public var maxHeight = 4_096
    /// Pixels in one frame (4K UHD, either orientation).
    public var maxPixels = 3_840 * 2_160
    public var maxFrameRate: Double = 120
    public init() {}
}

public enum Tool {
    /// Runs a program; (status, stdout, stderr).
    public static func run(_ name: String, _ args: [String]) throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [name] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw MediaError.missingTool(name) }
        // Drain both pipes while the process runs.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errBox.data = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        if p.terminationStatus == 127 { throw MediaError.missingTool(name) }
        return (p.terminationStatus, o, String(decoding: errBox.data, as: UTF8.self))
    }

    public static func lastLine(_ s: String) -> String {
        s.split(separator: "\n").last.map { String($0.prefix(300)) } ?? "no message"
    }
}

public enum FFprobe {
    /// Duration and the first video stream's size; errors say why a file is not acceptable.
    public static func probe(_ path: String, maxSeconds: Double = 180) throws -> Probe {
        var limits = MediaLimits()
        limits.maxSeconds = maxSeconds
        return try probe(path, limits: limits)
    }

    /// The container is recognised from the bytes first (anything else is refused before a
    /// tool reads it); ffprobe then reads it with that demuxer only and no protocol but `file`.
    public static func probe(_ path: String, limits: MediaLimits) throws -> Probe {
        let container = try Container.sniff(path: path)
        let (status, out, err) = try Tool.run("ffprobe", ["-v", "error",
                                                          "-show_entries", "format=duration:stream=codec_type,width,height,avg_frame_rate,r_frame_rate",
                                                          "-of", "json"] + container.inputArguments(path))
        guard status == 0, let obj = try? JSONSerialization.jsonObject(with: out) as? [String: Any] else {
            throw MediaError.notVideo(Tool.lastLine(err).replacingOccurrences(of: "file:" + path + ": ", with: "")
                .replacingOccurrences(of: path + ": ", with: ""))
        }
        let streams = obj["streams"] as? [[String: Any]] ?? []
        guard let v = streams.first(where: { $0["codec_type"] as? String == "video" }),
              let w = v["width"] as? Int, let h = v["height"] as? Int, w > 0, h > 0 else { throw MediaError.noVideoStream }
        func rate(_ s: Any?) -> Double {
            guard let s = s as? String else { return 0 }
            let parts = s.split(separator: "/")
            guard let n = Double(parts.first ?? ""), n.isFinite else { return 0 }
            if parts.count == 2 { guard let d = Double(parts[1]), d > 0 else { return 0 }; return n / d }
            return n
        }
        // The average rate; r_frame_rate is a time-base guess (1000/1 and the like in variable-rate
        // files), used only when no average is known.
        let average = rate(v["avg_frame_rate"])
        let fps = average > 0 ? average : rate(v["r_frame_rate"])
        guard w <= limits.maxWidth else { throw MediaError.overLimit(name: "width", value: Double(w), limit: Double(limits.maxWidth)) }
        guard h <= limits.maxHeight else { throw MediaError.overLimit(name: "height", value: Double(h), limit: Double(limits.maxHeight)) }
        guard w * h <= limits.maxPixels else {
            throw MediaError.overLimit(name: "pixels per frame", value: Double(w * h), limit: Double(limits.maxPixels))
        }
        guard fps <= limits.maxFrameRate else { throw MediaError.overLimit(name: "frame rate", value: fps, limit: limits.maxFrameRate) }
        let duration = Double((obj["format"] as? [String: Any])?["duration"] as? String ?? "") ?? 0
        guard duration > 0, duration.isFinite else { throw MediaError.notVideo("no duration") }
        guard duration <= limits.maxSeconds else { throw MediaError.tooLong(seconds: duration, limit: limits.maxSeconds) }
        return Probe(durationMs: Int(duration * 1000), width: w, height: h,
                     hasAudio: streams.contains { $0["codec_type"] as? String == "audio" }, demuxer: container.demuxer,
                     frameRate: fps)
    }
}

/// An upload -> a vertical HLS ladder: fMP4 segments of ~2 s with keyframes on segment
/// boundaries, one rendition per rung not above the source's short side, a master playlist
/// (BANDWIDTH, RESOLUTION, CODECS), a poster. One ffmpeg run encodes every rendition (the
/// source is decoded once). Output goes to a temporary folder, then is renamed to a folder
/// named by the content's digest, so every URL under it is immutable.
public enum Transcoder {
    /// (short side in pixels, video bitrate in kbit/s)
    public static let ladder: [(Int, Int)] = [(240, 300), (360, 700), (480, 1_200), (720, 2_500), (1_080, 5_000)]

    /// The rungs for a source: those not above its short side (at least the smallest, at the
    /// source's own size when that is smaller still).
    public static func rungs(width: Int, height: Int) -> [(Int, Int)] {
        let short = min(width, height)
        let fit = ladder.filter { $0.0 <= short }
        return fit.isEmpty ? [(short - short % 2, ladder[0].1)] : fit
    }

    public struct Output: Sendable {
        /// Folder name under the video's media folder (the content digest).
        public var digest: String
        public var renditions: Int
        public var durationMs: Int
    }

    /// The ffmpeg arguments that encode the whole ladder of `input` into `outputDir/r<i>/`
    /// (the folders must exist), with the master playlist at `outputDir/master.m3u8` and the
    /// poster at `outputDir/poster.jpg`.
    public static func ladderArguments(input: String, probe: Probe, outputDir tmp: String, segmentSeconds: Int = 2,
                                       preset: String = "veryfast") -> [String] {
        let rungs = rungs(width: probe.width, height: probe.height)
        let vertical = probe.height >= probe.width
        // One more branch of the split makes the poster (a frame a second in, or mid-clip for
        // shorter ones, at the top rung's size), so the source is decoded once for everything.
        var filter = "[0:v]split=\(rungs.count + 1)" + rungs.indices.map { "[s\($0)]" }.joined() + "[sp];"
        filter += rungs.enumerated().map { i, r in
            "[s\(i)]scale=\(vertical ? "\(r.0):-2" : "-2:\(r.0)")[o\(i)]"
        }.joined(separator: ";")
        let at = min(1.0, Double(probe.durationMs) / 2000)
        let top = rungs.last!.0
        filter += String(format: ";[sp]select='gte(t\\,%.3f)',scale=%@[poster]", at, vertical ? "\(top):-2" : "-2:\(top)")
        // The demuxer the probe recognised, forced; no protocol but plain files (see `Container`).
        let container = Container.allCases.first { $0.demuxer == probe.demuxer } ?? .mp4
        var args = ["-y", "-v", "error"] + container.inputArguments(input) + ["-filter_complex", filter]
        for (i, r) in rungs.enumerated() {
            args += ["-map", "[o\(i)]", "-c:v:\(i)", "libx264", "-b:v:\(i)", "\(r.1)k", "-maxrate:v:\(i)", "\(r.1 * 107 / 100)k",
                     "-bufsize:v:\(i)", "\(r.1 * 2)k"]
            if probe.hasAudio { args += ["-map", "a:0", "-c:a:\(i)", "aac", "-b:a:\(i)", "96k"] }
        }
        // Keyframes exactly on segment boundaries, none in between from scene cuts.
        args += ["-preset", preset, "-pix_fmt", "yuv420p", "-profile:v", "main", "-sc_threshold", "0",
                 "-force_key_frames", "expr:gte(t,n_forced*\(segmentSeconds))",
                 "-f", "hls", "-hls_time", "\(segmentSeconds)", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
                 "-hls_flags", "independent_segments", "-master_pl_name", "master.m3u8",
                 "-var_stream_map", rungs.indices.map { probe.hasAudio ? "v:\($0),a:\($0)" : "v:\($0)" }.joined(separator: " "),
                 "-hls_fmp4_init_filename", "init.mp4",
                 "-hls_segment_filename", tmp + "/r%v/seg_%03d.m4s", tmp + "/r%v/index.m3u8"]
        args += ["-map", "[poster]", "-frames:v", "1", "-update", "1", tmp + "/poster.jpg"]
        return args
    }

    /// Transcodes `input` into `mediaDir/<digest>/`; `mediaDir` is the video's folder.
    public static func run(input: String, probe: Probe, mediaDir: String, segmentSeconds: Int = 2,
                           preset: String = "veryfast") throws -> Output {
        let fm = FileManager.default
        try fm.createDirectory(atPath: mediaDir, withIntermediateDirectories: true)
        // Leftovers of an attempt that died.
        for name in (try? fm.contentsOfDirectory(atPath: mediaDir)) ?? [] where name.hasPrefix(".tmp-") {
            try? fm.removeItem(atPath: mediaDir + "/" + name)
        }
        let tmp = mediaDir + "/.tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let rungs = rungs(width: probe.width, height: probe.height)
        let args = ladderArguments(input: input, probe: probe, outputDir: tmp, segmentSeconds: segmentSeconds, preset: preset)
        for i in rungs.indices { try fm.createDirectory(atPath: tmp + "/r\(i)", withIntermediateDirectories: true) }
        let (status, _, err) = try Tool.run("ffmpeg", args)
        guard status == 0 else {
            try? fm.removeItem(atPath: tmp)
            throw MediaError.ffmpegFailed(Tool.lastLine(err))
        }
        let digest = try contentDigest(tmp)
        let final = mediaDir + "/" + digest
        if fm.fileExists(atPath: final) { try fm.removeItem(atPath: tmp) } else { try fm.moveItem(atPath: tmp, toPath: final) }
        return Output(digest: digest, renditions: rungs.count, durationMs: probe.durationMs)
    }

    /// FNV-1a over every file's relative path and bytes, in path order (16 hex digits).
    static func contentDigest(_ dir: String) throws -> String {
        let fm = FileManager.default
        var files: [String] = []
        if let e = fm.enumerator(atPath: dir) {
            for case let p as String in e {
                var isDir: ObjCBool = false
                if fm.fileExists(atPath: dir + "/" + p, isDirectory: &isDir), !isDir.boolValue { files.append(p) }
            }
        }
        var h = FNV64()
        for f in files.sorted() {
            Array(f.utf8).withUnsafeBytes { h.update($0) }
            let d = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + f))
            d.withUnsafeBytes { h.update($0) }
        }
        return String(format: "%016llx", h.value)
    }
}
