import ArgumentParser
import ForYou
import Foundation

struct MediaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "media", abstract: "Media helpers.",
                                                    subcommands: [DemoClips.self, LadderArgs.self])

    struct LadderArgs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ladder-args",
            abstract: "Print (as a JSON list) the ffmpeg arguments the transcode worker uses for a file (for baselines).")
        @Argument(help: "Input video.") var input: String
        @Option(help: "Output folder (r0, r1, ... are created in it).") var out: String
        func run() throws {
            let probe: Probe
            do { probe = try FFprobe.probe(input) } catch let e as MediaError { throw CLIError("media: \(e)") }
            for i in Transcoder.rungs(width: probe.width, height: probe.height).indices {
                try FileManager.default.createDirectory(atPath: out + "/r\(i)", withIntermediateDirectories: true)
            }
            let args = Transcoder.ladderArguments(input: input, probe: probe, outputDir: out)
            print(String(decoding: try JSONSerialization.data(withJSONObject: args), as: UTF8.self))
        }
    }

    struct DemoClips: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "demo-clips",
            abstract: "Generate test-source clips, transcode them, and point the catalog's videos at them in turn (playable demos).")
        @OptionGroup var data: DataDirOption
        @Option(help: "Clips to generate.") var clips = 6
        @Option(help: "Seconds per clip.") var seconds = 4
        @Option(help: "Clip size WIDTHxHEIGHT.") var size = "360x640"
        func run() throws {
            let n = try DemoMedia.attach(dataDir: data.dataDir, clips: clips, seconds: seconds, size: size) { Console.err($0) }
            print("demo media: \(n) catalog videos now stream one of \(clips) clips")
        }
    }
}
