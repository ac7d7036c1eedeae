// swift-tools-version:6.0
import PackageDescription

// Strict settings shared by every target (Swift 6 language mode is the package default).
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

// Layers, bottom up (each target lists every module it imports):
//   model, crypto          KetenpostModel, KetenpostCrypto (the one safe layer over OpenSSL)
//   wire, envelope         KetenpostAPI (DTOs, error codes), KetenpostEnvelope (seal, open, receipts)
//   provisioning           KetenpostProvisioning (development PKI, partners.yaml): not in a partner's path
//   store                  KetenpostStore (SQLite, PostgreSQL, memory)
//   relay, client          KetenpostRelay (HTTP over the store), KetenpostClient (what case systems embed)
//   hosted partner         KetenpostConformance (the conformance echo: a client inside the relay process)
//   desk                   KetenpostDesk (the partner's web app: a client with staff accounts and screens)
//   programs               ketenpost (KetenpostCLI), ketenpost-bench (KetenpostBench), ketenpost-fuzz
let package = Package(
    name: "ketenpost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ketenpost", targets: ["KetenpostCLI"]),
        // Benchmarks and the crash test (docs/BENCHMARKS.md).
        .executable(name: "ketenpost-bench", targets: ["KetenpostBench"]),
        // What a case system embeds: the wire API, the envelope and the client.
        .library(name: "Ketenpost", targets: ["KetenpostAPI", "KetenpostEnvelope", "KetenpostClient"]),
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
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
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
        // The wire API: request and response bodies, error codes and their sentences.
        .target(name: "KetenpostAPI", dependencies: ["KetenpostModel"], swiftSettings: strict),
        // Envelopes (seal, check, open), identities and trust stores, signed receipts.
        .target(name: "KetenpostEnvelope", dependencies: ["KetenpostAPI", "KetenpostCrypto", "KetenpostModel"], swiftSettings: strict),
        // The development PKI and partners.yaml: first start, tests, demo and benchmarks.
        .target(
            name: "KetenpostProvisioning",
            dependencies: ["KetenpostAPI", "KetenpostCrypto", "KetenpostModel", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Configuration files of sections whose keys are declared once (relay, desk).
        .target(
            name: "KetenpostConfiguration",
            dependencies: ["KetenpostAPI", "KetenpostEnvelope", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // The partner desk: the web app for caseworkers and intake staff, next to one partner's key.
        .target(
            name: "KetenpostDesk",
            dependencies: [
                "KetenpostAPI", "KetenpostClient", "KetenpostConfiguration", "KetenpostCrypto", "KetenpostEnvelope", "KetenpostModel",
                "KetenpostProvisioning",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            swiftSettings: strict
        ),
        // The durable queue: one protocol, the SQLite backend (GRDB) by default, PostgreSQL
        // (PostgresNIO) for several relay instances sharing one store, memory for handler tests.
        .target(
            name: "KetenpostStore",
            dependencies: [
                "KetenpostCrypto",
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
                "KetenpostAPI", "KetenpostConfiguration", "KetenpostCrypto", "KetenpostEnvelope", "KetenpostModel",
                "KetenpostProvisioning", "KetenpostStore",
                // Fetches CRLs from the distribution points of partners' CAs.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        // The client library that case systems embed.
        .target(
            name: "KetenpostClient",
            dependencies: [
                "KetenpostAPI", "KetenpostCrypto", "KetenpostEnvelope", "KetenpostModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // The conformance echo: a partner hosted in the relay process, a client like any other.
        .target(
            name: "KetenpostConformance",
            dependencies: [
                "KetenpostAPI", "KetenpostClient", "KetenpostCrypto", "KetenpostEnvelope", "KetenpostModel", "KetenpostProvisioning",
                "KetenpostRelay", "KetenpostStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "KetenpostCLI",
            dependencies: [
                "KetenpostAPI", "KetenpostClient", "KetenpostConformance", "KetenpostCrypto", "KetenpostDesk", "KetenpostEnvelope",
                "KetenpostModel", "KetenpostProvisioning", "KetenpostRelay", "KetenpostStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Benchmarks and the crash test; they run `ketenpost serve` from the same build directory.
        .executableTarget(
            name: "KetenpostBench",
            dependencies: [
                "KetenpostAPI", "KetenpostClient", "KetenpostCrypto", "KetenpostDesk", "KetenpostEnvelope", "KetenpostModel",
                "KetenpostProvisioning", "KetenpostRelay", "KetenpostStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Fuzzing (Tests/Fuzz/README.md): the entry function of every target, shared by the
        // fuzzer and the regression test; the executable; libFuzzer's driver, weakly linked.
        .target(
            name: "KetenpostFuzzing",
            dependencies: [
                "KetenpostAPI", "KetenpostCrypto", "KetenpostEnvelope", "KetenpostModel", "KetenpostProvisioning", "KetenpostRelay",
                "KetenpostStore",
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
        .testTarget(
            name: "KetenpostEnvelopeTests",
            dependencies: ["KetenpostAPI", "KetenpostCrypto", "KetenpostEnvelope", "KetenpostModel", "KetenpostProvisioning"],
            swiftSettings: strict
        ),
        // Test support only: a throwaway PostgreSQL server for the store and relay tests.
        .target(name: "KetenpostTestSupport", swiftSettings: strict),
        .testTarget(name: "KetenpostStoreTests", dependencies: ["KetenpostStore", "KetenpostTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "KetenpostRelayTests",
            dependencies: [
                "KetenpostAPI", "KetenpostClient", "KetenpostConfiguration", "KetenpostConformance", "KetenpostCrypto", "KetenpostEnvelope",
                "KetenpostModel", "KetenpostProvisioning", "KetenpostRelay", "KetenpostStore", "KetenpostTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KetenpostDeskTests",
            dependencies: [
                "KetenpostAPI", "KetenpostClient", "KetenpostConfiguration", "KetenpostCrypto", "KetenpostDesk", "KetenpostEnvelope",
                "KetenpostModel", "KetenpostProvisioning", "KetenpostRelay", "KetenpostStore", "KetenpostTestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "KetenpostFuzzTests", dependencies: ["KetenpostCrypto", "KetenpostFuzzing"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
