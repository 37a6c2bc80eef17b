import ArgumentParser
import ForYou
import Foundation

/// What an upload may be at most: `serve` refuses more at upload (422) and `worker transcode`
/// probes again with the same limits, so give both the same values.
struct UploadLimitsOption: ParsableArguments {
    @Option(name: .customLong("max-upload-seconds"), help: "Longest video accepted (422 past it).") var maxUploadSeconds = 180.0
    @Option(name: .customLong("max-upload-width"), help: "Widest video accepted, in pixels (422 past it).") var maxUploadWidth = 4_096
    @Option(name: .customLong("max-upload-height"), help: "Tallest video accepted, in pixels (422 past it).") var maxUploadHeight = 4_096
    @Option(name: .customLong("max-upload-pixels"), help: "Most pixels per frame accepted (422 past it).") var maxUploadPixels = 3_840 * 2_160
    @Option(name: .customLong("max-upload-fps"), help: "Highest frame rate accepted (422 past it).") var maxUploadFps = 120.0

    func validate() throws {
        guard maxUploadSeconds > 0, maxUploadWidth > 0, maxUploadHeight > 0, maxUploadPixels > 0, maxUploadFps > 0 else {
            throw ValidationError("--max-upload-seconds, --max-upload-width, --max-upload-height, --max-upload-pixels and --max-upload-fps must be positive")
        }
    }

    var limits: MediaLimits {
        var l = MediaLimits()
        l.maxSeconds = maxUploadSeconds
        l.maxWidth = maxUploadWidth
        l.maxHeight = maxUploadHeight
        l.maxPixels = maxUploadPixels
        l.maxFrameRate = maxUploadFps
        return l
    }
}
