import Foundation
import CandidateStore
import Media

/// Playable media for a generated world: a few ffmpeg test-source clips (each a different
/// pattern and tone), transcoded to ladders like any upload, and the catalog's videos pointed at
/// them in turn, so a demo feed (or a browser test) plays real HLS.
public enum DemoMedia {
    static let patterns = ["testsrc2", "smptebars", "rgbtestsrc", "testsrc", "smptehdbars", "yuvtestsrc"]

    /// Returns how many catalog videos now have a playable stream.
    @discardableResult
    public static func attach(dataDir: String, clips: Int = 6, seconds: Int = 4, size: String = "360x640",
                              progress: (String) -> Void = { _ in }) throws -> Int {
        let dir = DataDirectory(dataDir)
        let store = try dir.openStore()
        let work = dir.root + "/demo-clips"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        var ladders: [(stream: String, poster: String, durationMs: Int)] = []
        for k in 0..<max(1, clips) {
            let src = work + "/clip\(k).mp4"
            let pattern = patterns[k % patterns.count]
            let (status, _, err) = try Tool.run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", "\(pattern)=size=\(size):rate=30",
                                                            "-f", "lavfi", "-i", "sine=frequency=\(330 + 55 * k)", "-t", "\(seconds)",
                                                            "-vf", "hue=h=\(k * 47 % 360)", "-pix_fmt", "yuv420p", "-shortest", src])
            guard status == 0 else { throw MediaError.ffmpegFailed(Tool.lastLine(err)) }
            let probe = try FFprobe.probe(src)
            let out = try Transcoder.run(input: src, probe: probe, mediaDir: dir.media + "/demo-\(k)")
            ladders.append(("/media/demo-\(k)/\(out.digest)/master.m3u8", "/media/demo-\(k)/\(out.digest)/poster.jpg", out.durationMs))
            progress("demo media: clip \(k + 1)/\(clips) (\(pattern)) -> \(out.renditions) renditions")
        }
        var videos = try store.videos().filter { $0.status == .ready }.sorted { $0.id.localizedStandardCompare($1.id) == .orderedAscending }
        for i in videos.indices {
            let l = ladders[i % ladders.count]
            videos[i].streamURL = l.stream
            videos[i].thumbnailURL = l.poster
            videos[i].durationMs = l.durationMs
        }
        try store.upsertVideos(videos)
        return videos.count
    }
}
