import Foundation
import ForYou

/// Shared fixtures for the test targets.
public enum Fixtures {
    /// A fresh temporary directory, removed by the caller when it wishes.
    public static func tempDir(_ name: String = "foryou-test") -> String {
        let dir = NSTemporaryDirectory() + "\(name)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    public static func write(_ text: String, to path: String) {
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }

    /// Random confidence matrix with every row and column non-empty.
    public static func randomConfidence(users: Int, items: Int, density: Double, seed: UInt64) -> CSR {
        var g = SeededGenerator(seed: seed)
        var r: [Int32] = [], c: [Int32] = [], v: [Float] = []
        for u in 0..<users {
            for i in 0..<items where g.unit() < density || i == u % items || u == i % users {
                r.append(Int32(u)); c.append(Int32(i)); v.append(1 + Float(g.unit() * 5))
            }
        }
        return CSR(rows: users, cols: items, rowIndex: r, colIndex: c, values: v)
    }

    public static func randomMatrix(rows: Int, cols: Int, seed: UInt64, scale: Float = 1) -> Matrix {
        var g = SeededGenerator(seed: seed)
        let m = Matrix(rows: rows, cols: cols)
        for i in 0..<m.count { m.storage[i] = Float(g.unit() * 2 - 1) * scale }
        return m
    }

    /// The repository root (Tests/TestSupport/../..).
    public static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// `../shared` beside the repository, when present.
    /// A loopback port nothing listens on (bound and released).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw NSError(domain: "foryou", code: 3, userInfo: [NSLocalizedDescriptionKey: "no free port"]) }
        return Int(UInt16(bigEndian: a.sin_port))
    }

    /// A fresh topic URL (`kafka://BROKERS/foryou-test-...`) on the throw-away broker `scripts/test`
    /// starts (`FORYOU_TEST_KAFKA` names it); nil when none is configured, a failure under CI.
    public static func kafkaTopic() throws -> String? {
        let env = ProcessInfo.processInfo.environment
        guard let brokers = env["FORYOU_TEST_KAFKA"], !brokers.isEmpty else {
            if env["CI"] != nil {
                throw NSError(domain: "foryou", code: 1, userInfo: [NSLocalizedDescriptionKey:
                    "FORYOU_TEST_KAFKA is not set: run the tests through scripts/test, which starts a broker"])
            }
            return nil
        }
        return "kafka://\(brokers)/foryou-test-" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
    }

    /// A fresh, empty PostgreSQL database on the throw-away cluster `scripts/test` starts
    /// (`FORYOU_TEST_POSTGRES` names its server URL); nil when no cluster is configured, which a CI
    /// run (CI set) treats as a failure rather than skipping the PostgreSQL half of a suite.
    /// Outside CI, without `FORYOU_TEST_POSTGRES`, returns nil and says on stderr which test ran
    /// without its PostgreSQL half, so a passing run cannot hide that it covered SQLite only.
    public static func postgresDatabase(_ test: String = #function, file: String = #fileID) throws -> String? {
        let env = ProcessInfo.processInfo.environment
        guard let server = env["FORYOU_TEST_POSTGRES"], !server.isEmpty, var url = URLComponents(string: server) else {
            if env["CI"] != nil {
                throw NSError(domain: "foryou", code: 1, userInfo: [NSLocalizedDescriptionKey:
                    "FORYOU_TEST_POSTGRES is not set: run the tests through scripts/test, which starts a PostgreSQL cluster"])
            }
            FileHandle.standardError.write(Data(("note: \(file) \(test): PostgreSQL part NOT run (FORYOU_TEST_POSTGRES is unset; "
                + "scripts/test starts a cluster); SQLite only\n").utf8))
            return nil
        }
        let name = "foryou_test_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["psql", server, "-v", "ON_ERROR_STOP=1", "-q", "-c", "CREATE DATABASE \(name)"]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "foryou", code: 2, userInfo: [NSLocalizedDescriptionKey:
                "cannot create a test database on \(server): \(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))"])
        }
        url.path = "/" + name
        return url.string
    }

    public static var shared: String? {
        let p = repoRoot + "/../shared"
        return FileManager.default.fileExists(atPath: p + "/splits") ? p : nil
    }
}
