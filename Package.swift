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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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
        .executableTarget(
            name: "KetenpostCLI",
            dependencies: ["Ketenpost", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .testTarget(name: "KetenpostModelTests", dependencies: ["KetenpostModel"], swiftSettings: strict),
        .testTarget(name: "KetenpostTests", dependencies: ["Ketenpost", "KetenpostCrypto"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
