import Foundation
import KetenpostAPI
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import Logging
import Testing

@Suite struct ConfigurationTests {
    @Test func shippedConfigurationLoadsWithItsDocumentedDefaults() throws {
        let c = try RelayConfiguration.load(path: Root.path("config/ketenpost.yaml"))
        #expect(c.listen.port == 8443 && c.listen.host == "127.0.0.1")
        #expect(c.queue.leaseDuration == 60 && c.queue.maxAttempts == 5 && c.queue.retention == 7 * 86_400)
        #expect(c.queue.maxLifetime[MessageType.intakeNotice] == TimeInterval(3 * 86_400))
        #expect(c.developmentPKI.directory == "certs/dev")
        _ = try Policy.load(path: Root.path("config/policy.yaml"))
    }

    @Test func shippedPolicyIsTheBriefsTable() throws {
        let shipped = try Policy.load(path: Root.path("config/policy.yaml"))
        for type in MessageTypeList.all {
            for from in RoleList.all {
                for to in RoleList.all {
                    #expect(
                        shipped.allows(type, from: from, to: to) == Policy.default.allows(type, from: from, to: to),
                        "\(type) \(from) → \(to)"
                    )
                }
            }
        }
    }

    @Test func invalidConfigurationNamesFileKeyAndProblem() {
        let cases: [(String, String)] = [
            ("listen:\n  port: 70000\n", "listen.port"),
            ("queue:\n  leaseDuration: soon\n", "queue.leaseDuration"),
            ("queue:\n  maxAttempts: 0\n", "queue.maxAttempts"),
            ("queue:\n  maxLifetime:\n    gossip: 1d\n", "queue.maxLifetime.gossip"),
            ("queue:\n  leaseDuraton: 30s\n", "queue.leaseDuraton"),
            ("listn:\n  port: 1\n", "listn"),
            ("limits:\n  maxMessageBytes: 10\n", "limits.maxMessageBytes"),
            ("listen:\n  port: eighty\n", "listen.port"),
            // The metrics listener has no authentication: loopback unless opened on purpose.
            ("metrics:\n  listen: 0.0.0.0:9464\n", "metrics.listen"),
            ("metrics:\n  listen: 10.1.2.3:9464\n  network: loopback\n", "metrics.listen"),
            ("metrics:\n  network: public\n", "metrics.network"),
            ("admin:\n  listen: 0.0.0.0:9465\n", "admin.listen"),
        ]
        let opened = try? RelayConfiguration.parse("metrics:\n  listen: 10.1.2.3:9464\n  network: open\n", file: "ketenpost.yaml")
        #expect(opened?.metrics.listen?.host == "10.1.2.3")
        for (yaml, key) in cases {
            do {
                _ = try RelayConfiguration.parse(yaml, file: "ketenpost.yaml")
                Issue.record("\(key): accepted")
            } catch {
                #expect(error.code == .configInvalid)
                #expect(error.message.hasPrefix("ketenpost.yaml: "), "\(error.message)")
                #expect(error.message.contains(key), "\(error.message) should name \(key)")
            }
        }
    }

    @Test func firstStartCreatesTheDevelopmentPKI() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-first-start-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = RelayConfiguration()
        let pki = DevelopmentPKI(directory: dir.appendingPathComponent("certs").path)
        c.developmentPKI.directory = pki.directory.path
        c.tls.certificate = pki.relayDirectory + "/cert.pem"
        c.tls.key = pki.relayDirectory + "/key.pem"
        c.tls.trustAnchors = pki.caCertificatePath
        c.tls.crls = [pki.crlPath]
        c.directory.partners = Root.path("config/partners.yaml")
        c.directory.policy = Root.path("config/policy.yaml")
        c.directory.certificates = pki.directory.appendingPathComponent("partners").path
        c.store.path = dir.appendingPathComponent("store.sqlite").path
        c.admin.certificates = [pki.adminDirectory + "/cert.pem"]
        #expect(!pki.exists)
        let server = try await RelayServer.prepare(c, logger: Logger(label: "test"))
        try await server.core.store.withRunning { try await server.start() }
        #expect(pki.exists)
        #expect(server.core.directory.snapshot.partners.count == 8)
        #expect(FileManager.default.fileExists(atPath: pki.adminDirectory + "/key.pem"))
        // A missing partner certificate file stops start-up with the file and key.
        c.directory.certificates = dir.appendingPathComponent("nowhere").path
        c.developmentPKI.directory = nil
        do {
            let server = try await RelayServer.prepare(c, logger: Logger(label: "test"))
            try await server.core.store.withRunning { try await server.start() }
            Issue.record("started without partner certificates")
        } catch let error as KetenpostError {
            #expect(error.code == .configInvalid)
            #expect(error.message.contains("partners[0].certificates"))
        }
    }
}

enum MessageTypeList { static let all = MessageType.allCases }
enum RoleList { static let all = PartnerRole.allCases }
