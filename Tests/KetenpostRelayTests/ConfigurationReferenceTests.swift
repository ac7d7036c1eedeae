import Foundation
import KetenpostConfiguration
import KetenpostRelay
import Testing

/// The configuration's documentation is the configuration: the reference in docs/OPERATIONS.md
/// is generated from the section structs, and config/ketenpost.yaml shows their defaults.
@Suite struct ConfigurationReferenceTests {
    static let begin = "<!-- configuration-reference: generated from Sources/KetenpostRelay/Configuration/Sections.swift -->"
    static let end = "<!-- end of configuration-reference -->"

    @Test func operationsGuideListsEveryKeyWithItsDefault() throws {
        let guide = try String(contentsOfFile: Root.path("docs/OPERATIONS.md"), encoding: .utf8)
        let generated = RelayConfiguration.reference()
        guard let start = guide.range(of: Self.begin), let stop = guide.range(of: Self.end) else {
            Issue.record("docs/OPERATIONS.md has no generated configuration reference; paste this between the markers:\n\(generated)")
            return
        }
        let documented = guide[start.upperBound..<stop.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        // KETENPOST_UPDATE_DOCS=1 swift test --filter ConfigurationReferenceTests rewrites the block.
        if ProcessInfo.processInfo.environment["KETENPOST_UPDATE_DOCS"] == "1" {
            let updated = guide.replacingCharacters(in: start.upperBound..<stop.lowerBound, with: "\n" + generated)
            try updated.write(toFile: Root.path("docs/OPERATIONS.md"), atomically: true, encoding: .utf8)
            return
        }
        #expect(
            documented == generated.trimmingCharacters(in: .whitespacesAndNewlines),
            "docs/OPERATIONS.md is out of date; the reference is now:\n\(generated)"
        )
    }

    @Test func shippedFileShowsTheDefaultsTheParserApplies() throws {
        let text = try String(contentsOfFile: Root.path("config/ketenpost.yaml"), encoding: .utf8)
        _ = try RelayConfiguration.parse(text, file: "config/ketenpost.yaml")
        #expect(ConfigurationFile.differencesFromDefaults(in: text, sections: RelayConfiguration.sections) == [])
    }

    @Test func keysAreDocumentedOnceAndMentionedKeysExist() throws {
        var all = Set<String>()
        for section in RelayConfiguration.sections {
            for key in section.keys {
                #expect(all.insert("\(section.name).\(key.name)").inserted, "\(section.name).\(key.name) is declared twice")
                #expect(!key.summary.isEmpty && !key.summary.contains("|"), "\(section.name).\(key.name) needs a one-line summary")
            }
        }
        // Every `section.key` the guides mention is a key the relay reads.
        let sectionNames = Set(RelayConfiguration.sections.map { $0.name })
        // Error codes that share a section's name.
        let codes: Set<String> = ["store.unavailable", "store.closed", "store.tls", "store.unreachable", "store.server-full"]
        for file in ["README.md", "docs/OPERATIONS.md", "docs/SECURITY.md", "docs/SCALING.md", "docs/BENCHMARKS.md"] {
            let text = try String(contentsOfFile: Root.path(file), encoding: .utf8)
            for match in text.matches(of: /`([a-zA-Z]+)\.([a-zA-Z]+)(?:\.[a-z-]+)?`/) where sectionNames.contains(String(match.1)) {
                let path = "\(match.1).\(match.2)"
                if codes.contains(path) { continue }
                #expect(all.contains(path), "\(file) mentions \(path), which is not a configuration key")
            }
        }
    }

    @Test func defaultsOfTheStructsAreTheParsersDefaults() throws {
        let parsed = try RelayConfiguration.parse("", file: "empty.yaml")
        let built = RelayConfiguration()
        #expect(parsed.queue.leaseDuration == built.queue.leaseDuration && parsed.limits.maxConnections == built.limits.maxConnections)
        #expect(parsed.developmentPKI.directory == nil, "without the key no development PKI is created")
        #expect(RelayConfiguration.reference().contains("| `queue.leaseDuration` | `60s` |"))
        #expect(built.queue.leaseDuration == 60 && built.queue.retention == 7 * 86_400 && built.limits.maxMessageBytes == 4 << 20)
    }
}
