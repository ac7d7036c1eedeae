import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning

/// `ketenpost conformance`: what a new partner must pass before going live, against a live
/// relay and its conformance echo (`conformance.echo` in the relay's configuration).
struct Conformance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a partner's set-up against a live relay and its conformance echo; prints a pass/fail table.",
        discussion: """
            Cases: reach the relay with the client certificate; fetch the directory; send a sealed signal \
            to the echo and verify the acceptance receipt; receive the echo's answer, open it and \
            acknowledge it; see the echo's signed receipt in the status; resubmit the same bytes and get \
            the original receipt; and the refusals as documented: a tampered message, an expired message, \
            an unknown recipient, an acknowledgement with a wrong lease. Exit status 0 only if all pass.
            Examples:
              ketenpost conformance --identity certs/dev/partners/gemeente-maastricht
              ketenpost conformance --identity certs/dev/partners/gemeente-maastricht \\
                --relay https://relay.example.nl:8443 --json
            """
    )

    @OptionGroup var partner: PartnerOptions
    @Option(help: "The relay's conformance echo partner.") var echo: String = DevelopmentPKI.echo.id
    @Option(help: "How long to wait for the echo's answer, in seconds.") var timeout: Int = 30
    @Flag(help: "Print the results as JSON.") var json = false

    struct Case: Codable {
        var name: String
        var passed: Bool
        var detail: String
    }

    func run() async throws {
        var cases: [Case] = []
        func record(_ name: String, _ body: () async throws -> String) async -> Bool {
            do {
                cases.append(Case(name: name, passed: true, detail: try await body()))
                return true
            } catch {
                cases.append(Case(name: name, passed: false, detail: "\(error)"))
                return false
            }
        }
        func refusal(_ name: String, expecting codes: [KetenpostError.Code], _ body: () async throws -> Void) async {
            _ = await record(name) {
                do {
                    try await body()
                } catch let error as KetenpostError where codes.contains(error.code) {
                    return "refused: \(error.code)"
                }
                throw KetenpostError(.internalError, "not refused with \(codes.map(\.rawValue).joined(separator: " or "))")
            }
        }
        let reached: Bool
        do {
            reached = try await withRelayClient(try partner.client()) { client in
                let me = client.identity.partnerID
                let signal = SyntheticPayload.signal

                var sent: RelayClient.Sent?
                var answer: (id: UUID, digest: String)?
                var sealed = Data()
                let reached = await record("TLS with the client certificate") {
                    let entry = try await client.directory(me)
                    guard entry.certificates.contains(client.identity.certificate.pem) else {
                        throw KetenpostError(
                            .signerUnregistered,
                            "The relay answers, but this certificate is not among \(me)'s registered certificates."
                        )
                    }
                    return "reached \(client.relay.absoluteString) as \(me)"
                }
                if reached {
                    var echoCertificates: [Certificate] = []
                    var echoIntermediates: [Certificate] = []
                    _ = await record("Directory lists the echo's certificates") {
                        let entry = try await client.directory(echo)
                        (echoCertificates, echoIntermediates) = try entry.sealingCertificates()
                        guard !echoCertificates.isEmpty else {
                            throw KetenpostError(.recipientUnknown, "The echo has no certificates to seal for.")
                        }
                        return "\(echoCertificates.count) certificate(s)"
                    }
                    let delivered = await record("Send a sealed signal, acceptance receipt verified") {
                        let content = try Drafting.content(type: .signal, from: me, to: echo, payload: signal)
                        sealed = try Envelope.seal(
                            content,
                            from: client.identity,
                            to: echoCertificates,
                            intermediates: echoIntermediates,
                            trust: client.trust
                        )
                        let result = try await client.submit(sealed: sealed, header: content.header)
                        sent = result
                        return "accepted \(result.header.id.uuidString.lowercased())"
                    }
                    if delivered, let sent {
                        _ = await record("Receive the echo's answer, open and acknowledge it") {
                            let deadline = Date().addingTimeInterval(TimeInterval(timeout))
                            while Date() < deadline {
                                for item in try await client.receive(max: 10, wait: 5) {
                                    let opened = try item.result.get()
                                    guard opened.header.from == echo, opened.header.correlationId == sent.header.id else {
                                        continue  // not ours: leave it for its real handler (the lease runs out)
                                    }
                                    _ = try await client.acknowledge(item)
                                    answer = (item.id, opened.digest)
                                    return "answer \(item.id.uuidString.lowercased()) opened, signature checked, acknowledged"
                                }
                            }
                            throw KetenpostError(
                                .messageNotFound,
                                "No answer from \(echo) within \(timeout) s; is conformance.echo enabled on the relay?"
                            )
                        }
                        _ = await record("The echo's signed receipt is in the status") {
                            var status = try await client.status(sent.header.id)
                            // The echo acknowledges before it answers; allow a moment for a slow relay.
                            for _ in 0..<20 where status.state != "acknowledged" {
                                try await Task.sleep(for: .milliseconds(250))
                                status = try await client.status(sent.header.id)
                            }
                            guard status.state == "acknowledged", let receipt = status.recipientReceipt.flatMap({ Data(base64Encoded: $0) })
                            else {
                                throw KetenpostError(.receiptInvalid, "The message is \(status.state), not acknowledged.")
                            }
                            let verified = try SignedReceipt.verify(receipt, trust: client.trust)
                            guard verified.receipt.issuer == echo, verified.receipt.messageId == sent.header.id else {
                                throw KetenpostError(.receiptInvalid, "The receipt is not the echo's for this message.")
                            }
                            return "acknowledged by \(echo), receipt verified"
                        }
                        _ = await record("Resubmitting the same bytes returns the original receipt") {
                            let again = try await client.submit(sealed)
                            guard again.duplicate, again.receipt == sent.response.receipt else {
                                throw KetenpostError(.messageConflict, "The resubmission was not answered with the original receipt.")
                            }
                            return "duplicate, same receipt"
                        }
                        await refusal(
                            "A tampered message is refused",
                            expecting: [.outerSignatureInvalid, .envelopeMalformed, .outerContentInvalid]
                        ) {
                            var tampered = sealed
                            tampered[tampered.count / 2] ^= 0x01
                            _ = try await client.submit(tampered)
                        }
                    }
                    await refusal("An expired message is refused", expecting: [.messageExpired]) {
                        let content = try Drafting.content(
                            type: .signal,
                            from: me,
                            to: echo,
                            payload: signal,
                            now: Date().addingTimeInterval(-30 * 86_400)
                        )
                        _ = try await client.submit(
                            try Envelope.seal(
                                content,
                                from: client.identity,
                                to: echoCertificates,
                                intermediates: echoIntermediates,
                                trust: client.trust
                            )
                        )
                    }
                    await refusal("A message for an unknown partner is refused", expecting: [.recipientUnknown]) {
                        _ = try await client.directory("no-such-partner-\(UInt32.random(in: 0...UInt32.max))")
                    }
                    await refusal(
                        "An acknowledgement without a matching lease is refused",
                        expecting: [.leaseInvalid, .messageFinal, .messageNotFound]
                    ) {
                        // A correct receipt for the echo's answer, but the lease is not one the relay handed out.
                        let id = answer?.id ?? UUID()
                        let receipt = Receipt(
                            kind: .acknowledgement,
                            messageId: id,
                            messageDigest: answer?.digest ?? String(repeating: "0", count: 64),
                            from: echo,
                            to: me,
                            issuer: me,
                            disposition: .processed,
                            time: Date()
                        )
                        _ = try await client.acknowledge(
                            id: id,
                            leaseToken: "not-a-lease",
                            receipt: try SignedReceipt.sign(receipt, as: client.identity)
                        )
                    }
                }

                return reached
            }
        } catch {
            throw fail(error)
        }

        if json {
            printJSON(cases)
        } else {
            let width = cases.map(\.name.count).max() ?? 0
            for item in cases {
                print(
                    """
                    \(item.passed ? "PASS" : "FAIL")  \(item.name)\(String(repeating: " ", count: width - item.name.count))  \
                    \(item.detail)
                    """
                )
            }
            let passed = cases.filter(\.passed).count
            print(
                """
                \(passed) of \(cases.count) \
                passed\(reached ? "" : " (the relay could not be reached with this identity; the other cases did not run)")
                """
            )
        }
        if !reached || cases.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }
}

/// A minimal valid signal payload, without any personal data.
enum SyntheticPayload {
    static let signal = Data(
        """
        {"schema":"ketenpost/signal/v1","observedOn":"2026-01-01","place":{"description":"Conformance check, no real place"},
         "exploitationForms":["labour"],"indicators":["conformance check: no real case"],"urgency":"normal",
         "reporter":{"organisation":"conformance","name":"Conformance \
         check","email":"conformance@example.invalid"},"consent":"not-possible","legalBasis":"legal-task"}
        """.utf8
    )
}
