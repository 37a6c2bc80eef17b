// swift-tools-version:6.0
// A package that uses foryou the way any other would: a versioned dependency on a tag, and only
// the slim engine product (no server, database or Kafka is built or linked).
// `scripts/check-consumer` points FORYOU_PACKAGE_URL at a tagged file:// clone of the checkout.
import PackageDescription

let foryou = Context.environment["FORYOU_PACKAGE_URL"] ?? "https://github.com/foryou-engine/foryou"

let package = Package(
    name: "engine-consumer",
    dependencies: [
        .package(url: foryou, from: "0.2.0"),
    ],
    targets: [
        .executableTarget(name: "engine-consumer", dependencies: [
            .product(name: "ForYouEngine", package: "foryou"),
        ]),
    ]
)
