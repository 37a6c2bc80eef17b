// swift-tools-version:6.0
import PackageDescription

// The data path is visible in the targets: EventLog -> Interactions -> Rankers -> Scoring ->
// Evaluation, with Artifacts persisting models and Training running the one training pipeline;
// LinearAlgebra is the only Swift code that calls C BLAS/LAPACKE. That engine is a product of
// its own (`ForYouEngine`: no server, no database, no Kafka). The service side (stores, event
// log on Kafka, feed server, workers, workbench) sits on top as separate products.
//
// No target uses unsafe flags, so the package can be a versioned dependency: hot loops are
// bounds-check-free through buffer pointers, and the C kernels pick their instruction set per
// function (`__attribute__((target(...)))`). `scripts/check-layers` holds the graph to the rules
// in docs/architecture.md (declared = imported, forbidden edges).

let package = Package(
    name: "foryou",
    products: [
        // The engine: data, rankers, scoring, evaluation, artifacts, training, BLAS.
        .library(name: "ForYouEngine", targets: ["ForYouEngine"]),
        // The service side, each usable alone.
        .library(name: "ForYouStore", targets: ["CandidateStore"]),
        .library(name: "ForYouPostgres", targets: ["PostgresStore"]),
        .library(name: "ForYouKafka", targets: ["KafkaLog"]),
        .library(name: "ForYouServer", targets: ["FeedServer"]),
        .library(name: "ForYouWorkers", targets: ["Rescoring", "LiveRanking", "Transcoding"]),
        .library(name: "ForYouWorkbench", targets: ["Workbench", "Studies"]),
        // Everything, as one import.
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
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // ---- The engine (product ForYouEngine) ----
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CLAPACKE", path: "Sources/CLAPACKE",
                       providers: [.apt(["liblapacke-dev"])]),
        // Element-wise kernels around the BLAS calls, built per instruction set, chosen at load.
        .target(name: "CVectorKernels"),
        .target(name: "LinearAlgebra", dependencies: ["CBLAS", "CLAPACKE", "CVectorKernels"]),
        // Process-level set-up the CLI does first: OpenBLAS kernel check and re-exec.
        .target(name: "Platform", dependencies: ["LinearAlgebra"]),
        .target(name: "CChecksum"),
        .target(name: "Checksum", dependencies: ["CChecksum"]),
        .target(name: "EventLog", dependencies: ["Checksum"]),
        .target(name: "Interactions", dependencies: ["Checksum", "EventLog"]),
        .target(name: "Rankers", dependencies: ["LinearAlgebra", "Interactions"]),
        // XGBoost's C API (libxgboost-dev's headers), the library loaded on first use.
        .target(name: "CXGBoost", linkerSettings: [.linkedLibrary("dl")]),
        // The learned second stage: candidates from several rankers, re-ranked by LambdaMART (XGBoost).
        .target(name: "Reranking", dependencies: ["LinearAlgebra", "Interactions", "Rankers", "Scoring", "CXGBoost"]),
        .target(name: "Scoring", dependencies: ["LinearAlgebra", "Interactions", "Rankers"]),
        .target(name: "Evaluation", dependencies: ["LinearAlgebra", "Interactions", "Rankers", "Scoring"]),
        .target(name: "Artifacts", dependencies: ["Checksum", "EventLog", "LinearAlgebra", "Interactions", "Rankers", "Reranking"]),
        .target(name: "Training", dependencies: ["LinearAlgebra", "Interactions", "Rankers", "Scoring", "Evaluation", "Artifacts", "Reranking"]),
        .target(name: "ForYouEngine", dependencies: ["Checksum", "LinearAlgebra", "Platform", "EventLog", "Interactions", "Rankers",
                                                     "Reranking", "Scoring", "Evaluation", "Artifacts", "Training"]),

        // ---- The service side ----
        .systemLibrary(name: "CRdKafka", path: "Sources/CRdKafka",
                       providers: [.apt(["librdkafka-dev"])]),
        // The networked event log: the same events on a Kafka topic (librdkafka).
        .target(name: "KafkaLog", dependencies: ["EventLog", "CRdKafka"]),
        .target(name: "CandidateStore", dependencies: ["Checksum", .product(name: "GRDB", package: "GRDB.swift"),
                                                      .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        // The networked candidate store: the same store behaviour on PostgreSQL (postgres-nio).
        .target(name: "PostgresStore", dependencies: ["CandidateStore",
                                                      .product(name: "PostgresNIO", package: "postgres-nio"),
                                                      .product(name: "NIOCore", package: "swift-nio"),
                                                      .product(name: "NIOPosix", package: "swift-nio"),
                                                      .product(name: "Logging", package: "swift-log")]),
        .target(name: "Media", dependencies: ["Checksum"]),
        // GET /metrics for worker processes (not the feed server's application).
        .target(name: "MetricsEndpoint", dependencies: [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .target(name: "FeedServer", dependencies: [
            "CandidateStore", "EventLog", "KafkaLog", "Media", "Checksum",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // A generation's model brought to the live catalog: users folded in, new videos placed.
        .target(name: "LiveModels", dependencies: ["LinearAlgebra", "Interactions", "Rankers", "Reranking", "Scoring", "CandidateStore"]),
        // Offline: events -> Training -> score-all -> a generation in the store.
        .target(name: "Rescoring", dependencies: ["LinearAlgebra", "Interactions", "EventLog", "KafkaLog", "Rankers", "Scoring",
                                                  "Artifacts", "Training", "CandidateStore", "LiveModels"]),
        // The long-running ranking worker (fold-in between retrains, scheduled retrains).
        .target(name: "LiveRanking", dependencies: ["LinearAlgebra", "Interactions", "EventLog", "KafkaLog", "Rankers", "Reranking", "Artifacts",
                                                    "CandidateStore", "LiveModels", "Rescoring", "MetricsEndpoint"]),
        .target(name: "Transcoding", dependencies: ["CandidateStore", "Media"]),
        // Measurements behind study-mapping and study-foldin.
        .target(name: "Studies", dependencies: ["LinearAlgebra", "Interactions", "EventLog", "Rankers", "Scoring", "Evaluation",
                                                "CandidateStore", "LiveModels", "Training"]),
        .target(name: "Workbench", dependencies: ["Checksum", "Artifacts", "Evaluation", "Interactions", "LinearAlgebra",
                                                  "Rankers", "Scoring", "Training", "EventLog", "CandidateStore"]),
        .target(name: "Simulator", dependencies: ["Interactions", "EventLog", "CandidateStore"]),
        .target(name: "World", dependencies: ["Interactions", "EventLog", "CandidateStore"]),
        .target(name: "ForYou", dependencies: ["ForYouEngine", "KafkaLog", "CandidateStore", "PostgresStore", "Media",
                                               "FeedServer", "LiveModels", "Rescoring", "LiveRanking", "Transcoding", "Studies",
                                               "Workbench", "Simulator", "World"]),
        // The `foryou` command: parses flags and hands off.
        .executableTarget(name: "ForYouCLI", dependencies: [
            "ForYou", "Platform", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "TestSupport", dependencies: ["ForYou"], path: "Tests/TestSupport"),
        .testTarget(name: "LinearAlgebraTests", dependencies: ["LinearAlgebra", "Platform", "TestSupport"]),
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
        .testTarget(name: "JobsTests", dependencies: ["Rescoring", "LiveRanking", "Transcoding", "Studies", "World", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "ForYouCLI", "ForYou", "Platform"]),
    ],
    swiftLanguageModes: [.v5]
)
