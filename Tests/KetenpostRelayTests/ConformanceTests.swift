import Foundation
import KetenpostProvisioning
import KetenpostRelay
import Testing

/// The partner conformance kit against a relay that hosts the echo: a correct partner passes
/// every case; misconfigured ones fail, and say where.
@Suite struct ConformanceTests {
    func kit(_ h: Harness, identity: String, extra: String = "") async throws -> Shell {
        try await shell(
            """
            '\(ServeProcessTests.binary)' conformance --identity '\(identity)' --relay \(h.url.absoluteString) --trust \
            '\(h.shared.pki.caCertificatePath)' --timeout 20 \(extra)
            """
        )
    }

    @Test func aCorrectPartnerPassesAndMisconfiguredOnesFail() async throws {
        try await withRelay({
            $0.conformance.echo = DevelopmentPKI.echo.id
            $0.conformance.identity = SharedPKI.shared.pki.echoDirectory
        }) { h in
            let good = try await kit(h, identity: h.shared.identityDirectory("gemeente-maastricht"))
            #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
            #expect(good.stdout.contains("10 of 10 passed"), "\(good.stdout)")
            #expect(!good.stdout.contains("FAIL"))
            // A police partner too: the echo is outside the policy table.
            let police = try await kit(h, identity: h.shared.identityDirectory("politie-avim-limburg"), extra: "--json")
            #expect(police.status == 0, "\(police.stdout)")
            let cases = try JSONSerialization.jsonObject(with: Data(police.stdout.utf8)) as? [[String: Any]]
            #expect(cases?.count == 10 && cases?.allSatisfy { $0["passed"] as? Bool == true } == true)

            // A certificate the directory does not know: the first case fails and the run stops there.
            let unregistered = try await kit(h, identity: h.shared.identityDirectory("unregistered-maastricht"))
            #expect(unregistered.status == 1)
            #expect(unregistered.stdout.contains("FAIL  TLS with the client certificate"), "\(unregistered.stdout)")
            #expect(unregistered.stdout.contains("auth.unknown-partner"))
            // A revoked certificate: refused at the handshake.
            let revoked = try await kit(h, identity: h.shared.identityDirectory("gemeente-ingetrokken"))
            #expect(revoked.status == 1 && revoked.stdout.contains("tls.handshake-failed"), "\(revoked.stdout)")
            // The echo answered and acknowledged; the audit trail shows it, the policy was not bent further.
            #expect(h.log.all.contains { $0.contains("conformance echo answered") })
        }
    }
}
