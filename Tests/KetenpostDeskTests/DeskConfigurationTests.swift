import Foundation
import KetenpostAPI
import KetenpostConfiguration
import KetenpostDesk
import Testing

@Suite struct DeskConfigurationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let begin = "<!-- desk-configuration-reference: generated from Sources/KetenpostDesk/Configuration/DeskConfiguration.swift -->"
    static let end = "<!-- end of desk-configuration-reference -->"

    @Test func shippedFileLoadsAndShowsTheDefaults() throws {
        let path = Self.root.appendingPathComponent("config/desk.yaml").path
        let c = try DeskConfiguration.load(path: path)
        #expect(c.identity.directory == "certs/dev/partners/gemeente-eijsden-margraten")
        #expect(c.listen.isLoopback && c.listen.port == 8080 && c.sessions.idleTimeout == 1800 && !c.language.english)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(ConfigurationFile.differencesFromDefaults(in: text, sections: DeskConfiguration.sections) == [])
    }

    /// docs/desk.md lists every key; `KETENPOST_UPDATE_DOCS=1 swift test --filter DeskConfigurationTests` rewrites it.
    @Test func guideListsEveryKey() throws {
        let path = Self.root.appendingPathComponent("docs/desk.md").path
        let guide = try String(contentsOfFile: path, encoding: .utf8)
        let generated = DeskConfiguration.reference()
        let block = try #require(
            ConfigurationFile.generatedBlock(in: guide, begin: Self.begin, end: Self.end),
            "docs/desk.md has no markers"
        )
        if ProcessInfo.processInfo.environment["KETENPOST_UPDATE_DOCS"] == "1" {
            try guide.replacingCharacters(in: block, with: "\n" + generated).write(toFile: path, atomically: true, encoding: .utf8)
            return
        }
        #expect(
            guide[block].trimmingCharacters(in: .whitespacesAndNewlines) == generated.trimmingCharacters(in: .whitespacesAndNewlines),
            "docs/desk.md is out of date; the reference is now:\n\(generated)"
        )
    }

    @Test(arguments: [
        ("relay:\n  url: https://r:1\n", "identity.directory"),
        ("identity:\n  directory: x\nlisten:\n  host: 0.0.0.0\n", "listen.host"),
        ("identity:\n  directory: x\nlisten:\n  certificate: c.pem\n", "listen.key"),
        ("identity:\n  directory: x\nrelay:\n  url: http://relay:8443\n", "relay.url"),
        ("identity:\n  directory: x\nsessions:\n  idleTimeout: 5s\n", "sessions.idleTimeout"),
        ("identity:\n  directory: x\nsessions:\n  lockoutAttempts: 0\n", "sessions.lockoutAttempts"),
        ("identity:\n  directory: x\nlanguage:\n  default: de\n", "language.default"),
        ("identity:\n  directory: x\nsesions:\n  idleTimeout: 5m\n", "sesions"),
        ("identity:\n  directory: x\n  password: hunter2\n", "identity.password"),
    ])
    func badValuesStopStartUpNamingTheKey(yaml: String, key: String) {
        do {
            _ = try DeskConfiguration.parse(yaml, file: "desk.yaml")
            Issue.record("\(key): accepted")
        } catch {
            #expect(error.code == .configInvalid)
            #expect(error.message.hasPrefix("desk.yaml: ") && error.message.contains(key), "\(error.message)")
            #expect(!error.message.contains("hunter2"), "a value must never be echoed: \(error.message)")
        }
    }

    @Test func aMissingFileStopsStartUpNamingIt() {
        do {
            _ = try DeskConfiguration.load(path: "/nonexistent/desk.yaml")
            Issue.record("a missing file was accepted")
        } catch {
            #expect(error.code == .configInvalid && error.message.hasPrefix("/nonexistent/desk.yaml: cannot be read"), "\(error.message)")
        }
    }

    @Test func anotherAddressWithTLSIsAccepted() throws {
        let c = try DeskConfiguration.parse(
            "identity:\n  directory: x\nlisten:\n  host: 10.0.0.5\n  certificate: c.pem\n  key: k.pem\nlanguage:\n  default: en\n",
            file: "desk.yaml"
        )
        #expect(!c.listen.isLoopback && c.listen.certificate == "c.pem" && c.language.english)
    }
}
