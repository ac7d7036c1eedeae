import Foundation
import Testing

/// The package's layers as Package.swift declares them and as the sources import them: every
/// target declares what it imports, and the edges that must not exist do not.
@Suite struct PackageLayerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Target name → declared dependencies (target names and product names), read from Package.swift.
    static func declaredTargets() throws -> [String: Set<String>] {
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        var targets: [String: Set<String>] = [:]
        let starts = manifest.ranges(of: /\.(target|executableTarget|testTarget|systemLibrary)\(\s*name:\s*"(\w+)"/)
        for (index, range) in starts.enumerated() {
            let end = index + 1 < starts.count ? starts[index + 1].lowerBound : manifest.endIndex
            let block = String(manifest[range.lowerBound..<end])
            guard let name = block.firstMatch(of: /name:\s*"(\w+)"/)?.1 else { continue }
            var dependencies = Set<String>()
            if let list = block.firstMatch(of: /dependencies:\s*\[(?<list>[^\]]*)\]/)?.list {
                for match in list.matches(of: /\.product\(name:\s*"(\w+)"/) { dependencies.insert(String(match.1)) }
                let withoutProducts = list.replacing(/\.product\([^)]*\)/, with: "")
                for match in withoutProducts.matches(of: /"(\w+)"/) { dependencies.insert(String(match.1)) }
            }
            targets[String(name)] = dependencies
        }
        return targets
    }

    /// Modules a target's sources import.
    static func imports(of target: String) throws -> Set<String> {
        let folder = ["Sources", "Tests"].map { root.appendingPathComponent("\($0)/\(target)") }
            .first { FileManager.default.fileExists(atPath: $0.path) }
        guard let folder, let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return [] }
        var modules = Set<String>()
        for case let file as URL in files where file.pathExtension == "swift" {
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
                if let match = line.wholeMatch(of: /(?:@testable |@_spi\(\w+\) )?import (\w+)/) { modules.insert(String(match.1)) }
            }
        }
        return modules
    }

    static let platform: Set<String> = [
        "Foundation", "FoundationEssentials", "Dispatch", "Glibc", "Darwin", "Musl", "Synchronization",
        "Testing", "XCTest",
    ]

    @Test func everyTargetDeclaresWhatItImports() throws {
        let targets = try Self.declaredTargets()
        #expect(targets.count > 15, "Package.swift was not read: \(targets.keys.sorted())")
        for (target, declared) in targets {
            let undeclared = try Self.imports(of: target).subtracting(declared).subtracting(Self.platform)
            #expect(undeclared.isEmpty, "\(target) imports \(undeclared.sorted()) without declaring them")
        }
    }

    @Test func layersOnlyPointDown() throws {
        let targets = try Self.declaredTargets()
        func reach(_ target: String) -> Set<String> {
            var seen = Set<String>()
            var queue = [target]
            while let next = queue.popLast() {
                for dependency in targets[next] ?? [] where seen.insert(dependency).inserted { queue.append(dependency) }
            }
            return seen
        }
        // The wire API is plain data over the model.
        #expect(targets["KetenpostAPI"] == ["KetenpostModel"])
        // What a case system embeds has no development PKI, no YAML, no server.
        for target in ["KetenpostAPI", "KetenpostEnvelope", "KetenpostClient"] {
            let forbidden = reach(target).intersection(["KetenpostProvisioning", "Yams", "KetenpostRelay", "KetenpostStore", "Hummingbird"])
            #expect(forbidden.isEmpty, "\(target) reaches \(forbidden.sorted())")
        }
        // The relay does not link the partner client (the conformance echo is its own target). It
        // uses AsyncHTTPClient for one thing: fetching CRLs from CAs' distribution points.
        let relay = reach("KetenpostRelay")
        #expect(relay.isDisjoint(with: ["KetenpostClient", "KetenpostConformance"]), "\(relay.sorted())")
        var importers: [String] = []
        let folder = Self.root.appendingPathComponent("Sources/KetenpostRelay")
        for case let file as URL in FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)!
        where file.pathExtension == "swift" {
            if try String(contentsOf: file, encoding: .utf8).contains("import AsyncHTTPClient") { importers.append(file.lastPathComponent) }
        }
        #expect(importers == ["RevocationService.swift"])
        // Only the safe layer touches OpenSSL.
        for (target, _) in targets where target != "KetenpostCrypto" && target != "COpenSSL" {
            #expect(try !Self.imports(of: target).contains("COpenSSL"), "\(target) imports COpenSSL")
            #expect(targets[target]?.contains("COpenSSL") != true, "\(target) depends on COpenSSL")
        }
        // Benchmarks live in their own program, not in the one operators run.
        #expect(targets["KetenpostCLI"]?.contains("Histogram") == false)
    }
}
