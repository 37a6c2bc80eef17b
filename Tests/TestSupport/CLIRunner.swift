import Foundation

/// Runs the built `foryou` binary as a real process.
public enum CLIRunner {
    public struct Result {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    public static var binary: String {
        let besideTests = (ProcessInfo.processInfo.arguments[0] as NSString).deletingLastPathComponent + "/foryou"
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return Fixtures.repoRoot + "/.build/debug/foryou"
    }

    @discardableResult
    public static func run(_ args: [String], env: [String: String] = [:], cwd: String? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Drain both pipes concurrently so a chatty process never blocks.
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    final class DataBox: @unchecked Sendable { var data = Data() }

    /// Runs a shell command line with popen (safe from async tests, where Foundation's
    /// `Process.waitUntilExit` can wait forever once the command left a daemon behind);
    /// returns its exit status and stdout.
    public static func shell(_ command: String) -> (status: Int32, stdout: String) {
        guard let f = popen(command, "r") else { return (-1, "") }
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        let status = pclose(f)
        return ((status >> 8) & 0xff, String(decoding: out, as: UTF8.self))
    }

    /// Runs a command and returns its stdout, failing loudly on a non-zero exit.
    public static func python(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "python", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: String(decoding: e, as: UTF8.self)])
        }
        return String(decoding: o, as: UTF8.self)
    }
}

extension CLIRunner {
    /// Starts `foryou ARGS` as a long-running process and waits (up to 60 s) until its stderr
    /// matches `ready` (a regular expression); returns the process, the stderr read so far and
    /// the match. Stderr keeps being drained afterwards so the process never blocks on it.
    public static func start(_ args: [String], ready: String) throws -> (process: Process, stderr: String, match: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var text = ""
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let r = text.range(of: ready, options: .regularExpression) {
                let handle = err.fileHandleForReading
                DispatchQueue.global().async { while !handle.availableData.isEmpty {} }
                return (p, text, String(text[r]))
            }
        }
        if p.isRunning { p.terminate() }
        throw NSError(domain: "foryou", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(args.first ?? "") did not start: \(text)"])
    }
}
