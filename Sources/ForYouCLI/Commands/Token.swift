import ArgumentParser
import ForYou
import Foundation

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Issue a bearer token for a user (HMAC-SHA256, signed with the data directory's key).")

    @Option(help: "User id the token speaks for.") var user: String?
    @Option(name: .customLong("users-from"), help: "Issue one per line of this file (user ids) instead; prints user<TAB>token lines.")
    var usersFrom: String?
    @Option(help: "Lifetime: 90s, 30m, 24h, 7d.") var ttl = "24h"
    @OptionGroup var data: DataDirOption

    /// Longest lifetime a token may have (ten years): keeps `now + ttl` far from overflow.
    static let maxSeconds: Int64 = 3650 * 86_400

    /// "90s", "30m", "24h", "7d" or plain seconds; an error names the value when it is not one,
    /// or is longer than ten years (checked arithmetic: never a wrapped product).
    static func seconds(_ s: String, option: String = "--ttl") throws -> Int64 {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        var digits = Substring(s), unit: Int64 = 1
        if let u = s.last, let f = units[u] { digits = s.dropLast(); unit = f }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ValidationError("\(option) '\(s)' must look like 90s, 30m, 24h or 7d")
        }
        guard let n = Int64(digits), n > 0 else {
            throw ValidationError("\(option) '\(s)' must be a positive number of at most \(maxSeconds / 86_400) days")
        }
        let (total, overflow) = n.multipliedReportingOverflow(by: unit)
        guard !overflow, total <= maxSeconds else {
            throw ValidationError("\(option) '\(s)' is longer than the limit of \(maxSeconds / 86_400) days")
        }
        return total
    }

    func validate() throws {
        _ = try Token.seconds(ttl)
        guard (user == nil) != (usersFrom == nil) else { throw ValidationError("give exactly one of --user and --users-from") }
        guard user?.isEmpty != true else { throw ValidationError("--user must not be empty") }
    }

    func run() throws {
        let signer = TokenSigner(key: try data.directory.signingKey())
        let ttlSeconds = try Token.seconds(ttl)
        if let user {
            print(signer.issue(user: user, ttlSeconds: ttlSeconds))
            return
        }
        guard let text = try? String(contentsOfFile: usersFrom!, encoding: .utf8) else {
            throw CLIError("--users-from: cannot read \(usersFrom!)")
        }
        var out = ""
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let u = line.trimmingCharacters(in: .whitespaces)
            if u.isEmpty { continue }
            guard !u.contains("\t") else { throw CLIError("\(usersFrom!):\(n + 1): a user id cannot contain a tab") }
            out += u + "\t" + signer.issue(user: u, ttlSeconds: ttlSeconds) + "\n"
        }
        print(out, terminator: "")
    }
}
