import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import Testing

/// Hostile and broken input: each gets its documented code, nothing is stored, and the
/// relay goes on serving others.
@Suite struct AbuseTests {
    /// Submits raw bytes as the municipality and expects `code`.
    func refuse(_ h: Harness, _ body: Data, _ code: KetenpostError.Code, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let client = try h.client(municipality)
        await expectRelayError(code, sourceLocation: sourceLocation) { _ = try await client.submit(body) }
    }

    @Test func malformedBodiesAreRefusedAndChangeNothing() async throws {
        try await withRelay { h in
            try await refuse(h, Data(), .inputEmpty)
            try await refuse(h, Data("garbage".utf8), .envelopeMalformed)
            // 100,000 nested DER SEQUENCEs (indefinite length), as a parser stack bomb.
            try await refuse(
                h,
                Data(repeating: 0x30, count: 100_000).map { $0 }.reduce(into: Data()) {
                    $0.append($1)
                    $0.append(0x80)
                },
                .envelopeMalformed
            )
            // An absurd declared length: a SEQUENCE claiming 4 GiB.
            try await refuse(h, Data([0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x06, 0x09]), .envelopeMalformed)
            // A valid CMS of the wrong kind (the encrypted layer alone).
            let cert = try Certificate.load(pemFile: h.shared.pki.partnerDirectory(coordinator) + "/cert.pem")
            try await refuse(h, try CMS.encrypt(Data("x".utf8), for: cert), .envelopeMalformed)
            // A well-formed message truncated by one byte.
            let sender = try h.client(municipality)
            let entry = try await sender.directory(coordinator)
            let certificates = try entry.certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
            let content = try Drafting.content(type: .signal, from: municipality, to: coordinator, payload: try h.example(.signal))
            let sealed = try Envelope.seal(content, from: sender.identity, to: certificates, trust: try h.trust)
            try await refuse(h, sealed.dropLast(), .envelopeMalformed)
            #expect(try await h.store.pendingCount(recipient: coordinator) == 0)
            // The relay still serves, and the intact message goes through.
            #expect(try await sender.submit(sealed).state == "accepted")
        }
    }

    @Test func createdFarInTheFutureIsRefused() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let entry = try await sender.directory(coordinator)
            let certificates = try entry.certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
            let content = try Drafting.content(
                type: .signal,
                from: municipality,
                to: coordinator,
                payload: try h.example(.signal),
                now: Date().addingTimeInterval(3600)
            )
            let sealed = try Envelope.seal(content, from: sender.identity, to: certificates, trust: try h.trust)
            try await refuse(h, sealed, .createdInFuture)
        }
    }

    @Test func aRevokedPartnerIsRefused() async throws {
        try await withRelay { h in
            // The handshake itself checks the CA's CRL: no request gets through.
            let revoked = try h.client("gemeente-ingetrokken")
            await expectHandshakeFailure { _ = try await revoked.directory(coordinator) }
            await expectHandshakeFailure { _ = try await revoked.inbox() }
            #expect(h.log.all.contains { $0.contains("handshake refused") && $0.contains("error.code=certificate.revoked") })
            // Its certificate is not offered to senders either.
            let other = try h.client(municipality)
            #expect(try await other.directory("gemeente-ingetrokken").certificates.isEmpty)
        }
    }

    @Test func malformedIDsAndReceiptReplays() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            let me = h.shared.pki.partnerDirectory(municipality)
            let curl = "curl -sS --max-time 30 --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(me)/cert.pem' --key '\(me)/key.pem'"
            let badID = try await shell("\(curl) \(h.url.absoluteString)/v1/messages/not-a-uuid")
            #expect(badID.stdout.contains("request.invalid"), "\(badID.stdout)")
            let badMax = try await shell("\(curl) '\(h.url.absoluteString)/v1/inbox?max=100000'")
            #expect(badMax.stdout.contains("request.invalid"), "\(badMax.stdout)")

            // A receipt for one message replayed as the acknowledgement of another.
            let first = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let second = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let items = try await recipient.receive(max: 2)
            let firstItem = try #require(items.first { $0.id == first.header.id })
            let secondItem = try #require(items.first { $0.id == second.header.id })
            let opened = try firstItem.result.get()
            let receipt = try SignedReceipt.sign(
                Receipt(
                    kind: .acknowledgement,
                    messageId: first.header.id,
                    messageDigest: opened.digest,
                    from: municipality,
                    to: coordinator,
                    issuer: coordinator,
                    disposition: .processed,
                    time: Date()
                ),
                as: recipient.identity
            )
            await expectRelayError(.receiptMismatch) {
                _ = try await recipient.acknowledge(id: second.header.id, leaseToken: secondItem.leaseToken, receipt: receipt)
            }
            #expect(try await sender.status(second.header.id).state == "delivered")
            _ = try await recipient.acknowledge(id: first.header.id, leaseToken: firstItem.leaseToken, receipt: receipt)
            // Replaying the same receipt is harmless: the same answer, nothing changes.
            #expect(
                try await recipient.acknowledge(id: first.header.id, leaseToken: firstItem.leaseToken, receipt: receipt).state
                    == "acknowledged"
            )
            #expect(try await sender.status(first.header.id).state == "acknowledged")
        }
    }

    /// An unregistered certificate is refused before its body is read.
    @Test func unknownPartnersAreRefusedBeforeTheirBodyIsRead() async throws {
        try await withRelay({ $0.limits.maxMessageBytes = 64 * 1024 }) { h in
            let rogue = h.shared.identityDirectory("unregistered-maastricht")
            let big = h.work.appendingPathComponent("big.bin")
            try Data(count: 4 * 1024 * 1024).write(to: big)
            let result = try await shell(
                """
                curl -sS --max-time 20 --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(rogue)/cert.pem' --key \
                '\(rogue)/key.pem' -o /dev/stderr -w '%{http_code}' -H 'Content-Type: application/cms' --data-binary @'\(big.path)' \
                \(h.url.absoluteString)/v1/messages
                """
            )
            #expect(result.stdout == "403", "\(result.stdout) \(result.stderr)")
            #expect(result.stderr.contains("auth.unknown-partner"))
        }
    }
}
