// swift-tools-version:6.0
import PackageDescription

// The data path is visible in the targets: Interactions -> Rankers -> Scoring -> Evaluation,
// with Artifacts persisting models; LinearAlgebra is the only Swift code that calls C BLAS/LAPACKE.
// Only the numeric kernels (no I/O, no parsing: they compute on arrays other modules built) take
// `release` (-Ounchecked); every module that reads input (HTTP bodies, log records, import files,
// store rows, artifacts, media) has no swiftSettings, so checks stay on and an out-of-bounds read
// there traps instead of corrupting memory.
let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "foryou",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "ForYou", targets: ["ForYou"]),
        .executable(name: "foryou", targets: ["ForYouCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACKE", path: "Sources/CLAPACKE",
                       providers: [.apt(["liblapacke-dev"])]),
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka",
                       providers: [.apt(["librdkafka-dev"])]),
        // Element-wise kernels around the BLAS calls, built per instruction set, chosen at load.
        .target(name: "CVectorKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "LinearAlgebra", dependencies: ["CBLAS", "CLAPACKE", "CVectorKernels"], swiftSettings: release),
        .target(name: "Checksum", swiftSettings: release),
        .target(name: "EventLog", dependencies: ["Checksum"]),
        .target(name: "Interactions", dependencies: ["Checksum", "EventLog"]),
        // The networked event log: the same events on a Kafka topic (librdkafka).
        .target(name: "KafkaLog", dependencies: ["EventLog", "CRdKafka"]),
        .target(name: "CandidateStore", dependencies: ["Checksum", "Interactions", "Scoring",
                                                       .product(name: "GRDB", package: "GRDB.swift")]),
        // The networked candidate store: the same store behaviour on PostgreSQL (postgres-nio).
        .target(name: "PostgresStore", dependencies: ["CandidateStore", .product(name: "PostgresNIO", package: "postgres-nio")]),
        .target(name: "Workers", dependencies: ["Interactions", "EventLog", "KafkaLog", "Rankers", "Scoring", "Evaluation", "Artifacts",
                                                "CandidateStore", "Media"]),
        .target(name: "Workbench", dependencies: ["Checksum", "Artifacts", "Evaluation", "Rankers", "Scoring", "Workers",
                                                  "EventLog", "CandidateStore"]),
        .target(name: "Media", dependencies: ["Checksum"]),
        .target(name: "Simulator", dependencies: ["Interactions", "EventLog", "CandidateStore"]),
        .target(name: "World", dependencies: ["Interactions", "EventLog", "CandidateStore"]),
        .target(name: "FeedServer", dependencies: [
            "CandidateStore", "EventLog", "KafkaLog", "Media", "Checksum",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .target(name: "Rankers", dependencies: ["LinearAlgebra", "Interactions"], swiftSettings: release),
        .target(name: "Scoring", dependencies: ["LinearAlgebra", "Interactions", "Rankers"], swiftSettings: release),
        .target(name: "Evaluation", dependencies: ["Interactions", "Scoring"], swiftSettings: release),
        .target(name: "Artifacts", dependencies: ["Checksum", "LinearAlgebra", "Interactions", "Rankers"]),
        .target(name: "ForYou", dependencies: ["LinearAlgebra", "Interactions", "Rankers", "Scoring",
                                               "Evaluation", "Artifacts", "EventLog", "CandidateStore",
                                               "World", "Workers", "Workbench", "Simulator", "Media", "FeedServer",
                                               "PostgresStore", "KafkaLog"]),
        .executableTarget(name: "ForYouCLI", dependencies: [
            "ForYou", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "TestSupport", dependencies: ["ForYou"], path: "Tests/TestSupport"),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra", "TestSupport"]),
        .testTarget(name: "InteractionsTests", dependencies: ["Interactions", "TestSupport"]),
        .testTarget(name: "RankersTests", dependencies: ["Rankers", "TestSupport"]),
        .testTarget(name: "ScoringTests", dependencies: ["Scoring", "TestSupport"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "TestSupport"]),
        .testTarget(name: "WorkbenchTests", dependencies: ["Workbench", "TestSupport"]),
        .testTarget(name: "ArtifactsTests", dependencies: ["Artifacts", "TestSupport"]),
        .testTarget(name: "EventLogTests", dependencies: ["EventLog", "KafkaLog", "TestSupport"]),
        .testTarget(name: "CandidateStoreTests", dependencies: ["CandidateStore", "PostgresStore", "TestSupport"]),
        .testTarget(name: "FeedServerTests", dependencies: ["FeedServer", "PostgresStore", "KafkaLog", "TestSupport",
                                                         .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "WorkersTests", dependencies: ["Workers", "World", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "ForYouCLI", "ForYou"]),
    ],
    swiftLanguageModes: [.v5]
)
