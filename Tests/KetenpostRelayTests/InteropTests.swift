import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostModel
import Testing

/// The minimal partner: a message sealed with the openssl recipe and submitted with curl,
/// exactly as docs/FORMAT.md writes it, is accepted, delivered and opened.
@Suite struct MinimalPartnerTests {
    static func recipe(_ name: String) throws -> String {
        let text = try String(contentsOfFile: Root.path("docs/FORMAT.md"), encoding: .utf8)
        guard let start = text.range(of: "# recipe: \(name)\n"),
            let end = text.range(of: "\n```", range: start.upperBound..<text.endIndex)
        else {
            throw KetenpostError(.internalError, "recipe \(name) missing from docs/FORMAT.md")
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    @Test func opensslSealedCurlSubmittedMessageIsAcceptedAndDelivered() async throws {
        try await withRelay { h in
            let work = h.work.appendingPathComponent("minimal")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            let env = [
                "SENDER": h.shared.identityDirectory(municipality), "FROM": municipality, "TO": coordinator,
                "TO_CERT": "recipient-certs.pem", "TYPE": "signal", "PAYLOAD": Root.path("config/examples/signal.json"),
                "CA": h.shared.pki.caCertificatePath, "RELAY": h.url.absoluteString,
            ]
            // Fetch the certificate first (the submit recipe's first line), then seal, then submit.
            let submit = try Self.recipe("submit")
            let fetch = String(submit.split(separator: "\n", omittingEmptySubsequences: false).prefix(2).joined(separator: "\n"))
            let script = "set -euo pipefail\n" + fetch + "\n" + (try Self.recipe("seal")) + "\n" + submit
            let result = try await shell(script, in: work, env: env)
            #expect(result.status == 0, "\(result.stderr)")
            let accepted =
                try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("accepted.json"))) as? [String: Any]
            #expect(accepted?["state"] as? String == "accepted")
            let receipt = try String(contentsOf: work.appendingPathComponent("acceptance-receipt.json"), encoding: .utf8)
            #expect(receipt.contains("\"issuer\":\"ketenpost-relay\""))

            let recipient = try h.client(coordinator)
            let received = try await recipient.receive()
            #expect(received.count == 1)
            let opened = try received[0].result.get()
            #expect(opened.header.from == municipality)
            try await recipient.acknowledge(received[0])
        }
    }

    /// The demo of the README runs to the end.
    @Test func demoRunsToTheEnd() async throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ketenpost")
        let path = FileManager.default.isExecutableFile(atPath: binary.path) ? binary.path : Root.path(".build/debug/ketenpost")
        let result = try await shell("'\(path)' demo --config '\(Root.path("config"))'", in: Root.url)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("every receipt verified"))
        #expect(result.stdout.components(separatedBy: "verified").count > 6)
    }
}

/// The OpenAPI document names every route the relay serves, and every error code it can send.
@Suite struct OpenAPIDocumentTests {
    @Test func everyRouteAndErrorCodeIsDocumented() throws {
        let text = try String(contentsOfFile: Root.path("docs/openapi.yaml"), encoding: .utf8)
        for path in [
            "/v1/messages:", "/v1/inbox:", "/v1/messages/{id}/ack:", "/v1/messages/{id}:",
            "/v1/directory/{partner}:", "/v1/directory/{partner}/certificates.pem:", "/v1/health:", "/v1/ready:",
            "/v1/admin/partners:", "/v1/admin/partners/{partner}:", "/v1/admin/partners/{partner}/suspend:",
            "/v1/admin/partners/{partner}/resume:", "/v1/admin/partners/{partner}/certificates:",
            "/v1/admin/partners/{partner}/rotate:", "/v1/admin/certificates/{fingerprint}/revoke:",
            "/v1/admin/certificates/expiring:", "/v1/crls.pem:", "/v1/admin/crls:", "/v1/admin/events:", "/v1/admin/reload:",
            "/v1/admin/status:", "/metrics:",
        ] {
            #expect(text.contains("  \(path)\n"), "\(path) is not in docs/openapi.yaml")
        }
        let codes: [KetenpostError.Code] = [
            .unknownPartner, .partnerSuspended, .senderMismatch, .signerUnregistered, .recipientUnknown, .recipientSuspended,
            .policyForbidden, .correlationMismatch, .messageExpired, .createdInFuture, .messageConflict, .messageNotFound,
            .messageFinal, .leaseInvalid, .leaseExpired, .receiptMismatch, .requestTooLarge, .requestUnsupportedMediaType,
            .requestInvalid, .rateLimited, .storeUnavailable, .envelopeMalformed, .outerSignatureInvalid, .outerContentInvalid,
            .headerInvalid, .signerNotSender, .certificateUntrusted, .certificateRevoked, .receiptSignerMismatch,
            .certificateInactive, .notAdministrator, .partnerExists, .partnerNotFound, .certificateExists, .certificateNotFound,
        ]
        for code in codes { #expect(text.contains(code.rawValue), "\(code) is not in docs/openapi.yaml") }
    }
}
