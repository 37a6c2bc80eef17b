import Foundation
import CRdKafka

/// `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`: the brokers to bootstrap from and the event topic.
/// Anything else a production cluster needs (TLS, SASL, client id, ...) comes from a
/// librdkafka properties file named by `FORYOU_KAFKA_CONFIG` (`key=value` lines, `#` comments),
/// never from the URL, so credentials stay out of command lines and logs.
public struct KafkaLocation: Sendable, Equatable, CustomStringConvertible {
    public var brokers: String
    public var topic: String
    /// Extra librdkafka properties (from `FORYOU_KAFKA_CONFIG`).
    public var properties: [(String, String)] = []

    public static func == (a: KafkaLocation, b: KafkaLocation) -> Bool { a.brokers == b.brokers && a.topic == b.topic }

    public init(brokers: String, topic: String, properties: [(String, String)] = []) {
        self.brokers = brokers
        self.topic = topic
        self.properties = properties
    }

    /// Parses `kafka://b1:9092,b2:9092/topic`; `environment` supplies `FORYOU_KAFKA_CONFIG`.
    public init(url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard url.hasPrefix("kafka://") else { throw KafkaError.badLocation("'\(url)' is not kafka://BROKERS/TOPIC") }
        let rest = url.dropFirst("kafka://".count)
        guard let slash = rest.firstIndex(of: "/") else { throw KafkaError.badLocation("'\(url)' names no topic (kafka://BROKERS/TOPIC)") }
        let brokers = String(rest[..<slash]), topic = String(rest[rest.index(after: slash)...])
        guard !brokers.isEmpty, brokers.split(separator: ",").allSatisfy({ $0.contains(":") && !$0.hasSuffix(":") }) else {
            throw KafkaError.badLocation("'\(url)': brokers must be HOST:PORT[,HOST:PORT...]")
        }
        guard !topic.isEmpty, topic.count <= 249,
              topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }) else {
            throw KafkaError.badLocation("'\(url)': a topic is 1 to 249 of [A-Za-z0-9._-] (query options are not taken; use FORYOU_KAFKA_CONFIG)")
        }
        self.brokers = brokers
        self.topic = topic
        if let file = environment["FORYOU_KAFKA_CONFIG"], !file.isEmpty {
            properties = try Self.properties(file: file)
        }
    }

    public var description: String { "kafka://\(brokers)/\(topic)" }

    /// `key=value` lines; the error names the offending line.
    static func properties(file: String) throws -> [(String, String)] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw KafkaError.badLocation("FORYOU_KAFKA_CONFIG: cannot read \(file)")
        }
        var out: [(String, String)] = []
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "="), eq != line.startIndex else {
                throw KafkaError.badLocation("\(file):\(n + 1): expected key=value, got '\(line)'")
            }
            out.append((line[..<eq].trimmingCharacters(in: .whitespaces), line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)))
        }
        return out
    }
}

/// Event ids on a Kafka topic: the partition in the top 24 bits, the offset in the low 40. A
/// user's events go to one partition (they are keyed by user), so one user's ids increase with
/// time exactly as on the file log, and a list's `through_event` compares with them.
public enum KafkaEventID {
    public static let offsetBits: UInt64 = 40
    public static func make(partition: Int32, offset: Int64) -> UInt64 { UInt64(partition) << offsetBits | UInt64(offset) }
    public static func partition(_ id: UInt64) -> Int32 { Int32(id >> offsetBits) }
    public static func offset(_ id: UInt64) -> Int64 { Int64(id & ((1 << offsetBits) - 1)) }
}

public enum KafkaError: Error, CustomStringConvertible, Equatable {
    case badLocation(String)
    case client(String)
    case delivery(String)
    case fatal(String)
    case decode(String)

    public var description: String {
        switch self {
        case .badLocation(let m): "kafka location: \(m)"
        case .client(let m): "kafka: \(m)"
        case .delivery(let m): "kafka delivery failed: \(m)"
        case .fatal(let m): "kafka producer stopped: \(m)"
        case .decode(let m): "kafka record: \(m)"
        }
    }
}

/// A librdkafka configuration: the location's brokers, foryou's `settings`, then the location's
/// properties (an operator's file wins over foryou's defaults).
func makeConf(_ location: KafkaLocation, _ settings: [(String, String)]) throws -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    var err = [CChar](repeating: 0, count: 512)
    for (k, v) in [("bootstrap.servers", location.brokers)] + settings + location.properties {
        if rd_kafka_conf_set(conf, k, v, &err, err.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw KafkaError.client("\(k)=\(k.contains("password") || k.contains("secret") ? "***" : v): \(String(cString: err))")
        }
    }
    return conf
}

func newClient(_ type: rd_kafka_type_t, _ conf: OpaquePointer) throws -> OpaquePointer {
    var err = [CChar](repeating: 0, count: 512)
    guard let rk = rd_kafka_new(type, conf, &err, err.count) else {
        rd_kafka_conf_destroy(conf)
        throw KafkaError.client(String(cString: err))
    }
    return rk
}

func errorText(_ e: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(e)) }

/// The librdkafka the process loaded (`2.16.0`): the tansu broker needs 2.x newer than Debian's.
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// The topic's partition count (metadata round trip).
func partitionCount(_ rk: OpaquePointer, topic: String, timeoutMs: Int32 = 10_000) throws -> Int32 {
    let t = rd_kafka_topic_new(rk, topic, nil)
    defer { rd_kafka_topic_destroy(t) }
    var md: UnsafePointer<rd_kafka_metadata>?
    let r = rd_kafka_metadata(rk, 0, t, &md, timeoutMs)
    guard r == RD_KAFKA_RESP_ERR_NO_ERROR, let m = md else { throw KafkaError.client("metadata for \(topic): \(errorText(r))") }
    defer { rd_kafka_metadata_destroy(m) }
    guard m.pointee.topic_cnt == 1 else { throw KafkaError.client("metadata for \(topic): no such topic") }
    let tm = m.pointee.topics[0]
    guard tm.err == RD_KAFKA_RESP_ERR_NO_ERROR, tm.partition_cnt > 0 else {
        throw KafkaError.client("topic \(topic): \(tm.err == RD_KAFKA_RESP_ERR_NO_ERROR ? "no partitions" : errorText(tm.err))")
    }
    return tm.partition_cnt
}
