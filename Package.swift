// swift-tools-version:6.0
import PackageDescription

// Strict settings shared by every target (Swift 6 language mode is the package default).
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "ketenpost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ketenpost", targets: ["KetenpostCLI"]),
        .library(name: "Ketenpost", targets: ["Ketenpost"]),
        .library(name: "KetenpostModel", targets: ["KetenpostModel"]),
        // libFuzzer targets (Tests/Fuzz/README.md); a plain build replays inputs.
        .executable(name: "ketenpost-fuzz", targets: ["KetenpostFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // The system OpenSSL (Debian libssl-dev). Only KetenpostCrypto imports it.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        // The one safe Swift layer over OpenSSL: ownership, error queue, thread safety.
        .target(name: "KetenpostCrypto", dependencies: ["COpenSSL"], swiftSettings: strict),
        // Routing header, message types, receipts and their validation. Pure Swift.
        .target(name: "KetenpostModel", swiftSettings: strict),
        // Envelopes (seal/open), the development PKI and the configuration files.
        .target(
            name: "Ketenpost",
            dependencies: ["KetenpostCrypto", "KetenpostModel", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // The durable queue: one protocol, the SQLite backend (GRDB) by default, PostgreSQL
        // (PostgresNIO) for several relay instances sharing one store.
        .target(
            name: "KetenpostStore",
            dependencies: [
                "KetenpostModel", "KetenpostCrypto",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The relay: mutual-TLS HTTP API (Hummingbird) over the store.
        .target(
            name: "KetenpostRelay",
            dependencies: [
                "Ketenpost", "KetenpostCrypto", "KetenpostModel", "KetenpostStore", "KetenpostClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        // The client library that case systems embed.
        .target(
            name: "KetenpostClient",
            dependencies: [
                "Ketenpost", "KetenpostCrypto", "KetenpostModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "KetenpostCLI",
            dependencies: [
                "Ketenpost", "KetenpostRelay", "KetenpostClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Fuzzing (Tests/Fuzz/README.md): the entry function of every target, shared by the
        // fuzzer and the regression test; the executable; libFuzzer's driver, weakly linked.
        .target(
            name: "KetenpostFuzzing",
            dependencies: [
                "Ketenpost", "KetenpostCrypto", "KetenpostModel", "KetenpostStore", "KetenpostRelay",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(name: "CKetenpostFuzzDriver"),
        .executableTarget(name: "KetenpostFuzz", dependencies: ["KetenpostFuzzing", "CKetenpostFuzzDriver"], swiftSettings: strict),
        .testTarget(name: "KetenpostModelTests", dependencies: ["KetenpostModel"], swiftSettings: strict),
        .testTarget(name: "KetenpostTests", dependencies: ["Ketenpost", "KetenpostCrypto"], swiftSettings: strict),
        // Test support only: a throwaway PostgreSQL server for the store and relay tests.
        .target(name: "KetenpostTestSupport", swiftSettings: strict),
        .testTarget(name: "KetenpostStoreTests", dependencies: ["KetenpostStore", "KetenpostModel", "KetenpostTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "KetenpostRelayTests",
            dependencies: ["Ketenpost", "KetenpostCrypto", "KetenpostModel", "KetenpostStore", "KetenpostRelay", "KetenpostClient",
                           "KetenpostTestSupport",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "HTTPTypes", package: "swift-http-types"),
                           .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(name: "KetenpostFuzzTests", dependencies: ["KetenpostFuzzing"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
