import Foundation
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostRelay
import KetenpostStore
import Testing

let municipality = "gemeente-eijsden-margraten"
let coordinator = "zorgcoordinatie-zuid-limburg"
let shelter = "opvang-zuid-limburg"

/// Every queue rule of the brief, over real mutual TLS on 127.0.0.1 with a real SQLite file.
@Suite struct QueueTests {
    @Test func acceptDeliverAcknowledgeAndStatus() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            #expect(sent.response.state == "accepted")
            #expect(sent.receipt.issuer == "ketenpost-relay")
            #expect(try await sender.status(sent.header.id).state == "accepted")

            let received = try await recipient.receive()
            #expect(received.count == 1)
            let opened = try #require(try? received[0].result.get())
            #expect(opened.header.id == sent.header.id)
            #expect(try await sender.status(sent.header.id).state == "delivered")

            #expect(try await recipient.acknowledge(received[0]).state == "acknowledged")
            let status = try await sender.status(sent.header.id)
            #expect(status.state == "acknowledged")
            #expect(status.attempts == 1)
            // The recipient's receipt verifies and names the digest of the message as accepted.
            let base64 = try #require(status.recipientReceipt)
            let der = try #require(Data(base64Encoded: base64))
            let receipt = try SignedReceipt.verify(der, trust: try h.trust)
            #expect(receipt.receipt.issuer == coordinator)
            #expect(receipt.receipt.messageDigest == sent.receipt.messageDigest)
            #expect(receipt.receipt.disposition == .processed)
            // Acknowledged messages are not delivered again.
            #expect(try await recipient.receive().isEmpty)
        }
    }

    @Test func duplicateReturnsTheOriginalReceiptAndConflictIsRefused() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let entry = try await sender.directory(coordinator)
            let certificates = try entry.certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
            let content = try Drafting.content(type: .signal, from: municipality, to: coordinator, payload: try h.example(.signal))
            let sealed = try Envelope.seal(content, from: sender.identity, to: certificates, trust: try h.trust)
            let first = try await sender.submit(sealed)
            let second = try await sender.submit(sealed)
            #expect(!first.duplicate && second.duplicate)
            #expect(first.receipt == second.receipt)
            #expect(try await h.store.pendingCount(recipient: coordinator) == 1)
            // Same id, other bytes (sealing again gives other bytes): a conflict, nothing stored.
            let resealed = try Envelope.seal(content, from: sender.identity, to: certificates, trust: try h.trust)
            await expectRelayError(.messageConflict) { _ = try await sender.submit(resealed) }
            #expect(try await h.store.pendingCount(recipient: coordinator) == 1)
        }
    }

    @Test func leaseHidesRedeliversAfterExpiryAndDeadLetters() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let first = try await recipient.receive()
            #expect(first.count == 1)
            #expect(try await recipient.receive().isEmpty, "a leased message is invisible while its lease runs")

            h.clock.advance(by: h.configuration.queue.leaseDuration + 1)
            // The old lease ran out: acknowledging with it is refused.
            await expectRelayError(.leaseExpired) { try await recipient.acknowledge(first[0]) }
            let second = try await recipient.receive()
            #expect(second.map(\.id) == [sent.header.id])
            #expect(second[0].leaseToken != first[0].leaseToken)
            // After a new lease, the old token is no lease at all.
            await expectRelayError(.leaseInvalid) { try await recipient.acknowledge(first[0]) }

            h.clock.advance(by: h.configuration.queue.leaseDuration + 1)
            #expect(try await recipient.receive().count == 1)  // third and last attempt
            h.clock.advance(by: h.configuration.queue.leaseDuration + 1)
            #expect(try await recipient.receive().isEmpty)
            let status = try await sender.status(sent.header.id)
            #expect(status.state == "dead-lettered")
            #expect(status.attempts == 3)
            #expect(status.reasonCode == "max-attempts")
        }
    }

    @Test func ackWithinTheLeaseAfterARedeliveryCompletes() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            _ = try await recipient.receive()
            h.clock.advance(by: h.configuration.queue.leaseDuration + 1)
            let again = try await recipient.receive()
            #expect(try await recipient.acknowledge(again[0]).state == "acknowledged")
            let status = try await sender.status(sent.header.id)
            #expect(status.state == "acknowledged" && status.attempts == 2)
        }
    }

    @Test func expiredMessagesAreNotDelivered() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            var options = Drafting.Options()
            options.lifetime = 3600
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator, options: options)
            h.clock.advance(by: 7200)
            #expect(try await recipient.receive().isEmpty)
            let status = try await sender.status(sent.header.id)
            #expect(status.state == "expired")
            #expect(status.reasonCode == "expired")
        }
    }

    @Test func relayLimitShortensTheLifetime() async throws {
        try await withRelay({ $0.queue.maxLifetime[.signal] = 600 }) { h in
            let sender = try h.client(municipality)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let status = try await sender.status(sent.header.id)
            #expect(status.expiresAt.timeIntervalSince(status.acceptedAt) == 600)
            #expect(sent.header.expiresAt > status.expiresAt)
        }
    }

    @Test func firstInFirstOutPerRecipient() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let other = try h.client("gemeente-maastricht")
            let recipient = try h.client(coordinator)
            var ids: [UUID] = []
            for index in 0..<6 {
                let client = index % 2 == 0 ? sender : other
                ids.append(try await client.send(payload: try h.example(.signal), type: .signal, to: coordinator).header.id)
            }
            _ = try await h.client(coordinator)  // another client of the same partner shares the inbox
            let first = try await recipient.receive(max: 4)
            let rest = try await recipient.receive(max: 10)
            #expect((first + rest).map(\.id) == ids)
        }
    }

    @Test func retentionPurgesCiphertextButKeepsReceipts() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let pending = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let received = try await recipient.receive(max: 1)
            try await recipient.acknowledge(received[0])
            h.clock.advance(by: h.configuration.queue.retention - 60)
            _ = try await h.relay.core.sweep()
            #expect(try await h.store.body(id: sent.header.id) != nil, "not before the retention has passed")
            h.clock.advance(by: 120)
            let counts = try await h.relay.core.sweep()
            #expect(counts.purged == 1)
            #expect(try await h.store.body(id: sent.header.id) == nil)
            #expect(try await h.store.body(id: pending.header.id) != nil, "pending messages are never purged")
            let status = try await sender.status(sent.header.id)
            #expect(status.state == "acknowledged")
            #expect(status.recipientReceipt != nil)
        }
    }

    @Test func rejectionReceiptIsVisibleToTheSender() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let received = try await recipient.receive()
            #expect(try await recipient.acknowledge(received[0], rejectedWith: "payload.invalid").state == "rejected")
            let status = try await sender.status(sent.header.id)
            #expect(status.state == "rejected")
            #expect(status.reasonCode == "payload.invalid")
        }
    }

    @Test func longPollWakesOnArrival() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            async let waiting = recipient.receive(max: 1, wait: 20)
            try await Task.sleep(for: .milliseconds(300))
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let started = ContinuousClock.now
            let received = try await waiting
            #expect(received.map(\.id) == [sent.header.id])
            // Woken by the arrival, not by the 20 s timeout (a correctness check, not a benchmark).
            #expect(ContinuousClock.now - started < .seconds(15))
        }
    }

    @Test func restartBetweenSubmitAndReceiveLosesNothing() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            var ids: [UUID] = []
            for _ in 0..<3 { ids.append(try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator).header.id) }
            try await h.restart()
            let recipient = try h.client(coordinator)  // a client for the new port
            let received = try await recipient.receive(max: 10)
            #expect(received.map(\.id) == ids)
            for item in received { #expect((try? item.result.get()) != nil) }
        }
    }

    @Test func intakeResponseMustAnswerAnIntakeNotice() async throws {
        try await withRelay { h in
            let coordinatorClient = try h.client(coordinator)
            let shelterClient = try h.client(shelter)
            let notice = try await coordinatorClient.send(payload: try h.example(.intakeNotice), type: .intakeNotice, to: shelter)
            var answer = Drafting.Options()
            answer.correlationID = notice.header.id
            _ = try await shelterClient.send(
                payload: try h.example(.intakeResponse),
                type: .intakeResponse,
                to: coordinator,
                options: answer
            )
            // Answering a message that is no intake notice to this partner is refused.
            answer.id = UUID()
            answer.correlationID = UUID()
            await expectRelayError(.correlationMismatch) {
                _ = try await shelterClient.send(
                    payload: try h.example(.intakeResponse),
                    type: .intakeResponse,
                    to: coordinator,
                    options: answer
                )
            }
            answer.correlationID = notice.header.id
            await expectRelayError(.correlationMismatch) {
                _ = try await shelterClient.send(
                    payload: try h.example(.intakeResponse),
                    type: .intakeResponse,
                    to: "politie-avim-limburg",
                    options: answer
                )
            }
        }
    }

    /// A referral-response closes the loop of a referral: from the care provider back to the
    /// coordinator who referred, naming that referral; anything else is refused.
    @Test func referralResponseMustAnswerAReferral() async throws {
        try await withRelay { h in
            let provider = "zorgaanbieder-mondriaan"
            let coordinatorClient = try h.client(coordinator)
            let providerClient = try h.client(provider)
            let referral = try await coordinatorClient.send(payload: try h.example(.referral), type: .referral, to: provider)
            var answer = Drafting.Options()
            answer.correlationID = referral.header.id
            let sent = try await providerClient.send(
                payload: try h.example(.referralResponse),
                type: .referralResponse,
                to: coordinator,
                options: answer
            )
            let received = try await coordinatorClient.receive()
            let opened = try #require(try? received.first { $0.id == sent.header.id }?.result.get())
            #expect(opened.header.correlationId == referral.header.id)
            guard case .referralResponse(let response) = opened.payload else {
                Issue.record("not a referral-response: \(opened.payload.type)")
                return
            }
            #expect(response.outcome == .accepted)
            // An intake notice is not a referral: answering it with a referral-response is refused.
            let notice = try await coordinatorClient.send(payload: try h.example(.intakeNotice), type: .intakeNotice, to: shelter)
            answer.id = UUID()
            answer.correlationID = notice.header.id
            await expectRelayError(.correlationMismatch) {
                _ = try await try h.client(shelter).send(
                    payload: try h.example(.referralResponse),
                    type: .referralResponse,
                    to: coordinator,
                    options: answer
                )
            }
            // Police may not send one at all (policy).
            answer.id = UUID()
            answer.correlationID = referral.header.id
            await expectRelayError(.policyForbidden) {
                _ = try await try h.client("politie-avim-limburg").send(
                    payload: try h.example(.referralResponse),
                    type: .referralResponse,
                    to: coordinator,
                    options: answer
                )
            }
        }
    }
}

@Suite struct IdempotencyTests {
    /// A late retry of an accepted message gets the original receipt even after its expiry.
    @Test func resubmissionAfterExpiryReturnsTheOriginalReceipt() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let entry = try await sender.directory(coordinator)
            let certificates = try entry.certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
            var options = Drafting.Options()
            options.lifetime = 3600
            let content = try Drafting.content(
                type: .signal,
                from: municipality,
                to: coordinator,
                payload: try h.example(.signal),
                options: options
            )
            let sealed = try Envelope.seal(content, from: sender.identity, to: certificates, trust: try h.trust)
            let first = try await sender.submit(sealed)
            h.clock.advance(by: 7200)
            let again = try await sender.submit(sealed)
            #expect(again.duplicate && again.receipt == first.receipt)
        }
    }

    /// The client accepts an acceptance receipt only from the relay, for exactly its bytes.
    @Test func acceptanceReceiptsMustComeFromTheRelay() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let sent = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let forged = Receipt(
                kind: .acceptance,
                messageId: sent.header.id,
                messageDigest: sent.receipt.messageDigest,
                from: municipality,
                to: coordinator,
                issuer: coordinator,
                disposition: .accepted,
                time: Date()
            )
            let coordinatorIdentity = try Identity.load(directory: h.shared.pki.partnerDirectory(coordinator))
            let der = try SignedReceipt.sign(forged, as: coordinatorIdentity)
            // A partner's certificate lacks the relay's purpose (TLS server): refused before its name is looked at.
            await expectRelayError(.certificatePurpose) {
                _ = try sender.verifyAcceptance(der.base64EncodedString(), for: Data("other".utf8), header: sent.header)
            }
        }
    }
}
