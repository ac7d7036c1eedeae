import AsyncHTTPClient
import Foundation
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostRelay
import NIOCore
import NIOSSL
import Testing

/// Each authorization rule, tried with the wrong partner's certificate.
@Suite struct AuthorizationTests {
    /// Seals `type` from `identity` to `to` with the directory's certificates of `to`.
    func seal(
        _ h: Harness,
        as client: RelayClient,
        from: String? = nil,
        to: String,
        type: MessageType = .signal,
        signer: Identity? = nil
    ) async throws -> Data {
        let entry = try await client.directory(to)
        let certificates = try entry.certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
        let sender = signer ?? client.identity
        let content = try Drafting.content(type: type, from: from ?? sender.partnerID, to: to, payload: try h.example(type))
        return try Envelope.seal(content, from: sender, to: certificates, trust: try h.trust)
    }

    @Test func theTLSIdentityMustBeTheSender() async throws {
        try await withRelay { h in
            let maastricht = try h.client("gemeente-maastricht")
            let eijsden = try h.client(municipality)
            // Signed by Eijsden-Margraten (from = Eijsden-Margraten), submitted over Maastricht's connection.
            let sealed = try await seal(h, as: eijsden, to: coordinator)
            await expectRelayError(.senderMismatch) { _ = try await maastricht.submit(sealed) }
            #expect(try await h.store.pendingCount(recipient: coordinator) == 0)
        }
    }

    @Test func theSignerMustBeARegisteredCertificateOfTheSender() async throws {
        try await withRelay { h in
            let maastricht = try h.client("gemeente-maastricht")
            let rogue = try Identity.load(directory: h.shared.identityDirectory("unregistered-maastricht"))
            // Right CA, right name, but not the certificate the directory lists.
            let sealed = try await seal(h, as: maastricht, to: coordinator, signer: rogue)
            await expectRelayError(.signerUnregistered) { _ = try await maastricht.submit(sealed) }
            // Nor may it connect.
            let rogueClient = try h.client("unregistered-maastricht")
            await expectRelayError(.unknownPartner) { _ = try await rogueClient.directory(coordinator) }
        }
    }

    @Test func thePolicyDecidesWhichTypesGoWhere() async throws {
        try await withRelay { h in
            let shelterClient = try h.client(shelter)
            // A shelter may not send an enforcement signal to the police.
            let sealed = try await seal(h, as: shelterClient, to: "politie-avim-limburg", type: .enforcementSignal)
            await expectRelayError(.policyForbidden) { _ = try await shelterClient.submit(sealed) }
            // A municipality may not send a signal to a shelter.
            let eijsden = try h.client(municipality)
            await expectRelayError(.policyForbidden) {
                _ = try await eijsden.send(payload: try h.example(.signal), type: .signal, to: shelter)
            }
            await expectRelayError(.recipientUnknown) {
                _ = try await eijsden.send(payload: try h.example(.signal), type: .signal, to: "gemeente-onbekend")
            }
        }
    }

    @Test func suspendedPartnersCanNeitherSendNorReceive() async throws {
        try await withRelay { h in
            let suspended = try h.client("gemeente-geschorst")
            await expectRelayError(.partnerSuspended) { _ = try await suspended.inbox() }
            let eijsden = try h.client(municipality)
            let sealed = try await seal(h, as: eijsden, to: coordinator)
            _ = try await eijsden.submit(sealed)
            await expectRelayError(.partnerSuspended) { _ = try await suspended.submit(sealed) }
        }
    }

    @Test func onlyTheSenderSeesStatusAndOnlyTheRecipientLeasesAndAcknowledges() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            let other = try h.client("gemeente-maastricht")
            let shelterClient = try h.client(shelter)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            await expectRelayError(.messageNotFound) { _ = try await other.status(sent.header.id) }
            await expectRelayError(.messageNotFound) { _ = try await recipient.status(sent.header.id) }
            #expect(try await shelterClient.receive().isEmpty, "another partner's inbox does not show it")
            let received = try await recipient.receive()
            // Another partner cannot acknowledge it, even with the lease token and a well-formed receipt of its own.
            let forged = Receipt(
                kind: .acknowledgement,
                messageId: sent.header.id,
                messageDigest: sent.receipt.messageDigest,
                from: municipality,
                to: coordinator,
                issuer: shelter,
                disposition: .processed,
                time: Date()
            )
            await expectRelayError(.messageNotFound) {
                _ = try await shelterClient.acknowledge(
                    id: sent.header.id,
                    leaseToken: received[0].leaseToken,
                    receipt: try SignedReceipt.sign(forged, as: shelterClient.identity)
                )
            }
            // The recipient's connection with a receipt signed by somebody else is refused too.
            await expectRelayError(.receiptSignerMismatch) {
                _ = try await recipient.acknowledge(
                    id: sent.header.id,
                    leaseToken: received[0].leaseToken,
                    receipt: try SignedReceipt.sign(forged, as: shelterClient.identity)
                )
            }
            // A receipt that names another digest is refused.
            let wrongDigest = Receipt(
                kind: .acknowledgement,
                messageId: sent.header.id,
                messageDigest: String(repeating: "0", count: 64),
                from: municipality,
                to: coordinator,
                issuer: coordinator,
                disposition: .processed,
                time: Date()
            )
            await expectRelayError(.receiptMismatch) {
                _ = try await recipient.acknowledge(
                    id: sent.header.id,
                    leaseToken: received[0].leaseToken,
                    receipt: try SignedReceipt.sign(wrongDigest, as: recipient.identity)
                )
            }
            #expect(try await sender.status(sent.header.id).state == "delivered")
            try await recipient.acknowledge(received[0])
            #expect(try await sender.status(sent.header.id).state == "acknowledged")
        }
    }

    @Test func tamperedAndExpiredSubmissionsAreRefused() async throws {
        try await withRelay { h in
            let eijsden = try h.client(municipality)
            var sealed = try await seal(h, as: eijsden, to: coordinator)
            sealed[sealed.count / 3] ^= 0x01
            await expectRelayError(.outerSignatureInvalid) { _ = try await eijsden.submit(sealed) }
            await expectRelayError(.envelopeMalformed) { _ = try await eijsden.submit(Data("garbage".utf8)) }
            h.clock.advance(by: 40 * 86_400)
            let late = try await seal(h, as: eijsden, to: coordinator)
            await expectRelayError(.messageExpired) { _ = try await eijsden.submit(late) }
            #expect(try await h.store.pendingCount(recipient: coordinator) == 0)
        }
    }

    @Test func rateLimitAnswers429() async throws {
        try await withRelay({
            $0.limits.ratePerSecond = 0.01
            $0.limits.rateBurst = 3
        }) { h in
            let eijsden = try h.client(municipality)
            for _ in 0..<3 { _ = try await eijsden.directory(coordinator) }
            await expectRelayError(.rateLimited) { _ = try await eijsden.directory(coordinator) }
            // Other partners are not affected.
            _ = try await h.client("gemeente-maastricht").directory(coordinator)
        }
    }

    @Test func handshakeRefusesMissingAndUntrustedClientCertificates() async throws {
        try await withRelay { h in
            let ca = h.shared.pki.caCertificatePath
            // curl without a client certificate: TLS 1.3 reports the alert on the first read.
            let none = try await shell("curl -sS --max-time 30 --cacert '\(ca)' \(h.url.absoluteString)/v1/health")
            #expect(none.status != 0)
            #expect(none.stderr.contains("alert") || none.stderr.contains("certificate"), "\(none.stderr)")
            // curl with a certificate from an untrusted CA.
            let evil = h.shared.identityDirectory("evil-maastricht")
            let untrusted = try await shell(
                """
                curl -sS --max-time 30 --cacert '\(ca)' --cert '\(evil)/cert.pem' --key '\(evil)/key.pem' \
                \(h.url.absoluteString)/v1/health
                """
            )
            #expect(untrusted.status != 0)
            #expect(untrusted.stderr.contains("unknown ca") || untrusted.stderr.contains("alert"), "\(untrusted.stderr)")
            // AsyncHTTPClient with the untrusted certificate fails the handshake too.
            let evilClient = try h.client("evil-maastricht")
            await expectHandshakeFailure { _ = try await evilClient.directory(coordinator) }
            // A registered partner gets through.
            let me = h.shared.identityDirectory(municipality)
            let ok = try await shell(
                "curl -sS --max-time 30 --cacert '\(ca)' --cert '\(me)/cert.pem' --key '\(me)/key.pem' \(h.url.absoluteString)/v1/health"
            )
            #expect(ok.status == 0 && ok.stdout.contains("ok"), "\(ok.stderr)")
        }
    }

    @Test func oversizeBodiesGet413AndWrongTypes415() async throws {
        try await withRelay({ $0.limits.maxMessageBytes = 64 * 1024 }) { h in
            let me = h.shared.identityDirectory(municipality)
            let ca = h.shared.pki.caCertificatePath
            let big = h.work.appendingPathComponent("big.bin")
            try Data(count: 8 * 1024 * 1024).write(to: big)
            let curl =
                """
                curl -sS --max-time 20 --cacert '\(ca)' --cert '\(me)/cert.pem' --key '\(me)/key.pem' -o /dev/stderr -w \
                '%{http_code}' -X POST
                """
            // Declared length over the limit: refused from the headers.
            let declared = try await shell(
                "\(curl) -H 'Content-Type: application/cms' --data-binary @'\(big.path)' \(h.url.absoluteString)/v1/messages"
            )
            #expect(declared.stdout == "413", "\(declared.stdout) \(declared.stderr)")
            #expect(declared.stderr.contains("request.too-large"))
            // Chunked, no length: refused once the limit is passed.
            let chunked = try await shell(
                """
                \(curl) -H 'Content-Type: application/cms' -H 'Transfer-Encoding: chunked' --data-binary @'\(big.path)' \
                \(h.url.absoluteString)/v1/messages
                """
            )
            #expect(chunked.stdout == "413", "\(chunked.stdout) \(chunked.stderr)")
            let form = try await shell("\(curl) --data-binary 'x=1' \(h.url.absoluteString)/v1/messages")
            #expect(form.stdout == "415", "\(form.stdout) \(form.stderr)")
            #expect(form.stderr.contains("request.unsupported-media-type"))
            // The relay still serves.
            _ = try await h.client(municipality).send(payload: try h.example(.signal), type: .signal, to: coordinator)
        }
    }
}
